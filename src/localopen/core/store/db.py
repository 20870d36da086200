"""The app's SQLite database: schema versions, one connection helper.

Each migration runs in one transaction with its version bump (SQLite's user_version is part of
the transaction), so a migration that fails half-way leaves the database exactly as it was. The
scripts only create what does not exist yet, so a database left half-upgraded by an older version
(whose migrations were not transactions) is finished on the next start.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

from localopen.core.errors import LocalopenError

log = logging.getLogger("localopen.storage")


class StorageError(LocalopenError):
    """The database cannot be opened or upgraded; the message says what to do. `damaged`: the file
    itself is unreadable, and salvage() can keep it aside and start anew with what can be read."""

    def __init__(self, message: str, damaged: bool = False) -> None:
        super().__init__(message)
        self.damaged = damaged


REPAIR_HINT = "`localopen repair-db` (the app offers the same)"


def storage_error(path: Path, exc: BaseException, doing: str = "open") -> StorageError:
    """A database fault in words: a full disk, a read-only folder or file, or a damaged file (with
    the way to save what can be read); never the advice to move a healthy file aside."""
    text = str(exc).lower()
    errno = getattr(exc, "errno", None)
    if "disk is full" in text or errno == 28:
        return StorageError(f"The disk holding localopen's database ({path.parent}) is full: free some space.")
    if "readonly" in text or "read-only" in text or isinstance(exc, PermissionError) or errno in (1, 13, 30):
        where = path if path.exists() and not os.access(path, os.W_OK) else path.parent
        return StorageError(
            f"localopen cannot write its database: {where} is read-only. Make it writable, or set "
            "LOCALOPEN_HOME to a folder that is."
        )
    if "unable to open database file" in text and path.parent.exists() and not os.access(path.parent, os.W_OK):
        return StorageError(
            f"localopen cannot write its database: the folder {path.parent} is read-only. Make it writable, "
            "or set LOCALOPEN_HOME to a folder that is."
        )
    if "not a database" in text or "malformed" in text or "encrypted" in text:
        return StorageError(
            f"localopen's database {path} is damaged ({exc}). Run {REPAIR_HINT}: it keeps the damaged "
            "file beside the new one and copies what can still be read (conversations, results). Your "
            "models are files in the models folder and are not affected.",
            damaged=True,
        )
    return StorageError(f"localopen cannot {doing} its database {path}: {exc}.")


def check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    """A database whose first page opens can still have damaged pages (a bad sector, a copy cut
    short): SQLite's quick check reads every page once (milliseconds for this app's few MB), so
    the damage is said at start, with the repair, and not as an error in the middle of a task."""
    try:
        problems = [row[0] for row in conn.execute("PRAGMA quick_check(3)")]
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise storage_error(path, exc) from exc
    if problems != ["ok"]:
        conn.close()
        log.error("Database %s fails its quick check: %s", path, problems)
        raise storage_error(path, sqlite3.DatabaseError(f"database disk image is malformed: {problems[0]}"))


def salvage(path: Path) -> tuple[Path, int]:
    """Keep a damaged database aside (never deleted), start a new one, and copy into it every row
    that can still be read, table by table. Returns where the old file is kept and the rows saved."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kept = path.with_name(f"{path.name}.damaged-{stamp}")
    path.rename(kept)
    for suffix in ("-wal", "-shm"):  # SQLite's side files go with their database
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(kept.with_name(kept.name + suffix))
    conn = connect(path)
    saved = 0
    try:
        conn.execute("ATTACH DATABASE ? AS old", (f"file:{kept}?mode=ro",))
    except sqlite3.Error:
        log.warning("Nothing can be read from the damaged database %s", kept, exc_info=True)
        conn.close()
        return kept, 0
    tables = [r[0] for r in conn.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'")]
    for table in tables:
        try:
            new = [r[1] for r in conn.execute(f'PRAGMA main.table_info("{table}")')]
            old = {r[1] for r in conn.execute(f'PRAGMA old.table_info("{table}")')}
            columns = ", ".join(f'"{c}"' for c in new if c in old)
            if not columns:
                continue
            with conn:
                cursor = conn.execute(
                    f'INSERT OR IGNORE INTO main."{table}" ({columns}) SELECT {columns} FROM old."{table}"'
                )
            saved += max(cursor.rowcount, 0)
        except sqlite3.Error:
            log.warning("Table %s of %s could not be read", table, kept, exc_info=True)
    conn.execute("DETACH DATABASE old")
    conn.close()
    return kept, saved


MIGRATIONS = [
    # 1: benchmark results and the sha256 cache
    """
    CREATE TABLE IF NOT EXISTS bench_results (
        id INTEGER PRIMARY KEY,
        created_at TEXT NOT NULL,
        model_sha256 TEXT NOT NULL,
        model_name TEXT NOT NULL,
        model_path TEXT NOT NULL,
        quantization TEXT,
        test TEXT NOT NULL,
        machine TEXT NOT NULL,
        backends TEXT,
        llama_cpp_version TEXT,
        avg_ts REAL NOT NULL,
        stddev_ts REAL NOT NULL,
        record TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS bench_results_model ON bench_results(model_sha256, machine);
    CREATE TABLE IF NOT EXISTS file_hashes (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        sha256 TEXT NOT NULL
    );
    """,
    # 2: the local library and the Hub's exact file facts
    """
    CREATE TABLE IF NOT EXISTS models (
        path TEXT PRIMARY KEY,
        repo TEXT,
        filename TEXT NOT NULL,
        quant TEXT,
        size INTEGER,
        expected_sha256 TEXT,
        source TEXT NOT NULL,
        added_at TEXT NOT NULL,
        last_used TEXT,
        verified_at TEXT
    );
    CREATE TABLE IF NOT EXISTS hub_files (
        repo TEXT NOT NULL,
        filename TEXT NOT NULL,
        size INTEGER,
        sha256 TEXT,
        revision TEXT,
        fetched_at TEXT NOT NULL,
        PRIMARY KEY (repo, filename)
    );
    """,
    # 3: conversations
    """
    CREATE TABLE IF NOT EXISTS conversations (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL,
        model_path TEXT,
        settings TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS messages (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        stats TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS messages_conversation ON messages(conversation_id, position);
    """,
    # 4: loads that failed on this machine (the verdict says so)
    """
    CREATE TABLE IF NOT EXISTS load_failures (
        path TEXT NOT NULL,
        machine TEXT NOT NULL,
        message TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (path, machine)
    );
    """,
    # 5: results probed on a zero-data replica of a Hub file, apart from measurements of real
    # files; this machine's calibration per llama.cpp build. (Each script runs in one transaction
    # with its version number, so ALTER TABLE cannot be applied twice.)
    """
    ALTER TABLE bench_results ADD COLUMN basis TEXT NOT NULL DEFAULT 'measured';
    CREATE INDEX IF NOT EXISTS bench_results_basis ON bench_results(basis, machine, model_path);
    CREATE TABLE IF NOT EXISTS calibrations (
        machine TEXT NOT NULL,
        llama_cpp_version TEXT NOT NULL,
        created_at TEXT NOT NULL,
        figures TEXT NOT NULL,
        PRIMARY KEY (machine, llama_cpp_version)
    );
    """,
    # 6: a reasoning model's thinking, kept apart from its answer
    """
    ALTER TABLE messages ADD COLUMN reasoning TEXT NOT NULL DEFAULT '';
    """,
    # 7: "usable as an agent here", measured per file and machine; a message's tool calls (JSON) and
    # the call a tool result answers
    """
    CREATE TABLE IF NOT EXISTS tool_checks (
        id INTEGER PRIMARY KEY,
        created_at TEXT NOT NULL,
        model_path TEXT NOT NULL,
        model_sha256 TEXT NOT NULL,
        machine TEXT NOT NULL,
        llama_cpp_version TEXT,
        tool_format TEXT,
        passed INTEGER NOT NULL,
        total INTEGER NOT NULL,
        record TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS tool_checks_model ON tool_checks(model_sha256, machine);
    ALTER TABLE messages ADD COLUMN tool_calls TEXT NOT NULL DEFAULT '';
    ALTER TABLE messages ADD COLUMN tool_call_id TEXT NOT NULL DEFAULT '';
    """,
    # 8: per-model presets (how a model is loaded, over the global settings)
    """
    CREATE TABLE IF NOT EXISTS model_presets (
        model TEXT PRIMARY KEY,
        settings TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '',
        updated_at TEXT NOT NULL
    );
    """,
    # 9: a message's images (file names in the data folder's images/, copied there when attached)
    """
    ALTER TABLE messages ADD COLUMN images TEXT NOT NULL DEFAULT '';
    """,
    # 10: results shared with the open usability index: each submission exactly as the user saw it
    # (kept until the Hub took it: offline, it waits), and the records it holds (never offered twice)
    """
    CREATE TABLE IF NOT EXISTS index_submissions (
        id TEXT PRIMARY KEY,
        created_on TEXT NOT NULL,
        repo TEXT NOT NULL,
        files TEXT NOT NULL,
        sent_to TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE IF NOT EXISTS index_shared (
        record_id TEXT PRIMARY KEY,
        submission TEXT NOT NULL REFERENCES index_submissions(id)
    );
    """,
]


def connect(path: Path, migrations: list[str] = MIGRATIONS) -> sqlite3.Connection:
    """Open (creating and migrating as needed) the database at path."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=10, isolation_level=None)  # transactions are explicit
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL never corrupts the database; it only skips an fsync per commit.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except (sqlite3.Error, OSError) as exc:
        raise storage_error(path, exc) from exc
    if version > len(migrations):
        conn.close()
        raise StorageError(
            f"The database {path} was written by a newer localopen (schema {version}; this version "
            f"knows {len(migrations)}). Update localopen, or move the file aside to start afresh."
        )
    for number, script in enumerate(migrations[version:], start=version + 1):
        try:
            conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()
            log.exception("Migration %d of %s failed", number, path)
            fault = storage_error(path, exc, "upgrade")
            if fault.damaged or "read-only" in str(fault) or "is full" in str(fault):
                raise fault from exc
            raise StorageError(
                f"localopen could not upgrade its database {path} to schema {number}: {exc}. "
                f"Nothing was changed (it is still at schema {number - 1}). Free some disk space "
                "and start again; if it keeps failing, move the file aside to start afresh and "
                "report the problem with the log."
            ) from exc
        log.info("Database %s migrated to schema %d", path, number)
    # The rest of the code uses `with conn:` for its transactions: Python's default handling.
    conn.isolation_level = "DEFERRED"
    return conn
