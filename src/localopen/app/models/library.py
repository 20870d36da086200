"""The local library as the faces show it: each installed model with its grade and usable-here verdict.

Listing reads the database only; scanning the models folder and reading GGUF headers is disk
work that the GUI runs off its UI thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from localopen.app.context import AppContext
from localopen.core.errors import LocalopenError
from localopen.core.estimate.verdict import DAMAGED, Verdict
from localopen.core.gguf.files import parts_of
from localopen.core.gguf.header import GGUFError, read_header
from localopen.core.machine.hardware import HardwareProfile
from localopen.core.openness.grade import Grade, evidence_from_header, grade
from localopen.core.openness.recognise import CatalogMatch, match_file
from localopen.core.store import library_db as core_library
from localopen.core.store import measurements as usability
from localopen.core.store.hashing import cached_sha256, known_sha256, recorded
from localopen.core.store.library_db import LibraryModel, VerifyResult
from localopen.engine.client import Engine
from localopen.engine.errors import ContextTooLongError, EngineDied, EngineError, ModelLoadError

# (path, mtime_ns) -> the file's grade and chat template, or why its header cannot be trusted: read once
# per file version.
_grades: dict[tuple[str, int], tuple[Grade, str | None, dict[str, Any]] | GGUFError] = {}
_grades_lock = threading.Lock()


def scan(ctx: AppContext) -> int:
    """Pick up models put in the models folder by hand (disk work)."""
    return core_library.scan(ctx.db, ctx.models_dir)


def _catalog_grade(ctx: AppContext, model: LibraryModel) -> Grade | None:
    """A file downloaded from a catalog repo, or recognised as a catalog model, has the catalog's
    (curated) grade."""
    entry = ctx.catalog.get(model.repo) if model.repo else None
    if entry is None:
        found = recognised(ctx, model)
        entry = found.model if found is not None else None
    return entry.grade if entry is not None else None


def recognised(ctx: AppContext, model: LibraryModel) -> CatalogMatch | None:
    """The catalog model a file from elsewhere is (by its cached sha256, else by name), if any."""
    checked = header_facts(ctx, model.path)
    if isinstance(checked, GGUFError):
        return None
    return match_file(ctx.catalog, checked[2], model.filename, known_sha256(ctx.db, model.path))


_NAMING = ("general.basename", "general.size_label", "general.finetune", "general.name")


def _checked_grade(ctx: AppContext, path: Path) -> Grade | GGUFError:
    """The file's provisional grade, or why its header cannot be trusted (a truncated file, ...)."""
    checked = header_facts(ctx, path)
    return checked if isinstance(checked, GGUFError) else checked[0]


def header_facts(ctx: AppContext, path: Path) -> tuple[Grade, str | None, dict[str, Any]] | GGUFError:
    """What the header says (the provisional grade, the chat template, the naming metadata), read
    once per file version."""
    try:
        key = (str(path), path.stat().st_mtime_ns)
    except OSError as exc:
        return GGUFError(f"{path.name} cannot be read: {exc.strerror or exc}.")
    with _grades_lock:
        if key in _grades:
            return _grades[key]
    found: tuple[Grade, str | None, dict[str, Any]] | GGUFError
    try:
        header = read_header(path)
        evidence = evidence_from_header(header.metadata, ctx.catalog.evidence_by_repo())
        naming = {k: v for k, v in header.metadata.items() if k in _NAMING}
        found = (grade(evidence, provisional=True), header.chat_template, naming)
    except GGUFError as exc:
        found = exc
    with _grades_lock:
        _grades[key] = found
    return found


def chat_template_of(ctx: AppContext, path: Path) -> tuple[bool, str | None]:
    """(the header is readable, its chat template), from the header read once per file version."""
    checked = header_facts(ctx, path)
    return (False, None) if isinstance(checked, GGUFError) else (True, checked[1])


def grade_of_path(ctx: AppContext, path: Path) -> Grade | None:
    """The grade of a file: the catalog's for a catalog repo, else a provisional one from its own
    metadata; None for a damaged file."""
    checked = _checked_grade(ctx, path)
    if isinstance(checked, GGUFError):
        return None
    model = core_library.get(ctx.db, str(path))
    return (_catalog_grade(ctx, model) if model is not None else None) or checked


def note_load(ctx: AppContext, path: Path | str, error: LocalopenError | None) -> None:
    """Remember whether a model loaded on this machine: a load that failed because the model cannot
    run here (not a cancelled or timed-out call) makes its verdict 'does not fit'."""
    machine = ctx.machine_id()
    if isinstance(error, ModelLoadError) and error.settings:
        return  # what was asked cannot be, whatever the machine: the model's verdict is not changed
    if error is None:
        usability.clear_load_failure(ctx.db, str(path), machine)
    elif isinstance(error, ModelLoadError) and error.damaged:
        usability.record_load_failure(ctx.db, str(path), machine, f"{DAMAGED}{error}")
    elif isinstance(error, (ModelLoadError, ContextTooLongError, EngineDied)) or not isinstance(error, EngineError):
        usability.record_load_failure(ctx.db, str(path), machine, str(error))


