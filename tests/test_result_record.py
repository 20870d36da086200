"""The versioned result record (core/report/result_record.py): what `localopen results --records`
prints from real benchmarks, read back whole, and a record from elsewhere refused in words when it
is not one this localopen can read."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from cli_helpers import run
from localopen.app.context import AppContext
from localopen.core.estimate.verdict import PROMPT_TOKENS, Thresholds, band_for
from localopen.core.report.result_record import (
    SCHEMA_VERSION,
    Band,
    Basis,
    MachineClass,
    RecordError,
    ResultRecord,
)

pytest.importorskip("llama_cpp")


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """Gemma 3 270M benchmarked twice with different threads (two records), then printed."""
    from conftest import real_model

    gemma = real_model("gemma-3-270m")
    for threads in ("1", "2"):
        bench = run("bench", str(gemma), "-p", "32", "-n", "8", "-r", "2", "-t", threads, "--json", timeout=300)
        assert bench.returncode == 0, bench.stderr
    out = run("results", "--records")
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_saved_benchmarks_print_as_versioned_records_read_back_whole(printed: list[dict]) -> None:
    assert len(printed) == 2
    for data in printed:
        assert data["schema"] == "localopen.result" and data["version"] == SCHEMA_VERSION
        record = ResultRecord.from_dict(json.loads(json.dumps(data)))
        assert record.to_dict() == data
        assert record.basis is Basis.MEASURED and record.model_file == "gemma-3-270m-q4_k_m.gguf"
        assert record.pp_tokens == 32 and record.tg_tokens == 8 and record.reps == 2
        assert record.pp_ts > 0 and record.tg_ts > 0 and len(record.sha256) == 64
        assert record.band is Band(band_for(record.tg_ts, PROMPT_TOKENS / record.pp_ts, Thresholds()))
        assert data["band"] == record.band.value
    assert {r["n_threads"] for r in printed} == {1, 2}
    machines = {json.dumps(r["machine"], sort_keys=True) for r in printed}
    assert len(machines) == 1  # one machine, described the same way each time
    machine = printed[0]["machine"]
    assert machine["cores_logical"] >= 1 and machine["backend"] == "CPU" and machine["llama_cpp"]
    assert machine["os"] in ("Linux", "Darwin", "Windows") and machine["simd"]
    assert machine["bandwidth_gbs"] is not None and machine["bandwidth_gbs"] > 0  # measured once, then kept


def test_the_machine_class_leaves_out_the_measurement_and_the_host(printed: list[dict]) -> None:
    """Two readings of one machine's bandwidth are one class; nothing names the host or person."""
    profile = AppContext().read_profile(measure=False)
    calm = MachineClass.of(dataclasses.replace(profile, bandwidth_gbs=9.4), "CPU", "0.3.36")
    busy = MachineClass.of(dataclasses.replace(profile, bandwidth_gbs=1.9), "CPU", "0.3.36")
    assert calm.key == busy.key and calm != busy
    assert calm.key != MachineClass.of(profile, "CUDA", "0.3.36").key
    import socket

    text = json.dumps(printed)
    assert socket.gethostname() not in text and str(Path.home()) not in text


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d | {"version": SCHEMA_VERSION + 1}, "newer than this localopen reads"),
        (lambda d: d | {"schema": "someone.else"}, "Not a localopen result record"),
        (lambda d: d | {"version": "1"}, "without a usable version"),
        (lambda d: {k: v for k, v in d.items() if k != "tg_ts"}, "missing or wrong field"),
        (lambda d: d | {"tg_ts": "fast"}, "whose tg_ts is 'fast'"),
        (lambda d: d | {"basis": "guessed"}, "missing or wrong field"),
        (lambda d: d | {"machine": {**d["machine"], "cores_physical": True}}, "whose cores_physical is True"),
    ],
)
def test_a_record_this_localopen_cannot_read_is_refused_in_words(printed: list[dict], change, words: str) -> None:
    with pytest.raises(RecordError, match=words):
        ResultRecord.from_dict(change(dict(printed[0])))
