"""The engine regression guard on stored results of two llama.cpp builds (never on timings)."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import run
from localopen.app.context import AppContext
from localopen.app.measure.benchmark import build_changes, stale
from localopen.core.records import BenchResult
from localopen.core.report.builds import compare_builds
from localopen.core.store import results as results_db
from localopen.core.store.library_db import import_file


def _result(build: str, test: str, ts: list[float], model: str = "/m/gemma.gguf", machine: str = "box", **kw):
    mean = sum(ts) / len(ts)
    sd = (sum((x - mean) ** 2 for x in ts) / max(1, len(ts) - 1)) ** 0.5
    n_prompt, n_gen = (512, 0) if test.startswith("pp") else (0, 128)
    return BenchResult(
        model_filename=model, model_type="gemma3 270M Q4_K - Medium", model_size=1, model_n_params=1,
        n_prompt=n_prompt, n_gen=n_gen, avg_ns=1, stddev_ns=0, avg_ts=mean, stddev_ts=sd, samples_ns=[1] * len(ts),
        samples_ts=ts, test_time="2026-12-01T00:00:00", test=test, machine=machine, llama_cpp_version=build,
        model_name=Path(model).name, **kw,
    )  # fmt: skip


def test_a_slower_build_beyond_the_noise_is_flagged_with_the_command_to_go_back() -> None:
    results = [
        _result("0.3.35", "tg128", [40.0, 40.5, 39.8]),
        _result("0.3.35", "pp512", [400.0, 401.0, 399.0]),
        _result("0.3.36", "tg128", [30.0, 30.2, 29.9]),  # -25 %: a regression
        _result("0.3.36", "pp512", [404.0, 398.0, 402.0]),  # +0.5 %: noise
    ]
    changes = {c.test: c for c in compare_builds(results)}
    tg, pp = changes["tg128"], changes["pp512"]
    assert tg.flagged and tg.slower and round(tg.change, 2) == -0.25
    assert tg.pin_command == 'pip install "llama-cpp-python==0.3.35"'
    assert not pp.flagged and not pp.slower


def test_changes_within_the_spread_or_from_too_few_repetitions_are_not_flagged() -> None:
    scattered = [_result("0.3.35", "tg128", [40.0, 30.0, 50.0]), _result("0.3.36", "tg128", [35.0, 25.0, 45.0])]
    assert not compare_builds(scattered)[0].flagged  # -12 %, but the runs scatter by ±10 t/s
    once = [_result("0.3.35", "tg128", [40.0]), _result("0.3.36", "tg128", [30.0])]
    assert not compare_builds(once)[0].flagged  # one repetition proves nothing
    # Only like for like: another machine, thread count or cache is another comparison.
    other = [_result("0.3.35", "tg128", [40.0] * 3, machine="a"), _result("0.3.36", "tg128", [30.0] * 3, machine="b")]
    assert compare_builds(other) == []
    threads = [_result("0.3.35", "tg128", [40.0] * 3, n_threads=2), _result("0.3.36", "tg128", [30.0] * 3, n_threads=4)]
    assert compare_builds(threads) == []
    # The two most recent builds, by version (0.3.10 is after 0.3.9).
    three = [_result(v, "tg128", [x] * 3) for v, x in (("0.3.9", 10.0), ("0.3.10", 20.0), ("0.3.8", 99.0))]
    [change] = compare_builds(three)
    assert (change.old_build, change.new_build) == ("0.3.9", "0.3.10")


def test_results_compare_builds_from_the_command_line_and_what_to_measure_again(tiny_gguf: Path) -> None:
    ctx = AppContext()
    model = import_file(ctx.db, tiny_gguf)
    machine = ctx.machine_id()
    for r in (
        _result("0.3.35", "tg128", [40.0, 40.5, 39.8], model=str(model.path), machine=machine),
        _result("0.3.36", "tg128", [30.0, 30.2, 29.9], model=str(model.path), machine=machine),
    ):
        results_db.save(ctx.db, r)
    assert [c.test for c in build_changes(ctx)] == ["tg128"]
    assert stale(ctx, "0.3.37") == [model.path] and stale(ctx, "0.3.36") == []
    out = run("results", "--compare-builds")
    assert out.returncode == 0 and "SLOWER" in out.stdout and "llama-cpp-python==0.3.35" in out.stdout
    data = json.loads(run("results", "--compare-builds", "--json").stdout)
    assert data[0]["flagged"] and data[0]["change"] < -0.2


def test_the_calibrations_shift_from_the_previous_build_is_shown(tiny_gguf: Path) -> None:
    """A new llama.cpp is calibrated again; what moved since the previous build's calibration is
    said by `localopen calibrate` and by the build comparison."""
    from localopen.app.measure import calibration
    from localopen.core.estimate.speed import Calibration

    ctx = AppContext()

    def measured(build: str, gbs: float, gflops: float, when: str) -> Calibration:
        return Calibration(
            bandwidth_gbs=gbs, tg_layer_s=1e-5, tg_token_s=1e-3, pp_attention_gflops=50.0,
            pp_gflops={"k-quant": gflops, "q8_0": 90.0}, machine=ctx.machine_id(), llama_cpp_version=build,
            n_threads=2, created_at=when,
        )  # fmt: skip

    assert calibration.build_shift(ctx) is None  # nothing measured yet
    calibration.save(ctx, measured("0.3.29", 30.0, 200.0, "2026-10-01T00:00:00"))
    calibration.save(ctx, measured("0.3.30", 20.0, 150.0, "2026-11-01T00:00:00"))
    assert calibration.build_shift(ctx) is None  # this build is not calibrated yet
    calibration.save(ctx, measured(calibration.llama_cpp_version(), 18.0, 165.0, "2026-12-01T00:00:00"))
    build, shifts = calibration.build_shift(ctx)  # type: ignore[misc]
    assert build == "0.3.30"  # the newest other build, not the oldest
    by_what = {s.what: s for s in shifts}
    assert round(by_what["generation, effective bandwidth (k-quants)"].change, 2) == -0.10
    assert round(by_what["prompt compute (k-quant)"].change, 2) == 0.10
    ctx.db.close()
    out = run("calibrate")
    assert out.returncode == 0, out.stderr
    assert "Since llama.cpp 0.3.30 on this machine:" in out.stdout
    assert "generation, effective bandwidth (k-quants): 20.0 → 18.0 GB/s (-10%)" in out.stdout
    said = json.loads(run("calibrate", "--json").stdout)
    assert said["previous_build"] == "0.3.30" and len(said["shift"]) == 3  # bandwidth, two kernel families
    assert "The calibration since llama.cpp 0.3.30" in run("results", "--compare-builds").stdout
