"""Saved benchmark results: every run is added, nothing is overwritten."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from localopen.core.records import BenchResult


def save(conn: sqlite3.Connection, result: BenchResult) -> int:
    record = result.to_dict()
    record.pop("id", None)
    with conn:
        cur = conn.execute(
            "INSERT INTO bench_results(created_at, model_sha256, model_name, model_path, quantization, test, machine,"
            " backends, llama_cpp_version, avg_ts, stddev_ts, basis, record) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                result.test_time,
                result.sha256,
                result.model_name,
                result.model_filename,
                result.quantization,
                result.test,
                result.machine,
                result.backends,
                result.llama_cpp_version,
                result.avg_ts,
                result.stddev_ts,
                result.basis,
                json.dumps(record),
            ),
        )
    return int(cur.lastrowid or 0)


def query(conn: sqlite3.Connection, model: str | None = None, machine: str | None = None) -> list[BenchResult]:
    sql = "SELECT id, record FROM bench_results WHERE 1=1"
    args: list[Any] = []
    if model:
        sql += " AND (model_name LIKE ? OR model_path LIKE ? OR model_sha256 LIKE ?)"
        args += [f"%{model}%", f"%{model}%", f"{model}%"]
    if machine:
        sql += " AND machine LIKE ?"
        args.append(f"{machine}%")
    out = []
    for row in conn.execute(sql + " ORDER BY id", args):
        result = BenchResult.from_dict(json.loads(row["record"]))
        result.id = row["id"]
        out.append(result)
    return out
