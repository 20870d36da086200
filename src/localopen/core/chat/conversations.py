"""Chat conversations kept in SQLite: each bound to a model and its settings."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from localopen.core.records import AnswerStats


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class Message:
    id: int
    position: int
    role: str
    content: str
    stats: AnswerStats | None = None
    reasoning: str = ""  # a reasoning model's thinking before this answer
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # an answer's calls, as OpenAI writes them
    tool_call_id: str = ""  # a tool result: the call it answers
    images: list[str] = field(default_factory=list)  # a user's pictures: names in the app's images folder


@dataclass
class Conversation:
    id: int
    title: str
    model_path: str | None
    settings: dict[str, Any] = field(default_factory=dict)
    updated_at: str = ""


def create(conn: sqlite3.Connection, title: str, model_path: str | None, settings: dict[str, Any]) -> Conversation:
    with conn:
        cur = conn.execute(
            "INSERT INTO conversations(title, model_path, settings, created_at, updated_at) VALUES (?,?,?,?,?)",
            (title, model_path, json.dumps(settings), _now(), _now()),
        )
    created = get(conn, int(cur.lastrowid or 0))
    assert created is not None
    return created


def get(conn: sqlite3.Connection, conversation_id: int) -> Conversation | None:
    row = conn.execute("SELECT * FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
    if row is None:
        return None
    return Conversation(
        row["id"], row["title"], row["model_path"], json.loads(row["settings"] or "{}"), row["updated_at"]
    )


def list_all(conn: sqlite3.Connection, search: str = "") -> list[Conversation]:
    """Newest first; `search` matches titles and message text."""
    if search:
        rows = conn.execute(
            "SELECT DISTINCT c.* FROM conversations c LEFT JOIN messages m ON m.conversation_id = c.id"
            " WHERE c.title LIKE ? OR m.content LIKE ? ORDER BY c.updated_at DESC, c.id DESC",
            (f"%{search}%", f"%{search}%"),
        ).fetchall()
    else:
        rows = conn.execute("SELECT * FROM conversations ORDER BY updated_at DESC, id DESC").fetchall()
    return [
        Conversation(r["id"], r["title"], r["model_path"], json.loads(r["settings"] or "{}"), r["updated_at"])
        for r in rows
    ]


def rename(conn: sqlite3.Connection, conversation_id: int, title: str) -> None:
    with conn:
        conn.execute(
            "UPDATE conversations SET title = ?, updated_at = ? WHERE id = ?",
            (title.strip() or "Untitled", _now(), conversation_id),
        )


def update(conn: sqlite3.Connection, conversation_id: int, model_path: str | None, settings: dict[str, Any]) -> None:
    with conn:
        conn.execute(
            "UPDATE conversations SET model_path = ?, settings = ?, updated_at = ? WHERE id = ?",
            (model_path, json.dumps(settings), _now(), conversation_id),
        )


def delete(conn: sqlite3.Connection, conversation_id: int) -> None:
    with conn:
        conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))


def messages(conn: sqlite3.Connection, conversation_id: int) -> list[Message]:
    rows = conn.execute(
        "SELECT * FROM messages WHERE conversation_id = ? ORDER BY position", (conversation_id,)
    ).fetchall()
    return [
        Message(
            r["id"],
            r["position"],
            r["role"],
            r["content"],
            AnswerStats.from_dict(json.loads(r["stats"])) if r["stats"] else None,
            r["reasoning"],
            json.loads(r["tool_calls"]) if r["tool_calls"] else [],
            r["tool_call_id"],
            json.loads(r["images"]) if r["images"] else [],
        )
        for r in rows
    ]


def add_message(
    conn: sqlite3.Connection,
    conversation_id: int,
    role: str,
    content: str,
    stats: AnswerStats | None = None,
    reasoning: str = "",
    tool_calls: list[dict[str, Any]] | None = None,
    tool_call_id: str = "",
    images: list[str] | None = None,
) -> Message:
    with conn:
        position = conn.execute(
            "SELECT COALESCE(MAX(position), -1) + 1 FROM messages WHERE conversation_id = ?", (conversation_id,)
        ).fetchone()[0]
        cur = conn.execute(
            "INSERT INTO messages(conversation_id, position, role, content, stats, created_at, reasoning,"
            " tool_calls, tool_call_id, images) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                conversation_id,
                position,
                role,
                content,
                json.dumps(stats.to_dict()) if stats else None,
                _now(),
                reasoning,
                json.dumps(tool_calls) if tool_calls else "",
                tool_call_id,
                json.dumps(images) if images else "",
            ),
        )
        conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (_now(), conversation_id))
    return Message(
        int(cur.lastrowid or 0),
        position,
        role,
        content,
        stats,
        reasoning,
        list(tool_calls or []),
        tool_call_id,
        list(images or []),
    )


def image_names(conn: sqlite3.Connection) -> set[str]:
    """Every picture a stored message still shows."""
    names: set[str] = set()
    for row in conn.execute("SELECT images FROM messages WHERE images != ''"):
        names.update(json.loads(row["images"]))
    return names


def truncate_from(conn: sqlite3.Connection, conversation_id: int, position: int) -> None:
    """Drop this message and everything after it (regenerate, edit and resend)."""
    with conn:
        conn.execute("DELETE FROM messages WHERE conversation_id = ? AND position >= ?", (conversation_id, position))
