"""Walking a folder for model files, safely: what cannot be read is skipped, the system's own
pseudo-folders (/proc, /sys, /dev) are never entered nor a folder twice (links may loop), and a folder
too large to be a models folder (a disk's root) is refused in words rather than walked for minutes."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from localopen.core.errors import LocalopenError

log = logging.getLogger("localopen.store.folders")

# Folders of the running system, never of anyone's models: their files are processes, devices and
# kernel state (reading /proc/…/ can fail or hang half-way).
SYSTEM_FOLDERS = frozenset({"/proc", "/sys", "/dev", "/run", "/private/var/vm"})
MAX_FOLDERS = 20_000  # a models folder with its subfolders holds hundreds; a disk holds millions


class FolderTooLarge(LocalopenError):
    """A folder with more subfolders than a models folder ever has."""


def system_folder(folder: Path) -> bool:
    """The filesystem's root or one of the system's own folders: never a models folder."""
    resolved = str(folder.expanduser().resolve())
    return resolved in SYSTEM_FOLDERS or Path(resolved).parent == Path(resolved)


def files_under(folder: Path, max_folders: int | None = None) -> Iterator[Path]:
    """Every file under `folder`, folders sorted, skipping what cannot be read (logged); raises
    FolderTooLarge, in words, past `max_folders` folders (MAX_FOLDERS unless given)."""
    limit = max_folders or MAX_FOLDERS
    seen: set[str] = set()

    def unreadable(error: OSError) -> None:
        log.info("Skipped %s while looking for models: %s", error.filename, error.strerror)

    # Links to folders are followed (a models folder may link to another disk), each real folder once.
    for root, dirs, names in os.walk(folder, onerror=unreadable, followlinks=True):
        real = os.path.realpath(root)
        if real in seen or real in SYSTEM_FOLDERS:
            dirs[:] = []
            continue
        seen.add(real)
        if len(seen) > limit:
            raise FolderTooLarge(
                f"{folder} holds more than {limit:,} folders: it is too large to search for models. "
                "Choose the folder your models are in (`localopen settings models_dir PATH`, or Settings)."
            )
        dirs[:] = sorted(d for d in dirs if os.path.join(root, d) not in SYSTEM_FOLDERS)
        for name in sorted(names):
            yield Path(root) / name
