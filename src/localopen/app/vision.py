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
from localopen.engine.protocol import LoadOptions

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
        model = read_header(model_path)
        candidates = [p for p in model_path.parent.iterdir() if is_gguf(p.name) and is_projector_name(p.name)]
    except (LocalopenError, OSError):
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
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((kind for magic, kind in _SIGNATURES.items() if data.startswith(magic)), None)


def image_part(data: bytes, what: str) -> dict[str, object]:
    """A message content part holding one image, checked: a picture, within the size limit."""
    if len(data) > MAX_IMAGE_BYTES:
        limit = MAX_IMAGE_BYTES // 2**20
        raise ImageError(f"{what} is {len(data) / 2**20:.0f} MB; an image may be at most {limit} MB.")
    if image_kind(data) is None:
        raise ImageError(f"{what} is not a picture localopen can read: send a PNG, JPEG, GIF, BMP or WebP image.")
    return {"type": "image", "data": data}


def read_image(path: str | Path) -> dict[str, object]:
    """An image file as a content part; a missing or unreadable file said in words."""
    path = Path(path).expanduser()
    try:
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
