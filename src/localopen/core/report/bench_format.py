"""Benchmark results as people and programs read them: one printer per format, as llama-bench has.
The CLI prints these and the Compare view exports them."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence

from localopen.core.records import LLAMA_BENCH_FIELDS, LOCALOPEN_FIELDS, BenchResult

TABLE_HEADERS = ["model", "size", "params", "backend", "threads", "test", "t/s", "load ms", "TTFT ms", "peak RSS"]


def _params(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.2f} M"


def table_rows(results: Sequence[BenchResult]) -> list[list[str]]:
    """llama-bench's markdown columns, plus load time, time to first token and peak memory."""
    return [[
        r.model_type, f"{r.model_size / 2**30:.2f} GiB", _params(r.model_n_params), r.backends, str(r.n_threads),
        r.test, f"{r.avg_ts:.2f} ± {r.stddev_ts:.2f}",
        f"{r.load_time_ms:.0f}" if r.load_time_ms is not None else "",
        f"{r.ttft_ms:.0f}" if r.ttft_ms is not None else "",
        f"{r.peak_rss_bytes / 2**20:.0f} MiB" if r.peak_rss_bytes else "",
    ] for r in results]  # fmt: skip


def to_markdown(results: Sequence[BenchResult]) -> str:
    lines = ["| " + " | ".join(TABLE_HEADERS) + " |", "|" + "|".join(" ---: " for _ in TABLE_HEADERS) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results)]
    return "\n".join(lines)


def to_table(results: Sequence[BenchResult]) -> str:
    """Plain aligned columns for a terminal."""
    rows = table_rows(results)
    widths = [max(len(x) for x in col) for col in zip(TABLE_HEADERS, *rows)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    return "\n".join([line(TABLE_HEADERS), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def to_csv(results: Sequence[BenchResult]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[*LLAMA_BENCH_FIELDS, *LOCALOPEN_FIELDS], extrasaction="ignore")
    writer.writeheader()
    for r in results:
        writer.writerow({k: (json.dumps(v) if isinstance(v, list) else v) for k, v in r.to_dict().items()})
    return buf.getvalue()


def to_json(results: Sequence[BenchResult]) -> str:
    """llama-bench's JSON field names, then localopen's, then the saved id."""
    fields = [*LLAMA_BENCH_FIELDS, *LOCALOPEN_FIELDS, "id"]
    records = [r.to_dict() for r in results]
    return json.dumps([{k: d[k] for k in fields} for d in records], indent=2)


FORMATS = {"md": to_markdown, "table": to_table, "csv": to_csv, "json": to_json}
