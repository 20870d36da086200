"""Getting one model from the Hub: which files, where they go, and the library record."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from localopen.core.errors import LocalopenError
from localopen.core.gguf.files import is_gguf, is_projector_name, matches_quant, split_part
from localopen.core.hub.client import Hub, RemoteFile
from localopen.core.hub.downloader import Progress, check_disk_space, download, unfinished_downloads
from localopen.core.store.library_db import add_downloaded, record_hub_files

DEFAULT_QUANT = "Q4_K_M"


def choose_files(
    files: list[RemoteFile], quant: str | None = None, filename: str | None = None, pattern: str | None = None
) -> list[RemoteFile]:
    """The GGUF file(s) to fetch: one file, or every part of a split model, in order (a vision
    projector is never the model: it comes with it, choose_projector)."""
    ggufs = [f for f in files if is_gguf(f.filename) and not is_projector_name(f.filename)]
    if not ggufs:
        raise LocalopenError("This repository has no GGUF file.")
    if filename:
        picked = [f for f in ggufs if f.filename == filename or f.filename.endswith("/" + filename)]
        if not picked:
            raise LocalopenError(f"No file {filename} here. GGUF files: " + ", ".join(f.filename for f in ggufs[:12]))
    elif pattern:
        picked = [f for f in ggufs if matches_quant(f.filename, pattern)]
    else:
        want = (quant or DEFAULT_QUANT).upper()
        picked = [f for f in ggufs if f.quant == want]
        if not picked:
            offered = sorted({f.quant for f in ggufs if f.quant})
            raise LocalopenError(
                f"No {want} file here. Quantizations offered: {', '.join(offered) or 'unknown'} "
                "(use --quant, or --file NAME)."
            )
    first = picked[0]
    part = split_part(first.filename)
    if part is not None:  # a split model: all parts of the same stem
        picked = sorted(
            (f for f in ggufs if (p := split_part(f.filename)) is not None and p.stem == part.stem),
            key=lambda f: f.filename,
        )
        expected = part.total
        if len(picked) != expected:
            raise LocalopenError(f"{first.filename} is split into {expected} parts but the Hub lists {len(picked)}.")
        return picked
    return [first]


# A projector's precision, best first: it is small beside the model, and its errors reach every image.
_PROJECTOR_PREFERENCE = ("f16", "bf16", "f32", "q8_0")


def choose_projector(files: list[RemoteFile]) -> RemoteFile | None:
    """The repository's vision projector (mmproj file) that comes with its model, or None (a text
    model): the most precise one where several are published."""
    projectors = [f for f in files if is_gguf(f.filename) and is_projector_name(f.filename)]

    def rank(f: RemoteFile) -> tuple[int, str]:
        low = f.filename.lower()
        found = [i for i, p in enumerate(_PROJECTOR_PREFERENCE) if p in low]
        return (found[0] if found else len(_PROJECTOR_PREFERENCE), f.filename)

    return min(projectors, key=rank) if projectors else None


def target_path(models_dir: Path, remote: RemoteFile) -> Path:
    return models_dir / remote.repo / Path(remote.filename).name


def pull(
    hub: Hub,
    conn: sqlite3.Connection,
    models_dir: Path,
    repo: str,
    *,
    quant: str | None = None,
    filename: str | None = None,
    pattern: str | None = None,
    on_progress: Callable[[str, Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Path:
    """Download (or resume) a model; returns the path to load (the first part of a split model)."""
    if models_dir.exists() and not models_dir.is_dir():
        raise LocalopenError(
            f"The models folder setting names a file, not a folder: {models_dir}. Choose a folder with "
            "`localopen settings models_dir PATH` (or the app's settings)."
        )
    files = hub.files(repo)
    record_hub_files(conn, files)
    chosen = choose_files(files, quant, filename, pattern)
    total = sum(f.size or 0 for f in chosen)
    projector = choose_projector(files)  # a vision model's images need it: fetched, verified, beside it
    fetched = [*chosen, projector] if projector is not None else chosen
    remaining = sum((f.size or 0) - _have(target_path(models_dir, f)) for f in fetched)
    check_disk_space(models_dir, remaining)
    for remote in fetched:
        final = target_path(models_dir, remote)
        if final.exists() and final.stat().st_size == remote.size:
            continue  # this part is installed (it was verified before it got its final name)
        download(remote, final, should_stop=should_stop, on_progress=_named(on_progress, remote.filename))
    first = target_path(models_dir, chosen[0])
    add_downloaded(conn, first, chosen[0], total)
    return first


def unfinished(models_dir: Path) -> list[tuple[str, str]]:
    """(repo, file name) of downloads an earlier run left unfinished, to offer resuming (disk work)."""
    return unfinished_downloads(models_dir)


def _named(on_progress: Callable[[str, Progress], None] | None, name: str) -> Callable[[Progress], None] | None:
    """Progress of one file, reported with its name."""
    if on_progress is None:
        return None
    return lambda p: on_progress(name, p)


def _have(final: Path) -> int:
    if final.exists():
        return final.stat().st_size
    part = final.with_name(final.name + ".part")
    return part.stat().st_size if part.exists() else 0
