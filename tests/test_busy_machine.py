"""Measurements a busy machine cannot skew: other programs' CPU use is seen (not this process's
engines), a figure taken while they keep the cores busy is marked and never kept over a calm one.

Other programs are real: spinning processes outside this process's tree, one per core, each
ending by itself within a minute and killed when the test ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localopen.app.context import AppContext
from localopen.app.measure import calibration as calibrations
from localopen.app.measure.benchmark import BenchmarkSession
from localopen.core.estimate.speed import Calibration
from localopen.core.machine import hardware, load
from localopen.core.machine.hardware import read_profile
from localopen.core.options import BenchParams, LoadOptions

SPIN = """import os, sys, time
open(sys.argv[1], "a").write(f"{os.getpid()}\\n")
end = time.time() + 60
while time.time() < end:
    pass
"""


@pytest.fixture
def busy_cores(tmp_path: Path) -> Iterator[int]:
    with spinning_cores(tmp_path) as n:
        yield n


@contextlib.contextmanager
def spinning_cores(tmp_path: Path) -> Iterator[int]:
    """A spinning process per core, started through a shell that exits at once: they belong to
    no process of this test (as another program's would)."""
    n = os.cpu_count() or 1
    pids = tmp_path / "spinners"
    script = tmp_path / "spin.py"
    script.write_text(SPIN)
    starts = " ".join(f"{sys.executable} {script} {pids} &" for _ in range(n))
    subprocess.run(["sh", "-c", starts], check=True, timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (not pids.exists() or len(pids.read_text().split()) < n):
        time.sleep(0.05)
    time.sleep(0.3)
    try:
        yield n
    finally:
        for pid in pids.read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.3)


@pytest.fixture
def calm() -> None:
    """A test of a calm reading needs a calm machine: other programs (not this test run) may keep it
    busy for a while; then the test is skipped, never failed."""
    reading = load.wait_calm(30.0)
    if reading.busy:
        pytest.skip(f"the machine stays busy: {reading}")


def test_other_programs_are_seen_and_this_processs_own_children_are_not(busy_cores: int) -> None:
    reading = load.sample(1.0)
    assert reading.busy, reading
    assert reading.others_cores >= 0.6 * busy_cores
    assert "other programs kept" in str(reading)


def test_this_processs_own_work_is_not_other_programs(calm: None) -> None:
    """A child of this process spinning a core is this process's work. Up to three readings while it
    spins: a program elsewhere busy for a moment (a CI run beside others) spoils one reading, while
    counting the child would show in every one."""
    own = subprocess.Popen([sys.executable, "-c", "import time\nend=time.time()+8\nwhile time.time()<end: pass"])
    readings = []
    try:
        time.sleep(0.3)
        for _ in range(3):
            readings.append(load.sample(1.0))
            if readings[-1].others_cores < 0.5:
                break
    finally:
        own.kill()
        own.wait()
    assert min(r.others_cores for r in readings) < 0.5, readings


def test_a_bandwidth_taken_while_busy_is_marked_and_not_kept_over_a_calm_one(
    tmp_path: Path, busy_cores: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hardware, "BANDWIDTH_CALM_WAIT_S", 1.0)
    cache = tmp_path / "cache"
    # Nothing calm known: the busy reading is used, said to be busy, and measured again next time.
    first = read_profile(tmp_path, cache)
    assert first.bandwidth_busy and "busy" in first.bandwidth_words
    (saved,) = cache.iterdir()
    assert json.loads(saved.read_text())["busy"] and json.loads(saved.read_text())["calm"] == []
    # A calm reading from yesterday, higher than any the busy machine gives: it is kept.
    day_old = time.time() - 25 * 3600
    saved.write_text(json.dumps({"gbs": 1000.0, "calm": [1000.0], "measured_at": day_old}))
    again = read_profile(tmp_path, cache)
    assert again.bandwidth_gbs == 1000.0 and not again.bandwidth_busy and not again.bandwidth_cached
    assert json.loads(saved.read_text())["calm"] == [1000.0]  # the busy reading joined nothing
    assert json.loads(saved.read_text())["measured_at"] == day_old  # so it is measured again


def test_a_bandwidth_taken_calm_is_kept_with_its_spread(tmp_path: Path, calm: None) -> None:
    cache = tmp_path / "cache"
    first = read_profile(tmp_path, cache)
    assert not first.bandwidth_busy
    (saved,) = cache.iterdir()
    data = json.loads(saved.read_text())
    saved.write_text(json.dumps({**data, "calm": [0.5, *data["calm"]], "measured_at": 0}))
    again = read_profile(tmp_path, cache)
    assert again.bandwidth_spread is not None and again.bandwidth_spread[0] == 0.5
    assert again.bandwidth_gbs == max(json.loads(saved.read_text())["calm"])
    assert "best of calm readings 0.5–" in again.bandwidth_words


def _calibration(ctx: AppContext, gbs: float, busy: str = "") -> Calibration:
    return Calibration(
        bandwidth_gbs=gbs, tg_layer_s=1e-5, tg_token_s=1e-3, pp_attention_gflops=50.0, pp_gflops={"k-quant": 100.0},
        machine=ctx.machine_id(), llama_cpp_version=calibrations.llama_cpp_version(), busy=busy,
    )  # fmt: skip


def test_a_calibration_taken_while_busy_never_replaces_a_calm_one() -> None:
    ctx = AppContext()
    calibrations.save(ctx, _calibration(ctx, 3.0, busy="8 of 8 shapes measured while other programs kept 2 cores busy"))
    assert (calibrations.current(ctx) or _calibration(ctx, 0)).busy  # kept, but marked: measured again
    calibrations.save(ctx, _calibration(ctx, 9.0))
    assert calibrations.current(ctx) == _calibration(ctx, 9.0)  # calm replaces busy
    kept = calibrations.save(ctx, _calibration(ctx, 2.0, busy="busy"))
    assert kept.bandwidth_gbs == 9.0 and (calibrations.current(ctx) or kept).bandwidth_gbs == 9.0


def test_a_calibration_shape_measured_while_busy_is_measured_again_then_marked(
    tiny_gguf: Path, busy_cores: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calibrations, "CALM_WAIT_S", 1.0)
    ctx = AppContext()
    session = BenchmarkSession(ctx)
    steps: list[calibrations.CalibrationStep] = []
    params = BenchParams(n_prompt=16, n_gen=4, reps=1, warmup_prompt=4)
    run, busy = calibrations._measure_alone(ctx, session, tiny_gguf, LoadOptions(n_ctx=64), params, steps.append, 1)
    assert run.results and busy is not None and busy.busy
    assert any(s.other_programs for s in steps)
    assert "other programs keep the processor busy" in str(next(s for s in steps if s.other_programs))


def test_a_calibration_shape_measured_calm_is_not_marked(tiny_gguf: Path, calm: None) -> None:
    ctx = AppContext()
    params = BenchParams(n_prompt=16, n_gen=4, reps=1, warmup_prompt=4)
    run, busy = calibrations._measure_alone(
        ctx, BenchmarkSession(ctx), tiny_gguf, LoadOptions(n_ctx=64), params, None, 1
    )
    assert run.results and busy is None


def test_a_calibration_with_a_shape_measured_while_busy_is_saved_marked(tmp_path: Path, monkeypatch) -> None:
    """The calibration itself carries what its shapes met: one shape measured (for real) while
    other programs kept the cores busy (a real reading of spinning processes) marks it, so it is
    measured again at the next launch and never replaces a calm one."""
    from calibration_shapes import TINY_SHAPES

    with spinning_cores(tmp_path):
        busy = load.sample(1.0)
    assert busy.busy, busy
    if load.wait_calm(30.0).busy:
        pytest.skip("the machine stays busy: the shapes could not be measured calm")
    measure = calibrations._measure_alone
    first = [True]

    def measured_while_busy(*args, **kwargs):  # type: ignore[no-untyped-def]
        run, _calm = measure(*args, **kwargs)
        met, first[0] = (busy if first[0] else None), False  # the first shape met the busy reading
        return run, met

    monkeypatch.setattr(calibrations, "SHAPES", TINY_SHAPES)
    monkeypatch.setattr(calibrations, "_measure_alone", measured_while_busy)
    monkeypatch.setattr(calibrations, "CALM_WAIT_S", 0.5)
    ctx = AppContext()
    kept = calibrations.calibrate(ctx, BenchmarkSession(ctx))
    assert kept.busy == f"1 of {len(TINY_SHAPES)} shapes measured while {busy}"
    assert (calibrations.current(ctx) or kept).busy  # saved marked: measured again at the next launch
