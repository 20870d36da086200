"""This machine, measured once: the calibration behind every predicted speed.

Zero-data model files of a few shapes are written to the cache folder (sparse: a few MB of disk),
benchmarked with short runs of llama-bench's protocol, and fitted (core/speed_model.py). The
result is kept per machine and llama.cpp build; a new build or another machine calibrates again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from localopen.app import engine_options
from localopen.app.context import AppContext
from localopen.core.errors import LocalopenError
from localopen.core.estimate.inputs import file_features
from localopen.core.estimate.speed import Calibration, CalibrationShift, Sample, fit
from localopen.core.gguf.header import read_header
from localopen.core.gguf.shapes import DenseShape, write_shape
from localopen.core.machine.load import LoadReading, OtherLoad, sample, wait_calm
from localopen.core.options import BenchParams, LoadOptions
from localopen.core.versions import package_version

if TYPE_CHECKING:  # reading a calibration must not load the engine client
    from localopen.app.measure.benchmark import BenchmarkSession, BenchRun

log = logging.getLogger("localopen.calibration")

# Different sizes and depths (the generation fit separates bandwidth from per-layer costs), and
# one shape per other kernel family. Together about 2.3 GB of zero data, written sparse.
SHAPES: list[tuple[DenseShape, str]] = [
    (DenseShape("calibration-narrow", 8, 512, 1536, 8, 8, 32000), "Q4_K_M"),
    (DenseShape("calibration-deep", 32, 768, 2048, 12, 4, 32000), "Q4_K_M"),
    (DenseShape("calibration-deep-narrow", 40, 512, 1536, 8, 8, 32000), "Q4_K_M"),
    (DenseShape("calibration-medium", 24, 1024, 2816, 16, 8, 32000), "Q4_K_M"),
    (DenseShape("calibration-wide", 22, 2048, 5632, 32, 4, 32000), "Q4_K_M"),
    (DenseShape("calibration-medium", 24, 1024, 2816, 16, 8, 32000), "Q8_0"),
    (DenseShape("calibration-medium", 24, 1024, 2816, 16, 8, 32000), "Q5_0"),
    (DenseShape("calibration-medium", 24, 1024, 2816, 16, 8, 32000), "F16"),
]
# Prompt speed at 512 tokens, the prompt the time to first token is for (at 128 tokens it read
# 13-21 % below pp512 for 1-8B models here); a short warm-up, as the probe's.
PARAMS = BenchParams(n_prompt=512, n_gen=64, reps=2, warmup_prompt=32)
# Saved with the figures: a calibration measured by another protocol, or fitted by an older speed
# model (v2: the attention term replaced a per-layer prompt cost), is measured again.
PROTOCOL = f"pp{PARAMS.n_prompt}-tg{PARAMS.n_gen}-v2"


@dataclasses.dataclass(frozen=True)
class CalibrationStep:
    """Where a calibration is: shape `index` of `total`, measuring or waiting for another engine's
    work to end. Its text is what a face shows; the numbers give a progress bar and time left."""

    index: int
    total: int
    waiting: bool = False
    other_programs: bool = False  # waiting for other programs to leave the cores calm

    def __str__(self) -> str:
        what = f"shape {self.index} of {self.total}"
        if self.other_programs:
            return f"Calibration waits while other programs keep the processor busy ({what} next)…"
        if self.waiting:
            return f"Calibration waits while a model is loading, answering or being benchmarked ({what} next)…"
        return f"Calibrating this machine: {what}"


Progress = Callable[[CalibrationStep], None]


class CalibrationError(LocalopenError):
    pass


def llama_cpp_version() -> str:
    """The installed llama.cpp build (from the package, or its module's source in a bundle:
    llama_cpp is not imported here)."""
    return package_version("llama_cpp_python", "llama_cpp") or "unknown"


def current(ctx: AppContext) -> Calibration | None:
    """This machine's calibration for the installed llama.cpp, if it was measured."""
    row = ctx.db.execute(
        "SELECT figures FROM calibrations WHERE machine = ? AND llama_cpp_version = ?",
        (ctx.machine_id(), llama_cpp_version()),
    ).fetchone()
    if row is None:
        return None
    try:
        figures = json.loads(row["figures"])
        if figures.get("protocol") != PROTOCOL:
            log.info("The calibration for %s used an older protocol; it will be measured again", ctx.machine_id())
            return None
        return Calibration.from_dict(figures)
    except (ValueError, TypeError, AttributeError):
        log.warning("Unreadable calibration for %s; it will be measured again", ctx.machine_id(), exc_info=True)
        return None


