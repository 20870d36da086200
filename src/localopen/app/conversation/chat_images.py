"""A chat's pictures, copied into the app's data folder when attached: a saved chat shows them and
sends them again after its originals were moved or deleted. Named by their sha256 (the same picture
is kept once), and deleted when no stored message shows them any more."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path

from localopen.app.context import AppContext
from localopen.app.conversation import vision
from localopen.core.chat import conversations as convs
from localopen.core.errors import LocalopenError

log = logging.getLogger("localopen.chat")

_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "BMP": ".bmp"}


def folder(ctx: AppContext) -> Path:
    return ctx.paths.data / "images"


def store(ctx: AppContext, data: bytes) -> str:
    """Keep a picture (checked: a picture, within the size limit); its name in the images folder."""
    vision.image_part(data, "The picture")
    name = hashlib.sha256(data).hexdigest()[:40] + _SUFFIX[vision.image_kind(data) or "PNG"]
    target = folder(ctx) / name
    if target.exists():
        return name
    partial = target.with_name(name + ".partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
        os.replace(partial, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise LocalopenError(
            f"The picture could not be kept with the chat in {target.parent}: {exc.strerror or exc}. Free some "
            "disk space and attach it again."
        ) from exc
    return name


def load(ctx: AppContext, name: str) -> bytes | None:
    """A kept picture's bytes; None when it is gone (deleted by hand)."""
    path = folder(ctx) / Path(name).name  # a stored name never leaves the folder
    try:
        return path.read_bytes()
    except OSError:
        log.warning("A chat's picture %s is gone", path)
        return None


def prune(ctx: AppContext) -> int:
    """Delete the kept pictures no stored message shows (after a chat or a message is deleted)."""
    shown = convs.image_names(ctx.db)
    removed = 0
    if not folder(ctx).is_dir():
        return 0
    for path in folder(ctx).iterdir():
        if path.is_file() and path.name not in shown:
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed
