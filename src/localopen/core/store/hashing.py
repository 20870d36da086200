"""sha256 of model files, computed once and cached by path, size and modification time."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

CHUNK = 8 * 2**20


def sha256_file(path: Path, progress: Callable[[int, int], None] | None = None) -> str:
    """The file's sha256, read whole; progress(bytes read, size) after each block."""
    digest = hashlib.sha256()
    size, done = path.stat().st_size, 0
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
            done += len(block)
            if progress is not None:
                progress(done, size)
    return digest.hexdigest()


def record(conn: sqlite3.Connection, path: Path, st: os.stat_result, value: str) -> None:
    """Keep a file's sha256 as it was when `st` was taken."""
    with conn:
        conn.execute(
            "INSERT OR REPLACE INTO file_hashes(path, size, mtime_ns, sha256) VALUES (?, ?, ?, ?)",
            (str(path.resolve()), st.st_size, st.st_mtime_ns, value),
        )


def recorded(conn: sqlite3.Connection, path: Path) -> sqlite3.Row | None:
    """What was last recorded of the file (size, modification time, sha256), whatever it is now."""
    return conn.execute(
        "SELECT size, mtime_ns, sha256 FROM file_hashes WHERE path = ?", (str(path.resolve()),)
    ).fetchone()


def same_file(row: sqlite3.Row, st: os.stat_result) -> bool:
    """A record still describes the file: the same size and modification time."""
    return bool((row["size"], row["mtime_ns"]) == (st.st_size, st.st_mtime_ns))


def known_sha256(conn: sqlite3.Connection, path: Path) -> str | None:
    """The cached sha256 of the file as it is now (same size and time), never computed here."""
    try:
        st = path.resolve().stat()
    except OSError:
        return None
    row = recorded(conn, path)
    return row["sha256"] if row is not None and same_file(row, st) else None


def cached_sha256(conn: sqlite3.Connection, path: Path) -> str:
    st = path.resolve().stat()
    row = recorded(conn, path)
    if row is not None and same_file(row, st):
        return str(row["sha256"])
    value = sha256_file(path)
    record(conn, path, st, value)
    return value