def previous(ctx: AppContext) -> Calibration | None:
    """This machine's newest calibration for another llama.cpp build (to show what the build changed)."""
    row = ctx.db.execute(
        "SELECT figures FROM calibrations WHERE machine = ? AND llama_cpp_version != ? ORDER BY created_at DESC",
        (ctx.machine_id(), llama_cpp_version()),
    ).fetchone()
    if row is None:
        return None
    try:
        return Calibration.from_dict(json.loads(row["figures"]))
    except (ValueError, TypeError, AttributeError):
        log.warning("Unreadable earlier calibration for %s", ctx.machine_id(), exc_info=True)
        return None


def build_shift(ctx: AppContext) -> tuple[str, list[CalibrationShift]] | None:
    """How this build's calibration differs from the previous build's: (that build, the figures);
    None until both are measured here."""
    old, new = previous(ctx), current(ctx)
    if old is None or new is None:
        return None
    return old.llama_cpp_version, new.shift_from(old)


def save(ctx: AppContext, calibration: Calibration) -> Calibration:
    """Keep this calibration, unless it was taken while the machine was busy and a calm one is
    kept already; returns the one in effect."""
    kept = current(ctx)
    if calibration.busy and kept is not None and not kept.busy:
        log.info("A calibration taken while busy (%s) does not replace the calm one", calibration.busy)
        return kept
    with ctx.db:
        ctx.db.execute(
            "INSERT OR REPLACE INTO calibrations(machine, llama_cpp_version, created_at, figures) VALUES (?,?,?,?)",
            (
                calibration.machine,
                calibration.llama_cpp_version,
                calibration.created_at,
                json.dumps({**calibration.to_dict(), "protocol": PROTOCOL}),
            ),
        )
    return calibration


MAX_TRIES = 3  # a shape whose measurement an engine's work overlapped is measured again
# Other programs keeping the cores busy make every figure read low: a shape measured while they
# did waits for calm and is measured again; still busy after that, the calibration is kept but
# marked busy, measured again at the next launch, and never replaces a calm one.
BUSY_TRIES = 2
CALM_WAIT_S = 20.0


def _tg(run: BenchRun) -> float:
    return max((r.avg_ts for r in run.results if not r.is_prompt_test), default=0.0)


def _measure_alone(
    ctx: AppContext,
    session: BenchmarkSession,
    path: Path,
    options: LoadOptions,
    params: BenchParams,
    on_progress: Progress | None,
    index: int,
) -> tuple[BenchRun, LoadReading | None]:
    """Measure with no other engine working and no other program keeping the cores busy: wait
    while a chat, the server or a benchmark is busy; when one starts meanwhile, stop this
    measurement at once (the person's chat runs at full speed) and measure again once it is done
    (an overlap would have taught a wrong speed). Returns the run and, when other programs kept
    the cores busy through every try, that load."""
    run: BenchRun | None = None
    best: BenchRun | None = None  # the fastest of the tries taken while busy
    tries = busy_tries = 0
    busy: LoadReading | None = None
    while tries < MAX_TRIES:
        if ctx.activity.is_busy and on_progress is not None:
            on_progress(CalibrationStep(index, len(SHAPES), waiting=True))
        ctx.activity.wait_idle(session.stopped)
        if session.stopped():
            raise CalibrationError("The calibration was stopped; predictions stay rough until it runs.")
        if sample().busy:
            if on_progress is not None:
                on_progress(CalibrationStep(index, len(SHAPES), waiting=True, other_programs=True))
            wait_calm(CALM_WAIT_S, session.stopped)
        if on_progress is not None:
            on_progress(CalibrationStep(index, len(SHAPES)))
        mark = ctx.activity.mark()
        yielded = threading.Event()

        def give_way(yielded: threading.Event = yielded) -> None:
            yielded.set()
            session.interrupt()

        session.clear_interrupt()
        stop_listening = ctx.activity.on_busy(give_way)
        watch = OtherLoad()
        try:
            run = session.measure(path, options, params)
        finally:
            stop_listening()
        reading = watch.reading()
        if yielded.is_set() and not session.stopped():
            log.info("Calibration %s gave way to another engine's work: measured again later", path.name)
            continue  # not a try: what was measured (if anything) overlapped a person's work
        if run.aborted:
            raise CalibrationError("The calibration was stopped; predictions stay rough until it runs.")
        if ctx.activity.overlapped(mark):
            tries += 1
            log.info("Calibration %s overlapped another engine's work: measured again", path.name)
            continue
        if not reading.busy:
            return run, None
        busy = reading
        busy_tries += 1
        log.info("Calibration %s measured while %s", path.name, reading)
        best = run if best is None or _tg(run) > _tg(best) else best
        if busy_tries >= BUSY_TRIES:
            return best, busy  # a busy machine only slows a measurement: the fastest try is nearest
    assert run is not None
    log.warning("Calibration %s kept overlapping other work: its last measurement is used", path.name)
    return run, busy


def _measure_shapes(
    ctx: AppContext,
    session: BenchmarkSession,
    options: LoadOptions,
    params: BenchParams,
    on_progress: Progress | None,
) -> tuple[list[Sample], int, list[LoadReading]]:
    """Each calibration shape written, measured alone and deleted: its samples, the threads used
    and the readings of other programs' load taken while it ran."""
    ctx.paths.cache.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="calibration-", dir=ctx.paths.cache))
    samples: list[Sample] = []
    threads = 0
    busy: list[LoadReading] = []
    try:
        for index, (shape, ftype) in enumerate(SHAPES, start=1):
            path = folder / f"{shape.name}-{ftype}.gguf"
            write_shape(path, shape, ftype)
            run, load = _measure_alone(ctx, session, path, options, params, on_progress, index)
            if load is not None:
                busy.append(load)
            tests = {("pp" if r.is_prompt_test else "tg"): r for r in run.results}
            samples.append(Sample(file_features(read_header(path)), tests["tg"].avg_ts, tests["pp"].avg_ts))
            log.info("Calibration %s %s: tg %.2f pp %.2f", shape.name, ftype, tests["tg"].avg_ts, tests["pp"].avg_ts)
            threads = tests["tg"].n_threads
            path.unlink()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return samples, threads, busy


def calibrate(ctx: AppContext, session: BenchmarkSession, on_progress: Progress | None = None) -> Calibration:
    """Measure this machine on the calibration shapes (a minute or two on two idle cores) and save it."""
    # The CPU is what a calibration measures: no layers offloaded whatever the setting.
    # llama-bench's defaults for the cache too: the prediction is of the default engine's speed.
    options = engine_options.load_options(
        ctx.settings, n_ctx=PARAMS.n_prompt + PARAMS.n_gen, n_gpu_layers=0, kv_cache_type="f16", flash_attn=False
    )
    params = dataclasses.replace(PARAMS, n_threads=options.n_threads)
    for attempt in (1, 2):  # noise (a virtual machine's neighbours) can spoil one set: measured again once
        samples, threads, busy = _measure_shapes(ctx, session, options, params, on_progress)
        try:
            calibration = fit(
                samples,
                machine=ctx.machine_id(),
                llama_cpp_version=llama_cpp_version(),
                n_threads=threads,
                created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            )
            break
        except ValueError as exc:
            log.error("Calibration fit failed on %s", [(s.features, s.tg_tps, s.pp_tps) for s in samples])
            if attempt == 2:
                raise CalibrationError(f"The calibration measurements could not be used ({exc}); try again.") from exc
            log.info("The calibration is measured again once (%s)", exc)
    if busy:  # marked: measured again at the next launch, never kept over a calm one (save)
        worst = max(busy, key=lambda reading: reading.others_cores)
        shapes = f"{len(busy)} of {len(SHAPES)} shapes"
        calibration = dataclasses.replace(calibration, busy=f"{shapes} measured while {worst}")
    kept = save(ctx, calibration)
    log.info(
        "Calibrated %s: %s%s", ctx.machine_id(), calibration, f" (busy: {calibration.busy})" if calibration.busy else ""
    )
    return kept
