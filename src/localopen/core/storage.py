"""The app's SQLite database: schema versions, one connection helper."""

from __future__ import annotations

import sqlite3
from pathlib import Path

MIGRATIONS = [
    # 1: benchmark results and the sha256 cache
    """
    CREATE TABLE bench_results (
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
    CREATE INDEX bench_results_model ON bench_results(model_sha256, machine);
    CREATE TABLE file_hashes (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        sha256 TEXT NOT NULL
    );
    """,
    # 2: the local library and the Hub's exact file facts
    """
    CREATE TABLE models (
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
    CREATE TABLE hub_files (
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
    CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL,
        model_path TEXT,
        settings TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        stats TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX messages_conversation ON messages(conversation_id, position);
    """,
    # 4: loads that failed on this machine (the verdict says so)
    """
    CREATE TABLE load_failures (
        path TEXT NOT NULL,
        machine TEXT NOT NULL,
        message TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (path, machine)
    );
    """,
]


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating and migrating as needed) the database at path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=10)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL never corrupts the database; it only skips an fsync per commit (each chat
    # message is a commit, and the UI thread makes them).
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        with conn:
            conn.executescript(script)
            conn.execute(f"PRAGMA user_version = {number}")
    return conn
