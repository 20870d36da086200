"""sha256 of model files, computed once and cached by path, size and modification time."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

CHUNK = 8 * 2**20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def cached_sha256(conn: sqlite3.Connection, path: Path) -> str:
    path = path.resolve()
    st = path.stat()
    row = conn.execute("SELECT size, mtime_ns, sha256 FROM file_hashes WHERE path = ?", (str(path),)).fetchone()
    if row and row["size"] == st.st_size and row["mtime_ns"] == st.st_mtime_ns:
        return row["sha256"]
    value = sha256_file(path)
    with conn:
        conn.execute(
            "INSERT OR REPLACE INTO file_hashes(path, size, mtime_ns, sha256) VALUES (?, ?, ?, ?)",
            (str(path), st.st_size, st.st_mtime_ns, value),
        )
    return value
