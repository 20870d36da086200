"""Saved "usable as an agent" checks: every run is added (like benchmark results), with the file's
sha256, this machine and the llama.cpp build, so a result is read for exactly what was measured."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class TaskOutcome:
    task: str  # what the task asks of the model, in words
    passed: bool
    detail: str  # what the model did


@dataclass(frozen=True)
class ToolCheck:
    model_path: str
    model_sha256: str
    machine: str
    llama_cpp_version: str
    tool_format: str
    outcomes: list[TaskOutcome] = field(default_factory=list)
    created_at: str = ""

    @property
    def passed(self) -> int:
        return sum(o.passed for o in self.outcomes)

    @property
    def total(self) -> int:
        return len(self.outcomes)

    @property
    def label(self) -> str:
        return f"{self.passed}/{self.total} (measured{f' {self.created_at[:10]}' if self.created_at else ''})"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed, "total": self.total}


def save(conn: sqlite3.Connection, check: ToolCheck) -> ToolCheck:
    created = check.created_at or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    record = json.dumps([asdict(o) for o in check.outcomes])
    with conn:
        conn.execute(
            "INSERT INTO tool_checks(created_at, model_path, model_sha256, machine, llama_cpp_version,"
            " tool_format, passed, total, record) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                created,
                check.model_path,
                check.model_sha256,
                check.machine,
                check.llama_cpp_version,
                check.tool_format,
                check.passed,
                check.total,
                record,
            ),
        )
    return ToolCheck(
        check.model_path,
        check.model_sha256,
        check.machine,
        check.llama_cpp_version,
        check.tool_format,
        check.outcomes,
        created,
    )


def latest(conn: sqlite3.Connection, machine: str, sha256: str = "", path: str = "") -> ToolCheck | None:
    """The newest check of this file on this machine, by content (sha256) or, for a quick look that
    reads no file, by path."""
    row = conn.execute(
        "SELECT * FROM tool_checks WHERE machine = ? AND (model_sha256 = ? OR model_path = ?) ORDER BY id DESC LIMIT 1",
        (machine, sha256, path),
    ).fetchone()
    if row is None:
        return None
    outcomes = [TaskOutcome(**o) for o in json.loads(row["record"])]
    return ToolCheck(
        row["model_path"],
        row["model_sha256"],
        row["machine"],
        row["llama_cpp_version"] or "",
        row["tool_format"] or "",
        outcomes,
        row["created_at"],
    )
