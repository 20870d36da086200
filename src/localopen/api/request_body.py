"""Reading a request body safely, for every API shape: a size limit, valid JSON, bounded nesting,
valid Unicode; and the small checks each shape's parser shares. Failures are ServingErrors with
their HTTP status; each shape writes them in its own error format."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Any

from starlette.requests import Request

from localopen.app.conversation import vision
from localopen.app.serving import ServingError

MAX_BODY = 48 * 1024 * 1024  # bytes: a long conversation with a few photos fits; a runaway client gets 413
MAX_DEPTH = 64  # JSON nesting: tool schemas need a few levels, nothing needs more
# Text in one request: about two million tokens, more than any model's context, and some 10 s of
# tokenising on two cores. More would keep the engine busy for minutes before any answer: refused at once.
MAX_TEXT = 8 * 1024 * 1024


def bad(message: str, code: str | None = None) -> ServingError:
    return ServingError(message, 400, code=code)


def _depth(value: Any) -> int:
    """How deeply a JSON value nests (iteratively: a hostile body cannot exhaust the stack here)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                return level
            stack.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _text(value: Any) -> tuple[int, bool]:
    """In one walk over the body: the characters of text it holds (pictures, as data: URLs or
    base64 sources, not counted), and whether any string is no valid Unicode (JSON's \\ud800 escapes
    decode to a lone surrogate no UTF-8 encoder accepts: the engine would fail on it)."""
    total, stack = 0, [(value, True)]
    while stack:
        item, counted = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return total, True
            total += len(item) if counted and not item.startswith("data:") else 0
        elif isinstance(item, dict):
            stack.extend((k, False) for k in item)
            stack.extend((v, counted and k not in ("data", "images")) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, counted) for v in item)
    return total, False


async def read_json(request: Request) -> dict[str, Any]:
    """The body as a JSON object, or a ServingError (413 too large, 400 otherwise)."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_BODY:
        raise ServingError(f"The request is larger than {MAX_BODY // (1024 * 1024)} MiB.", 413)
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise ServingError(f"The request is larger than {MAX_BODY // (1024 * 1024)} MiB.", 413)
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad(
            f"The request body is not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc}).", "invalid_json"
        ) from exc
    except ValueError as exc:  # a number beyond Python's digit limit
        raise bad(f"The request body has a number too large to read ({exc}).", "invalid_json") from exc
    except RecursionError as exc:
        raise bad("The request body nests JSON too deeply.", "invalid_json") from exc
    if _depth(body) > MAX_DEPTH:
        raise bad(f"The request body nests JSON deeper than {MAX_DEPTH} levels.", "invalid_json")
    text, broken = _text(body)
    if broken:
        raise bad("The request body has text that is not valid Unicode (a lone surrogate).", "invalid_json")
    if not isinstance(body, dict):
        raise bad("The request body must be a JSON object.", "invalid_json")
    if text > MAX_TEXT:
        raise ServingError(
            f"The request holds {text / 1e6:.1f} million characters of text; at most {MAX_TEXT / 1e6:.1f} million "
            "are read in one request (about two million tokens, more than any model's context).",
            413,
        )
    return body


def number(body: dict[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise bad(f"'{key}' must be a number from {lo} to {hi}.", "invalid_value")
    return float(value)


def whole_number(body: dict[str, Any], key: str, lo: int = 1) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise bad(f"'{key}' must be a whole number of at least {lo}.", "invalid_value")
    return value


def boolean(body: dict[str, Any], key: str, default: bool | None) -> bool | None:
    value = body.get(key, default)
    if value is not None and not isinstance(value, bool):
        raise bad(f"'{key}' must be true or false.", "invalid_value")
    return value


def stop_list(value: Any, key: str = "stop") -> list[str]:
    if isinstance(value, str):
        value = [value]
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value) or len(value) > 16:
        raise bad(f"'{key}' must be a string or a list of up to 16 strings.", "invalid_value")
    return list(value)


def disconnected(request: Request) -> asyncio.Future[None]:
    """Done when the client disconnects (the body is read already: the next message is that)."""

    async def wait() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    return asyncio.ensure_future(wait())


def image_part(url: Any, what: str) -> dict[str, Any]:
    """An image a client sent (a data: URL, or bare base64 as Ollama and Anthropic send it) as a
    content part for the engine. Web and file addresses are refused: the server never fetches
    what a request points at (a privacy default)."""
    if not isinstance(url, str) or not url:
        raise bad(f"{what} needs its image as a data: URL.", "invalid_image")
    if url.startswith(("http://", "https://", "file:")):
        raise bad(
            f"{what} is an address ({url.split(':', 1)[0]}): this server does not fetch images (a privacy default). "
            "Send the picture itself, base64-encoded in a data: URL (data:image/png;base64,...).",
            "image_url_not_allowed",
        )
    payload = url
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        if ";base64" not in header:
            raise bad(f"{what} must be a base64 data: URL (data:image/png;base64,...).", "invalid_image")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise bad(f"{what} is not valid base64.", "invalid_image") from exc
    try:
        return vision.image_part(data, what)
    except vision.ImageError as exc:
        raise bad(str(exc), "invalid_image") from exc


def check_image_count(messages: list[dict[str, Any]]) -> None:
    """At most vision.MAX_IMAGES pictures in one request."""
    count = sum(
        1 for m in messages if isinstance(m.get("content"), list) for p in m["content"] if p.get("type") == "image"
    )
    if count > vision.MAX_IMAGES:
        raise bad(f"{count} images in one request; at most {vision.MAX_IMAGES} are taken.", "too_many_images")


IMAGE_HERE = "\x00image\x00"  # where an image sat among a message's text blocks, while they are joined


def with_images(text: str, images: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A message's joined text (IMAGE_HERE where each image sat) as its content: the text alone,
    or text and image parts in their order."""
    if not images:
        return text
    parts: list[dict[str, Any]] = []
    pieces = text.split(IMAGE_HERE)
    for i, piece in enumerate(pieces):
        if piece:
            parts.append({"type": "text", "text": piece})
        if i < len(images):
            parts.append(images[i])
    return parts
