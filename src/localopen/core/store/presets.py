"""Per-model presets in SQLite: how one model is loaded, stored by its name as the library and the
API call it (so it follows the file wherever the library finds it)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Preset:
    model: str
    settings: dict[str, Any]
    note: str  # how it was chosen: "tuned on … (tg +12 %)", or by hand
    updated_at: str


def get(conn: sqlite3.Connection, model: str) -> Preset | None:
    row = conn.execute("SELECT * FROM model_presets WHERE model = ?", (model,)).fetchone()
    if row is None:
        return None
    try:
        settings = json.loads(row["settings"])
    except ValueError:
        settings = {}
    return Preset(row["model"], settings if isinstance(settings, dict) else {}, row["note"], row["updated_at"])


def save(conn: sqlite3.Connection, model: str, settings: dict[str, Any], note: str = "") -> None:
    """Replace a model's preset (an empty one is removed)."""
    with conn:
        if not settings:
            conn.execute("DELETE FROM model_presets WHERE model = ?", (model,))
            return
        conn.execute(
            "INSERT OR REPLACE INTO model_presets(model, settings, note, updated_at) VALUES (?, ?, ?, ?)",
            (model, json.dumps(settings, sort_keys=True), note, dt.datetime.now(dt.timezone.utc).isoformat()),
        )


def all_presets(conn: sqlite3.Connection) -> list[Preset]:
    names = [r["model"] for r in conn.execute("SELECT model FROM model_presets ORDER BY model")]
    return [p for p in (get(conn, n) for n in names) if p is not None]