def verdict_of(ctx: AppContext, model: LibraryModel, profile: HardwareProfile | None) -> Verdict | None:
    if profile is None or model.missing:
        return None
    return usability.verdict_here(ctx.db, str(model.path), profile.fingerprint, ctx.thresholds)


def import_model(ctx: AppContext, path: Path) -> LibraryModel:
    """A .gguf from anywhere, added by path (nothing copied); its header's problems said in words.
    Its sha256 is recorded next (record_sha256: long disk work, a task of its own)."""
    return core_library.import_file(ctx.db, path)


def record_missing_sha256(ctx: AppContext) -> int:
    """Record the sha256 of each file added from elsewhere (imported, or found in the models folder)
    that has none recorded yet (long disk work, in the background); downloaded files are checked
    against the Hub's. Returns how many files were read."""
    read = 0
    for model in installed(ctx):
        if model.source == "downloaded":
            continue
        for part in parts_of(model.path):
            if part.exists() and recorded(ctx.db, part) is None:
                cached_sha256(ctx.db, part)
                read += 1
    return read


def record_sha256(ctx: AppContext, model: LibraryModel) -> None:
    """The sha256 of each part of a file added from elsewhere, as it is now (once: a cached one is
    kept), so that `verify` notices when its bytes change later (bit rot keeps size and time)."""
    for part in parts_of(model.path):
        if part.exists():
            cached_sha256(ctx.db, part)


def find_model(ctx: AppContext, name: str) -> LibraryModel:
    """A library model by name, path or sha256 prefix; LocalopenError in words when none or several."""
    return core_library.find(ctx.db, name)


def owns(ctx: AppContext, model: LibraryModel) -> bool:
    """Whether the file is localopen's own (downloaded into its models folder), not one added by path."""
    return core_library.owns_file(model, ctx.models_dir)


def remove_model(ctx: AppContext, model: LibraryModel, delete_file: bool = False) -> str:
    """Forget the model (and delete its file when asked and it is localopen's); what was done, in words."""
    return core_library.remove(ctx.db, model, ctx.models_dir, delete_file)


def remember_hub_files(ctx: AppContext, repo: str) -> None:
    """Ask the Hub for a repository's files (names, sizes, hashes) and keep them (network work)."""
    core_library.record_hub_files(ctx.db, ctx.hub().files(repo))


def installed(ctx: AppContext) -> list[LibraryModel]:
    """The library's models present on disk (the Chat view's list), newest use first as the store keeps them."""
    return [m for m in core_library.list_models(ctx.db) if not m.missing]


def mark_used(ctx: AppContext, path: Path | str) -> None:
    """A model was just loaded: it is recently used."""
    core_library.touch(ctx.db, Path(path))


def installed_by_repo(ctx: AppContext) -> dict[str, LibraryModel]:
    """Installed catalog and Hub models by repo (present on disk): downloaded ones by their repo,
    files from elsewhere by the catalog model they are recognised as."""
    models = installed(ctx)
    out = {m.repo: m for m in models if m.repo}
    for m in models:
        if not m.repo:
            found = recognised(ctx, m)
            if found is not None:
                out.setdefault(found.model.gguf_repo, m)
    return out


def _gguf_magic(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == b"GGUF"
    except OSError:
        return False


def resolve_model(ctx: AppContext, name: str) -> Path:
    """A path to a .gguf, or a model in the library (by path, file name, or part of its name or repo)."""
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_file() or (path.suffix.lower() != ".gguf" and not _gguf_magic(path)):
            # A path names a model only when it is one (`preset ../../etc/passwd` is no model).
            raise LocalopenError(f"{name} is not a GGUF model file: name an installed model or a .gguf file.")
        return path
    scan(ctx)
    model = core_library.find(ctx.db, name)
    if model.missing:
        raise LocalopenError(
            f"{model.filename} was in the library but {model.path} is gone (moved or deleted). "
            "Import it again from its new place, or `localopen rm` it."
        )
    core_library.touch(ctx.db, model.path)
    return model.path


def verify(
    ctx: AppContext, model: LibraryModel, progress: Callable[[str, int, int], None] | None = None
) -> VerifyResult:
    """A model's bytes against the Hub's sha256 (read whole, never from a cache), its header, then
    llama.cpp's own loader on it (in an engine of its own): a file llama.cpp rejects is damaged,
    here and in every face's verdict, never "does not fit"."""
    result = core_library.verify(ctx.db, model, progress)
    if result.ok is False or model.missing:
        return result
    engine = Engine()
    try:
        loads = engine.check(str(model.path))
    except ModelLoadError as exc:
        note_load(ctx, model.path, exc)
        return VerifyResult(False, str(exc))
    except EngineError as exc:  # the check itself could not run (llama.cpp unavailable): say so
        return VerifyResult(result.ok, f"{result.message} llama.cpp's check could not run: {exc}")
    finally:
        engine.shutdown()
    return VerifyResult(result.ok, f"{result.message} {loads}")
