"""The local library: downloaded models in the models folder, and files imported by path.

Imported files are not copied; a moved or deleted one is reported as missing, not a crash.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from localopen.core.errors import LocalopenError
from localopen.core.gguf.files import is_first_part, is_gguf, is_projector_name, model_name, parts_of, quant_of
from localopen.core.gguf.header import GGUFHeader, read_header
from localopen.core.gguf.projector import is_projector
from localopen.core.hub.client import RemoteFile
from localopen.core.store import folders
from localopen.core.store.hashing import cached_sha256, record, recorded, same_file, sha256_file


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class LibraryModel:
    path: Path
    repo: str | None
    filename: str
    quant: str | None
    size: int | None
    expected_sha256: str | None
    source: str  # downloaded | imported | found (in the models folder; another program's, perhaps)
    added_at: str
    last_used: str | None

    @property
    def missing(self) -> bool:
        return not self.path.exists()

    @property
    def name(self) -> str:
        return model_name(self.filename)

    def to_dict(self) -> dict:
        return {
            "name": self.name,  # the id every face uses (the API, the Chat view, `localopen chat NAME`)
            "path": str(self.path),
            "repo": self.repo,
            "filename": self.filename,
            "quant": self.quant,
            "size": self.size,
            "expected_sha256": self.expected_sha256,
            "source": self.source,
            "added_at": self.added_at,
            "last_used": self.last_used,
            "missing": self.missing,
        }


def _row(row: sqlite3.Row) -> LibraryModel:
    return LibraryModel(
        Path(row["path"]),
        row["repo"],
        row["filename"],
        row["quant"],
        row["size"],
        row["expected_sha256"],
        row["source"],
        row["added_at"],
        row["last_used"],
    )


def record_hub_files(conn: sqlite3.Connection, files: list[RemoteFile]) -> None:
    with conn:
        conn.executemany(
            "INSERT OR REPLACE INTO hub_files(repo, filename, size, sha256, revision, fetched_at) VALUES (?,?,?,?,?,?)",
            [(f.repo, f.filename, f.size, f.sha256, f.revision, _now()) for f in files],
        )


def hub_files(conn: sqlite3.Connection, repo: str) -> list[RemoteFile]:
    rows = conn.execute("SELECT * FROM hub_files WHERE repo = ? ORDER BY filename", (repo,)).fetchall()
    return [RemoteFile(r["repo"], r["filename"], r["size"], r["sha256"], r["revision"] or "main") for r in rows]


def cached_files_by_repo(conn: sqlite3.Connection) -> dict[str, list[tuple[str, int, str | None]]]:
    """Every cached Hub file list, for exact sizes in the catalog."""
    out: dict[str, list[tuple[str, int, str | None]]] = {}
    for r in conn.execute("SELECT repo, filename, size, sha256 FROM hub_files"):
        out.setdefault(r["repo"], []).append((r["filename"], r["size"], r["sha256"]))
    return out


def add_downloaded(conn: sqlite3.Connection, path: Path, remote: RemoteFile, total_size: int) -> None:
    with conn:
        conn.execute(
            "INSERT OR REPLACE INTO models(path, repo, filename, quant, size, expected_sha256, source, added_at)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (str(path), remote.repo, remote.filename, remote.quant, total_size, remote.sha256, "downloaded", _now()),
        )


def import_file(conn: sqlite3.Connection, path: Path, name: str | None = None) -> LibraryModel:
    """Remember a local GGUF by path (not copied). Its header must read cleanly. `name`: what the
    library calls it when the file's own name says nothing (an Ollama blob named by its sha256)."""
    path = path.expanduser().resolve()
    header = read_header(path)  # clear error for a folder, a non-GGUF or a damaged file
    if is_projector(header):
        raise LocalopenError(
            f"{path.name} is a vision projector (an mmproj file), not a model: it is used with its model. Keep "
            "it in the same folder as the model file and import the model."
        )
    cached_sha256(conn, path)
    with conn:
        conn.execute(
            "INSERT OR REPLACE INTO models(path, repo, filename, quant, size, expected_sha256, source, added_at)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (str(path), None, name or path.name, header.quantization, path.stat().st_size, None, "imported", _now()),
        )
    return get(conn, str(path))  # type: ignore[return-value]


def get(conn: sqlite3.Connection, path: str) -> LibraryModel | None:
    row = conn.execute("SELECT * FROM models WHERE path = ?", (path,)).fetchone()
    return _row(row) if row else None


def scan(conn: sqlite3.Connection, models_dir: Path) -> int:
    """Pick up .gguf files in the models folder that the database does not know yet (disk work:
    never on a UI thread), as found: a shared folder holds other programs' files, and only files
    localopen downloaded are its to delete. Returns how many were added."""
    if not models_dir.is_dir():
        return 0
    known = {r["path"] for r in conn.execute("SELECT path FROM models")}
    added = 0
    for p in folders.files_under(models_dir):
        if not is_gguf(p.name) or not is_first_part(p.name) or str(p) in known:
            continue
        try:
            if not p.is_file():
                continue
            size = p.stat().st_size
        except OSError:  # gone or unreadable since the walk saw it
            continue
        if is_projector_name(p.name):  # a vision projector: used with the model beside it
            continue
        rel = p.relative_to(models_dir).parts
        repo = f"{rel[0]}/{rel[1]}" if len(rel) >= 3 else None
        with conn:
            conn.execute(
                "INSERT OR IGNORE INTO models(path, repo, filename, quant, size, source, added_at)"
                " VALUES (?,?,?,?,?,?,?)",
                (str(p), repo, p.name, quant_of(p.name), size, "found", _now()),
            )
        added += 1
    return added


