"""Submissions to the open usability index: each one's files exactly as the user saw them, kept
until the Hub took them (a submission made offline waits for the next share), and the records
each holds, so a record is never offered twice."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class StoredSubmission:
    id: str
    created_on: str
    repo: str
    files: dict[str, bytes]
    sent_to: str  # the pull request's address ('' while waiting)


def add(
    conn: sqlite3.Connection, sid: str, created_on: str, repo: str, files: dict[str, bytes], record_ids: list[str]
) -> None:
    text = json.dumps({path: data.decode() for path, data in files.items()})
    with conn:
        conn.execute(
            "INSERT INTO index_submissions(id, created_on, repo, files) VALUES (?,?,?,?)", (sid, created_on, repo, text)
        )
        conn.executemany(
            "INSERT OR IGNORE INTO index_shared(record_id, submission) VALUES (?,?)", [(r, sid) for r in record_ids]
        )


def mark_sent(conn: sqlite3.Connection, sid: str, address: str) -> None:
    with conn:
        conn.execute("UPDATE index_submissions SET sent_to = ? WHERE id = ?", (address, sid))


def waiting(conn: sqlite3.Connection) -> list[StoredSubmission]:
    """Submissions the Hub has not taken yet, oldest first."""
    rows = conn.execute("SELECT * FROM index_submissions WHERE sent_to = '' ORDER BY created_on, rowid").fetchall()
    return [_of(r) for r in rows]


def sent(conn: sqlite3.Connection) -> list[StoredSubmission]:
    rows = conn.execute("SELECT * FROM index_submissions WHERE sent_to != '' ORDER BY created_on, rowid").fetchall()
    return [_of(r) for r in rows]


def shared_ids(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT record_id FROM index_shared")}


def _of(row: sqlite3.Row) -> StoredSubmission:
    files = {path: text.encode() for path, text in json.loads(row["files"]).items()}
    return StoredSubmission(row["id"], row["created_on"], row["repo"], files, row["sent_to"])
