"""How the open usability index lies in its Hub dataset repository: one JSON Lines file per
submission and model file, under a folder named by the file's sha256 (itself under the sha256's
first two hex digits, so no folder holds more than a few thousand entries). A reader lists and
fetches the folders of the files it shows, never the whole index.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from localopen.core.report.result_record import SCHEMA, SCHEMA_VERSION, ResultRecord

DEFAULT_REPO = "localopen/open-usability-index"  # the project's dataset; a setting (index_repo)
RECORDS_DIR = "records"
CARD_PATH = "README.md"


def partition(sha256: str) -> str:
    """The folder holding every record of one model file."""
    return f"{RECORDS_DIR}/{sha256[:2]}/{sha256}"


def submission_files(records: Iterable[ResultRecord], submission: str) -> dict[str, bytes]:
    """A submission's files: the records of each model file, one JSON object a line, in its folder.
    Records without the file's sha256 cannot be tied to a file and are left out by the caller."""
    by_file: dict[str, list[ResultRecord]] = {}
    for record in records:
        by_file.setdefault(record.sha256, []).append(record)
    return {
        f"{partition(sha)}/{min(r.measured_at for r in group)}-{submission}.jsonl": "".join(
            json.dumps(r.to_dict(), sort_keys=True) + "\n" for r in group
        ).encode()
        for sha, group in sorted(by_file.items())
    }


def dataset_card(repo: str) -> str:
    """The dataset card the app writes with the first submission to an empty repository: licence,
    schema, protocol, the checks a reader makes and what they cannot stop, and a DuckDB query."""
    return f"""---
license: cc-by-4.0
pretty_name: localopen's open usability index
tags:
- llama.cpp
- gguf
- benchmark
configs:
- config_name: default
  data_files: "{RECORDS_DIR}/**/*.jsonl"
---

# The open usability index

Measured speeds of open GGUF model files on ordinary machines, contributed by people who ran
[localopen](https://github.com/localopen/localopen) and chose to share them. Each line is one
record: one model file (by its sha256) on one class of machine, measured with llama-bench's
protocol. Contributions arrive as pull requests, so each one can be reviewed before it is merged.

Licence: CC-BY-4.0.

## Schema: `{SCHEMA}`, version {SCHEMA_VERSION}

- the file: `model_file`, `sha256`, `repo`, `quantization`, `architecture`, `n_params`, `size_bytes`;
  `basis` is `measured` (the real file) or `probed` (a zero-data replica of the Hub file's header:
  the same shapes, so the same speed, measured before any download)
- the protocol: `pp_tokens`, `tg_tokens`, `reps`, `n_threads`, `n_gpu_layers`, `n_batch`, `n_ubatch`,
  `type_k`, `type_v`, `flash_attn`, `kernels` (llama.cpp's CPU weight layouts)
- the results: `pp_ts`/`pp_sd` and `tg_ts`/`tg_sd` (tokens per second, mean and standard deviation
  over the repetitions), `ttft_ms`, `load_time_ms`, `peak_rss_bytes`, `decode_bound_tps` (the
  machine's memory-bandwidth bound for the file), `drafting` (speculative decoding's speed-up per
  task), `image_encode_ms`, `tools` (the tool-calling check: tasks passed of those run, and the
  call format), `band` (fluent, comfortable, readable, too slow)
- the build: `machine.llama_cpp` (llama-cpp-python's version), `build_number`, `localopen`
- the machine as a class: `machine.os`, `arch`, `cpu_model`, `simd`, `cores_physical`,
  `cores_logical`, `ram_gib` (rounded), `bandwidth_gbs` (measured), `gpus`, `backend`
- `measured_at`: the day (UTC), never the time

No record holds a host or user name, a path, an address, a serial number or a time zone.

## Layout

`{RECORDS_DIR}/<first two hex digits of the sha256>/<sha256>/<day>-<submission>.jsonl`: a reader
fetches only the folders of the files it shows.

## What a reader checks, and what it cannot stop

localopen checks every record it reads and leaves out, counting them: records that are not this
schema or have a wrong field (malformed); generation faster than the record's memory-bandwidth
bound allows, prompt processing slower than generation, fewer than three repetitions or a spread
above a quarter of the mean (implausible); the same record twice (duplicate). Among the rest it
takes the median over machines of the reader's class (same architecture and vector instructions,
or the same GPU; memory bandwidth within a factor of two), scaled by the bandwidth ratio, and
says how many independent submissions agree. A remote record never replaces a measurement made
on the reader's own machine.

What these checks cannot stop: plausible but false figures (a contributor can type numbers that
pass every check), several submissions made by one person to look like agreement, and a
machine's class misstated. Review of pull requests, the median and the agreement shown limit
their weight; treat a figure from one submission as one person's word.

## Query it in place

DuckDB (0.10.3 and later) reads the files where they are, through `hf://` paths:

```sql
SELECT model_file, machine.cpu_model, median(tg_ts) AS tg, count(*) AS n
FROM 'hf://datasets/{repo}/{RECORDS_DIR}/**/*.jsonl'
GROUP BY ALL ORDER BY n DESC;
```

The Hub also converts a public dataset to Parquet (its `refs/convert/parquet` revision):
`FROM 'hf://datasets/{repo}@~parquet/**/*.parquet'` reads that conversion instead.
"""
