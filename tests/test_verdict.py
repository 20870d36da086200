"""The usable-here verdict: bands, their thresholds, and measured beating predicted."""

from __future__ import annotations

import pytest

from localopen.core.estimate import verdict
from localopen.core.estimate.memory import FitVerdict, MemoryEstimate
from localopen.core.estimate.verdict import Thresholds, band_for
from localopen.core.records import BenchResult
from localopen.core.store import measurements as usability
from localopen.core.store.db import connect
from localopen.core.store.results import save

T = Thresholds()


@pytest.mark.parametrize(
    "tg, ttft, band",
    [
        (25.0, 0.5, "fluent"),
        (25.0, 1.5, "comfortable"),  # fast generation, but the first token takes too long for fluent
        (12.0, None, "comfortable"),
        (12.0, 3.0, "readable"),
        (5.0, 10.0, "readable"),
        (4.9, 0.1, "too slow"),
        (30.0, 11.0, "too slow"),  # a long wait for the first token makes a fast model too slow
    ],
)
def test_bands(tg: float, ttft: float | None, band: str) -> None:
    assert band_for(tg, ttft, T) == band


def test_thresholds_are_the_users() -> None:
    strict = Thresholds(fluent_tps=40, fluent_ttft_s=0.5)
    assert band_for(30, 0.2, T) == "fluent" and band_for(30, 0.2, strict) == "comfortable"


def test_measured_uses_the_first_token_time_of_a_512_token_prompt() -> None:
    v = verdict.measured(tg_tps=14.1, pp_tps=30.0, t=T)  # 512 / 30 = 17 s to the first token
    assert v.band == "too slow" and v.basis == "measured" and "17.1 s" in v.reason
    assert v.label == "too slow (measured)"


def _fit(code: str, bound: float | None) -> FitVerdict:
    return FitVerdict(code, code, "detail", MemoryEstimate(4096, 1, 1, 1, 1), bound)


def test_predicted_says_so_and_never_claims_a_fit_it_does_not_have() -> None:
    v = verdict.predicted(_fit("fits_ram", 100.0), T)
    assert v.basis == "predicted" and v.band == "fluent" and v.label.endswith("(predicted)")
    assert verdict.predicted(_fit("no_fit", 100.0), T).band == "does not fit"
    assert verdict.predicted(_fit("fits_ram", None), T).band == "unknown"
    assert verdict.predicted(None, T).band == "unknown"
    assert "tight" in verdict.predicted(_fit("tight", 100.0), T).reason


def test_a_prediction_without_a_calibration_never_claims_one() -> None:
    rough = verdict.predicted(_fit("fits_ram", 100.0), T)
    assert rough.basis_words == "predicted roughly: this machine is not calibrated yet"
    calibrated = verdict.predicted(_fit("fits_ram", 100.0), T, speed=(30.0, 400.0))
    assert calibrated.basis_words == "predicted from this machine's calibration"
    # A calibration taken while the cores were busy reads low: the verdict says so, same band rules.
    busy = verdict.predicted(_fit("fits_ram", 100.0), T, speed=(30.0, 400.0), busy=True)
    assert busy.band == calibrated.band and "kept the cores busy" in busy.basis_words
    assert "may read low" in busy.reason
    assert verdict.probed(30.0, 400.0, T).basis_words.startswith("measured here on the Hub file's header")


def test_an_embedding_model_is_judged_by_how_fast_it_reads_never_by_a_generation_speed() -> None:
    fast_writer_slow_reader = verdict.measured(tg_tps=80.0, pp_tps=40.0, t=T)  # 512 tokens read in 12.8 s
    v = verdict.for_embeddings(fast_writer_slow_reader, T)
    assert v.band == "too slow" and v.tg_tps is None and v.pp_tps == 40.0
    assert "embedding model" in v.reason and "12.8 s" in v.reason and "writes no text" in v.reason
    quick = verdict.for_embeddings(verdict.probed(tg_tps=1.0, pp_tps=2000.0, t=T), T)
    assert quick.band == "fluent" and quick.basis == "probed"  # its slow 'generation' does not count
    rough = verdict.for_embeddings(verdict.predicted(_fit("fits_ram", 100.0), T), T)
    assert rough.band == "unknown" and rough.tg_tps is None and "generation speed does not apply" in rough.reason
    assert verdict.for_embeddings(verdict.predicted(_fit("no_fit", 100.0), T), T).band == "does not fit"


def _result(test: str, avg_ts: float, path: str, machine: str) -> BenchResult:
    n_prompt, n_gen = (512, 0) if test.startswith("pp") else (0, 128)
    return BenchResult(
        model_filename=path,
        model_type="llama",
        model_size=1,
        model_n_params=1,
        n_prompt=n_prompt,
        n_gen=n_gen,
        avg_ns=1,
        stddev_ns=0,
        avg_ts=avg_ts,
        stddev_ts=0.0,
        samples_ns=[1],
        samples_ts=[avg_ts],
        test_time="2026-11-23T00:00:00+00:00",
        test=test,
        sha256="ab" * 32,
        machine=machine,
    )


def test_verdict_here_failed_load_then_measurement(tmp_path) -> None:
    conn = connect(tmp_path / "db.sqlite3")
    path, machine = "/models/m.gguf", "machine-a"
    assert usability.verdict_here(conn, path, machine, T) is None  # nothing happened here yet
    usability.record_load_failure(conn, path, machine, "not enough memory")
    failed = usability.verdict_here(conn, path, machine, T)
    assert failed is not None and failed.band == "does not fit" and "not enough memory" in failed.reason
    usability.clear_load_failure(conn, path, machine)
    save(conn, _result("pp512", 600.0, path, machine))
    save(conn, _result("tg128", 25.0, path, machine))
    save(conn, _result("tg128", 11.0, path, "machine-b"))  # another machine's result never counts here
    here = usability.verdict_here(conn, path, machine, T)
    assert here is not None and here.band == "fluent" and here.basis == "measured"
    save(conn, _result("tg128", 6.0, path, machine))  # the newest measurement wins
    assert usability.verdict_here(conn, path, machine, T).band == "readable"
