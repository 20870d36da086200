"""Measured speed of a model file on this machine, from saved benchmark results."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass

from localopen.core.estimate import verdict as verdicts


@dataclass(frozen=True)
class MeasuredSpeed:
    tg_tps: float
    pp_tps: float | None


def latest_for(conn: sqlite3.Connection, model_path: str, machine: str) -> MeasuredSpeed | None:
    """The newest tg and pp results for this file on this machine (by path, then by its sha256)."""
    sha_row = conn.execute("SELECT sha256 FROM file_hashes WHERE path = ?", (model_path,)).fetchone()
    rows = conn.execute(
        "SELECT test, record FROM bench_results WHERE machine = ? AND basis = 'measured'"
        " AND (model_path = ? OR model_sha256 = ?) ORDER BY id DESC",
        (machine, model_path, sha_row["sha256"] if sha_row else ""),
    ).fetchall()
    return _newest(rows)


def _newest(rows: list[sqlite3.Row]) -> MeasuredSpeed | None:
    tg = next((json.loads(r["record"]) for r in rows if r["test"].startswith("tg")), None)
    pp = next((json.loads(r["record"]) for r in rows if r["test"].startswith("pp")), None)
    return MeasuredSpeed(tg["avg_ts"], pp["avg_ts"] if pp else None) if tg else None


def probe_key(repo: str, filename: str) -> str:
    """How a probed Hub file is named in the results (the replica itself is gone)."""
    return f"hub:{repo}/{filename}"


def latest_probe(
    conn: sqlite3.Connection, machine: str, repo: str, filenames: list[str] | None = None, sha256: str = ""
) -> MeasuredSpeed | None:
    """The newest probe on this machine of one of these Hub files (or of a file with this sha256)."""
    keys = [probe_key(repo, f) for f in filenames or []] or [""]
    marks = ",".join("?" * len(keys))
    rows = conn.execute(
        "SELECT test, record FROM bench_results WHERE machine = ? AND basis = 'probed'"
        f" AND (model_path IN ({marks}) OR (model_sha256 != '' AND model_sha256 = ?)) ORDER BY id DESC",
        (machine, *keys, sha256),
    ).fetchall()
    return _newest(rows)


def probed_files(conn: sqlite3.Connection, machine: str) -> dict[str, list[str]]:
    """Hub file names probed on this machine, by repo (one query for the whole catalog)."""
    rows = conn.execute(
        "SELECT DISTINCT model_path FROM bench_results WHERE machine = ? AND basis = 'probed'", (machine,)
    ).fetchall()
    by_repo: dict[str, list[str]] = {}
    for row in rows:
        repo, _, filename = row["model_path"].removeprefix("hub:").rpartition("/")
        by_repo.setdefault(repo, []).append(filename)
    return by_repo


def record_load_failure(conn: sqlite3.Connection, model_path: str, machine: str, message: str) -> None:
    with conn:
        conn.execute(
            "INSERT OR REPLACE INTO load_failures(path, machine, message, at) VALUES (?,?,?,?)",
            (model_path, machine, message, dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")),
        )


def clear_load_failure(conn: sqlite3.Connection, model_path: str, machine: str) -> None:
    with conn:
        conn.execute("DELETE FROM load_failures WHERE path = ? AND machine = ?", (model_path, machine))


def load_failure(conn: sqlite3.Connection, model_path: str, machine: str) -> str | None:
    row = conn.execute(
        "SELECT message FROM load_failures WHERE path = ? AND machine = ?", (model_path, machine)
    ).fetchone()
    return row["message"] if row else None


def verdict_here(
    conn: sqlite3.Connection, model_path: str, machine: str, thresholds: verdicts.Thresholds
) -> verdicts.Verdict | None:
    """The verdict from what happened on this machine: a failed load, else the latest measurement."""
    failure = load_failure(conn, model_path, machine)
    if failure:
        return verdicts.failed_load(failure)
    measured = latest_for(conn, model_path, machine)
    return verdicts.measured(measured.tg_tps, measured.pp_tps, thresholds) if measured else None