def list_models(conn: sqlite3.Connection) -> list[LibraryModel]:
    """The library as recorded (no disk scan: see scan())."""
    return [_row(r) for r in conn.execute("SELECT * FROM models ORDER BY COALESCE(last_used, added_at) DESC")]


def find(conn: sqlite3.Connection, name: str) -> LibraryModel:
    """One library model by path, file name, or part of its name or repo."""
    models = list_models(conn)
    exact = [m for m in models if name in (str(m.path), m.filename, m.name)]
    if len(exact) == 1:
        return exact[0]
    needle = name.lower()
    matches = [m for m in models if needle in m.filename.lower() or needle in (m.repo or "").lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise LocalopenError(f"No model '{name}' in the library (see `localopen models`).")
    raise LocalopenError(f"'{name}' matches several models: " + ", ".join(m.filename for m in matches[:6]))


def touch(conn: sqlite3.Connection, path: Path) -> None:
    with conn:
        conn.execute("UPDATE models SET last_used = ? WHERE path = ?", (_now(), str(path)))


def read_part_headers(path: Path) -> list[GGUFHeader]:
    """The headers of every present part of a (split) model, first part first: weights and
    parameters are their sums. The first part is always read (a missing one is a clear error)."""
    return [read_header(p) for p in parts_of(path) if p == path or p.exists()]


@dataclass
class VerifyResult:
    ok: bool | None  # None: nothing to compare against
    message: str


def verify(
    conn: sqlite3.Connection, model: LibraryModel, progress: Callable[[str, int, int], None] | None = None
) -> VerifyResult:
    """Every part's bytes read and hashed against the Hub's sha256 (progress(part, read, size)),
    and the header and sizes checked; llama.cpp's own check is app/library.verify's."""
    if model.missing:
        return VerifyResult(False, f"{model.path} is missing (moved or deleted).")
    parts = parts_of(model.path)
    expected = {f.filename: f.sha256 for f in hub_files(conn, model.repo)} if model.repo else {}
    if model.expected_sha256:
        expected.setdefault(model.filename, model.expected_sha256)
    checked = same = 0
    notes: list[str] = []
    for part in parts:
        if not part.exists():
            return VerifyResult(False, f"Part {part.name} is missing.")
        want = expected.get(part.name)
        before = recorded(conn, part)  # the sha256 recorded when the file was imported or last checked
        report = (lambda done, size, name=part.name: progress(name, done, size)) if progress else None
        st = part.stat()
        actual = sha256_file(part, report)  # the bytes as they are now, never a cache
        if not (before is not None and before["sha256"] != actual and same_file(before, st)):
            record(conn, part, st, actual)  # a damaged file's record stays what the bytes were
        if want and actual != want:
            return VerifyResult(
                False, f"{part.name} does not match the Hub's sha256: it is damaged; delete it and download again."
            )
        checked += bool(want)
        if want or before is None:
            continue
        if before["sha256"] == actual:
            same += 1
        elif same_file(before, st):
            return VerifyResult(
                False,
                f"{part.name}'s bytes changed since its sha256 was recorded, though its size and modification "
                "time did not: it is damaged (bit rot or a failing disk). Restore it from a copy or download it again.",
            )
        else:
            notes.append(f"{part.name} was rewritten since its sha256 was recorded (its size or time changed)")
    try:
        read_header(model.path)  # also checks that its tensor data fits in the file
    except LocalopenError as exc:
        return VerifyResult(False, str(exc))
    with conn:
        conn.execute("UPDATE models SET verified_at = ? WHERE path = ?", (_now(), str(model.path)))
    if notes:
        return VerifyResult(None, "; ".join(notes) + ": its new sha256 is recorded now. Its header and size check out.")
    if same:
        return VerifyResult(True, f"sha256 matches the one recorded when it was added, for {same} file(s).")
    if not checked:
        return VerifyResult(
            None,
            "No sha256 from the Hub is known for this file; its sha256 is recorded now, so a later verify notices "
            "any change. Its header and size check out.",
        )
    return VerifyResult(True, f"sha256 matches the Hub for {checked} file(s).")


def owns_file(model: LibraryModel, models_dir: Path) -> bool:
    """Whether deleting this model deletes its file: only a file localopen downloaded (an imported
    or found one may be another program's: it is forgotten, the file stays)."""
    return model.source == "downloaded" or (model.source == "imported" and models_dir in model.path.parents)


def remove(conn: sqlite3.Connection, model: LibraryModel, models_dir: Path, delete_file: bool = False) -> str:
    """Delete a downloaded model (all parts and partial downloads); forget an imported or found one
    (its file stays), unless delete_file: the person asked for the file itself to go."""
    if not owns_file(model, models_dir) and not delete_file:
        message = f"Forgot {model.filename}; the file itself stays at {model.path}."
    else:
        for part in parts_of(model.path):
            for p in (part, part.with_name(part.name + ".part"), part.with_name(part.name + ".part.json")):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
        message = f"Deleted {model.filename}."
    with conn:
        conn.execute("DELETE FROM models WHERE path = ?", (str(model.path),))
    return message
