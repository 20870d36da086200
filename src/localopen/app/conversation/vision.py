"""Images in: which vision projector goes with a model, checked before any load.

A vision model's projector (its mmproj file) lives beside the model: downloads put it there, and a
folder imported from LM Studio, llama.cpp's cache or elsewhere has it there. The one that pairs
with the model (core/gguf/projector: its width and family) is chosen, the one named most like the
model first (llama.cpp's cache holds many repositories' files in one folder).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from localopen.core.errors import LocalopenError
from localopen.core.gguf.files import is_gguf, is_projector_name
from localopen.core.gguf.header import read_header
from localopen.core.gguf.projector import Projector, is_projector, pairing_problem, read_projector
from localopen.core.options import LoadOptions

log = logging.getLogger("localopen.vision")


@dataclasses.dataclass(frozen=True)
class Pairing:
    """A model's projector, or why the ones beside it cannot serve it."""

    projector: Path | None
    facts: Projector | None = None
    problems: tuple[str, ...] = ()  # projectors beside the model that do not pair, in words


def pairing(model_path: str | Path) -> Pairing:
    """The projector beside the model that pairs with it (disk work: headers only)."""
    model_path = Path(model_path)
    try:
        candidates = [p for p in model_path.parent.iterdir() if is_gguf(p.name) and is_projector_name(p.name)]
        if not candidates:  # a text model's folder: its header is not read
            return Pairing(None)
        model = read_header(model_path)
    except (LocalopenError, OSError):
        log.info("No projector pairing read for %s", model_path, exc_info=True)
        return Pairing(None)
    stem = model_path.name.lower()
    candidates.sort(key=lambda p: (-len(os.path.commonprefix([stem, p.name.lower()])), p.name))
    problems = []
    for path in candidates:
        try:
            header = read_header(path)
        except LocalopenError as exc:
            problems.append(f"{path.name}: {exc}")
            continue
        if not is_projector(header):
            continue
        facts = read_projector(header)
        problem = pairing_problem(facts, model, path.name, model_path.name)
        if problem is None:
            return Pairing(path, facts, tuple(problems))
        problems.append(problem)
    return Pairing(None, None, tuple(problems))


def with_projector(path: str | Path, options: LoadOptions) -> LoadOptions:
    """Load options with the model's projector (its images are then read); unchanged for a text
    model, or when the options name one already."""
    if options.mmproj is not None:
        return options
    found = pairing(path).projector
    return dataclasses.replace(options, mmproj=str(found)) if found is not None else options


# What one request may carry: a photo from a phone is a few MB; the projector scales it down anyway.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGES = 8
# Pixels a picture may claim: its decoded RGB copy is 3 bytes each (a 50 MP photo: 150 MB). A
# few-KB file can claim a billion (a decompression bomb): refused before anything decodes it.
MAX_PIXELS = 50_000_000
# The formats libmtmd's decoder (stb_image) reads, by their first bytes.
_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
}


class ImageError(LocalopenError):
    """An image that cannot be sent as it is (not a picture, too large, too many)."""


def image_kind(data: bytes) -> str | None:
    """The picture format by its first bytes (the ones libmtmd's decoder reads), or None."""
    return next((kind for magic, kind in _SIGNATURES.items() if data.startswith(magic)), None)


def image_pixels(data: bytes) -> tuple[int, int] | None:
    """A picture's width and height as its header claims them (None: not found in the header)."""
    kind = image_kind(data)
    if kind == "PNG" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if kind == "GIF" and len(data) >= 10:
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    if kind == "BMP" and len(data) >= 26:
        return abs(int.from_bytes(data[18:22], "little", signed=True)), abs(
            int.from_bytes(data[22:26], "little", signed=True)
        )
    if kind == "JPEG":
        i = 2
        while i + 9 < len(data):  # the segments up to a frame header (SOF0-SOF15, not DHT/JPG/DAC)
            if data[i] != 0xFF:
                return None
            marker, length = data[i + 1], int.from_bytes(data[i + 2 : i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
            i += 2 + length
    return None


def image_part(data: bytes, what: str) -> dict[str, object]:
    """A message content part holding one image, checked: a picture, within the size limit."""
    if len(data) > MAX_IMAGE_BYTES:
        limit = MAX_IMAGE_BYTES // 2**20
        raise ImageError(f"{what} is {len(data) / 2**20:.0f} MB; an image may be at most {limit} MB.")
    if image_kind(data) is None:
        raise ImageError(f"{what} is not a picture localopen can read: send a PNG, JPEG, GIF or BMP image.")
    size = image_pixels(data)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise ImageError(
            f"{what} claims {size[0]}x{size[1]} pixels; at most {MAX_PIXELS // 1_000_000} megapixels are read "
            "(scale it down first)."
        )
    return {"type": "image", "data": data}


def read_image(path: str | Path) -> dict[str, object]:
    """An image file as a content part; a missing or unreadable file said in words."""
    path = Path(path).expanduser()
    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:  # said before a huge file is read
            limit = MAX_IMAGE_BYTES // 2**20
            raise ImageError(f"{path.name} is {size / 2**20:.0f} MB; an image may be at most {limit} MB.")
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"The image {path} cannot be read: {exc.strerror or exc}.") from exc
    return image_part(data, path.name)


def user_message(text: str, images: list[dict[str, object]]) -> dict[str, object]:
    """A user turn: its images first (as most vision templates and llama.cpp's server place them), then its text."""
    if not images:
        return {"role": "user", "content": text}
    if len(images) > MAX_IMAGES:
        raise ImageError(f"{len(images)} images in one message; at most {MAX_IMAGES} are taken.")
    return {"role": "user", "content": [*images, {"type": "text", "text": text}]}


def has_images(messages: list[dict[str, Any]]) -> bool:
    return any(
        isinstance(m.get("content"), list) and any(p.get("type") == "image" for p in m["content"]) for m in messages
    )


def no_vision(path: str | Path) -> str:
    """Why a model cannot take images, in words: the projectors beside it that do not pair, or none."""
    found = pairing(path)
    name = Path(path).name
    if found.problems:
        return " ".join(found.problems)
    return (
        f"{name} reads text only: no vision projector (mmproj file) is beside it. A vision model's projector "
        "comes with it from Explore or `localopen pull`; or name one with --mmproj FILE."
    )
