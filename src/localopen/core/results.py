"""Saved benchmark results: every run is added, nothing is overwritten."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path
from typing import Any

from localopen.core.gguf_header import read_header
from localopen.core.hardware import HardwareProfile
from localopen.core.hashing import cached_sha256
from localopen.core.openness import Evidence, evidence_from_header, grade

# llama-bench's own JSON field names, then localopen's additions.
LLAMA_BENCH_FIELDS = [
    "build_commit", "build_number", "cpu_info", "gpu_info", "backends", "model_filename", "model_type",
    "model_size", "model_n_params", "n_batch", "n_ubatch", "n_threads", "type_k", "type_v", "n_gpu_layers",
    "flash_attn", "n_prompt", "n_gen", "n_depth", "test_time", "avg_ns", "stddev_ns", "avg_ts", "stddev_ts",
    "samples_ns", "samples_ts",
]
LOCALOPEN_FIELDS = ["test", "load_time_ms", "ttft_ms", "peak_rss_bytes", "sha256", "grade", "quantization",
                    "machine", "llama_cpp_version", "model_name"]


def file_facts(conn: sqlite3.Connection, path: Path, known: dict[str, Evidence]) -> dict[str, Any]:
    """What a saved result says about the model file: sha256, quantization, name, grade."""
    header = read_header(path)
    return {"sha256": cached_sha256(conn, path), "quantization": header.quantization, "model_name": header.name,
            "grade": grade(evidence_from_header(header.metadata, known), provisional=True).letter}


def run_facts(hw: HardwareProfile | None, llama_cpp_version: str | None) -> dict[str, Any]:
    """What a saved result says about where it ran: machine, llama.cpp build, CPU and GPUs."""
    return {"machine": hw.fingerprint if hw else "unknown", "llama_cpp_version": llama_cpp_version,
            "build_commit": f"llama-cpp-python {llama_cpp_version}", "cpu_info": hw.cpu_model if hw else "",
            "gpu_info": ", ".join(g.name for g in hw.gpus) if hw else ""}


def save(conn: sqlite3.Connection, record: dict[str, Any]) -> int:
    with conn:
        cur = conn.execute(
            "INSERT INTO bench_results(created_at, model_sha256, model_name, model_path, quantization, test, machine,"
            " backends, llama_cpp_version, avg_ts, stddev_ts, record) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (record["test_time"], record["sha256"], record.get("model_name", ""), record["model_filename"],
             record.get("quantization"), record["test"], record["machine"], record.get("backends"),
             record.get("llama_cpp_version"), record["avg_ts"], record["stddev_ts"], json.dumps(record)),
        )
    return int(cur.lastrowid)


def query(conn: sqlite3.Connection, model: str | None = None, machine: str | None = None) -> list[dict[str, Any]]:
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
        record = json.loads(row["record"])
        record["id"] = row["id"]
        out.append(record)
    return out


def to_table_rows(records: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """llama-bench's markdown columns, plus load time, TTFT and peak memory."""
    headers = ["model", "size", "params", "backend", "threads", "test", "t/s", "load ms", "TTFT ms", "peak RSS"]
    rows = []
    for r in records:
        rows.append([
            r.get("model_type", ""), f"{r['model_size'] / 2**30:.2f} GiB", _params(r["model_n_params"]),
            r.get("backends", ""), str(r["n_threads"]), r["test"], f"{r['avg_ts']:.2f} ± {r['stddev_ts']:.2f}",
            f"{r['load_time_ms']:.0f}" if r.get("load_time_ms") is not None else "",
            f"{r['ttft_ms']:.0f}" if r.get("ttft_ms") is not None else "",
            f"{r['peak_rss_bytes'] / 2**20:.0f} MiB" if r.get("peak_rss_bytes") else "",
        ])
    return headers, rows


def _params(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.2f} M"


def markdown(records: list[dict[str, Any]]) -> str:
    headers, rows = to_table_rows(records)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" ---: " for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def to_csv(records: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    fields = LLAMA_BENCH_FIELDS + LOCALOPEN_FIELDS
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for r in records:
        writer.writerow({k: (json.dumps(v) if isinstance(v, list) else v) for k, v in r.items()})
    return buf.getvalue()


def to_json(records: list[dict[str, Any]]) -> str:
    fields = LLAMA_BENCH_FIELDS + LOCALOPEN_FIELDS + ["id"]
    return json.dumps([{k: r.get(k) for k in fields if k in r} for r in records], indent=2)
