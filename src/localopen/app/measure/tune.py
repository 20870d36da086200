"""Tune for this machine: measure a model's load settings with llama-bench's protocol (short runs)
and keep what is measurably faster than its current settings, as the model's preset.

The sweep: threads (physical cores, one fewer, every logical core), the micro-batch (256, 512),
flash attention (off, on) and the KV cache (f16, q8_0; q8_0 only with flash attention, which a
quantized V needs). A setting is kept only when it beats the current one by more than the run's
noise on generation (what a chat waits on) without losing prompt speed beyond the noise, and never
when it needs more memory than the current settings (a larger micro-batch grows the compute buffer).
The current settings are measured first and again last, and the better of the two is the bar (a
machine's speed drifts during a sweep). The choice (`choose`) is a pure function of the measured
figures, so it is tested on stored ones.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localopen.app import engine_options, presets
from localopen.app.context import AppContext
from localopen.app.measure.benchmark import BenchmarkSession
from localopen.core.errors import LocalopenError
from localopen.core.estimate.memory import ModelShape, estimate_memory
from localopen.core.gguf.header import read_header
from localopen.core.machine.hardware import physical_cores
from localopen.core.options import BenchParams

TUNE_PARAMS = BenchParams(n_prompt=128, n_gen=32, reps=3)
NOISE_SIGMAS = 2.0  # a gain counts past twice the combined standard deviation…
MIN_GAIN = 0.03  # …and 3 %


@dataclass(frozen=True)
class Candidate:
    n_threads: int
    n_ubatch: int
    flash_attn: bool
    kv_cache_type: str

    @property
    def label(self) -> str:
        fa = "fa on" if self.flash_attn else "fa off"
        return f"{self.n_threads} threads, ubatch {self.n_ubatch}, {fa}, {self.kv_cache_type} cache"

    def preset(self) -> dict[str, Any]:
        return {
            "n_threads": self.n_threads,
            "n_ubatch": self.n_ubatch,
            "flash_attn": self.flash_attn,
            "kv_cache_type": self.kv_cache_type,
        }


@dataclass(frozen=True)
class MeasuredSetting:
    candidate: Candidate
    pp_ts: float
    pp_sd: float
    tg_ts: float
    tg_sd: float
    memory: int  # bytes the estimate says this setting needs at the model's context

    def to_dict(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self.candidate),
            "pp_ts": round(self.pp_ts, 2),
            "pp_sd": round(self.pp_sd, 2),
            "tg_ts": round(self.tg_ts, 2),
            "tg_sd": round(self.tg_sd, 2),
            "memory": self.memory,
        }


@dataclass(frozen=True)
class Choice:
    best: MeasuredSetting
    baseline: MeasuredSetting
    changed: bool  # False: nothing beat the current settings beyond the noise
    tg_gain: float  # best / baseline - 1
    pp_gain: float
    why: str
    measured: tuple[MeasuredSetting, ...] = ()  # every setting measured, for the report


def _beats(new: float, new_sd: float, old: float, old_sd: float) -> bool:
    return new - old > max(NOISE_SIGMAS * math.hypot(new_sd, old_sd), MIN_GAIN * old)


def _not_worse(new: float, new_sd: float, old: float, old_sd: float) -> bool:
    return old - new <= max(NOISE_SIGMAS * math.hypot(new_sd, old_sd), MIN_GAIN * old)


def choose(baseline: MeasuredSetting, measured: list[MeasuredSetting]) -> Choice:
    """The fastest setting for generation that beats the baseline beyond the noise, loses no prompt
    speed beyond it, and needs no more memory; else the baseline."""
    fair = [
        m
        for m in measured
        if m.memory <= baseline.memory
        and _beats(m.tg_ts, m.tg_sd, baseline.tg_ts, baseline.tg_sd)
        and _not_worse(m.pp_ts, m.pp_sd, baseline.pp_ts, baseline.pp_sd)
    ]
    if not fair:
        why = "nothing was faster than the current settings beyond the noise"
        return Choice(baseline, baseline, False, 0.0, 0.0, why, tuple(measured))
    best = max(fair, key=lambda m: (m.tg_ts, m.pp_ts))
    tg, pp = best.tg_ts / baseline.tg_ts - 1, best.pp_ts / baseline.pp_ts - 1
    why = f"generation {tg:+.0%}, prompt {pp:+.0%} over the current settings"
    return Choice(best, baseline, True, tg, pp, why, tuple(measured))


def candidates(current: Candidate) -> list[Candidate]:
    physical = physical_cores()
    logical = os.cpu_count() or physical
    threads = sorted({physical, max(1, physical - 1), logical} - {current.n_threads})
    out = [dataclasses.replace(current, n_threads=t) for t in threads]
    out += [dataclasses.replace(current, n_ubatch=u) for u in (256, 512) if u != current.n_ubatch]
    out.append(dataclasses.replace(current, flash_attn=not current.flash_attn, kv_cache_type="f16"))
    if current.kv_cache_type != "q8_0":
        out.append(dataclasses.replace(current, flash_attn=True, kv_cache_type="q8_0"))
    return list(dict.fromkeys(c for c in out if c != current))


Progress = Callable[[str], None]


def tune(
    ctx: AppContext,
    path: Path,
    session: BenchmarkSession,
    on_progress: Progress | None = None,
    params: BenchParams = TUNE_PARAMS,
) -> Choice:
    """Measure the current settings and each candidate (a fresh engine each, as Compare does)."""
    preset = presets.preset_for(ctx, path)
    options = engine_options.load_options(ctx.settings, preset=preset)
    physical = physical_cores()
    current = Candidate(options.n_threads or physical, options.n_ubatch, options.flash_attn, options.type_k)
    header = read_header(path)
    shape = ModelShape.from_header(header, path.stat().st_size)

    def measure(candidate: Candidate) -> MeasuredSetting:
        if on_progress is not None:
            on_progress(f"Measuring {candidate.label}…")
        load, bench = engine_options.bench_options(
            ctx.settings,
            params,
            n_threads=candidate.n_threads,
            kv_cache_type=candidate.kv_cache_type,
            flash_attn=candidate.flash_attn,
            preset={**preset, "n_ubatch": candidate.n_ubatch},
        )
        run = session.measure(path, load, bench)
        if run.aborted or session.stopped():
            raise LocalopenError("Tuning was stopped; the model's settings are unchanged.")
        tests = {("pp" if r.is_prompt_test else "tg"): r for r in run.results}
        memory = estimate_memory(
            shape,
            options.n_ctx,
            n_ubatch=candidate.n_ubatch,
            flash_attn=candidate.flash_attn,
            type_k=candidate.kv_cache_type,
            type_v=candidate.kv_cache_type,
        ).total
        return MeasuredSetting(
            candidate, tests["pp"].avg_ts, tests["pp"].stddev_ts, tests["tg"].avg_ts, tests["tg"].stddev_ts, memory
        )

    def attempt(candidate: Candidate) -> MeasuredSetting | None:
        """A setting this model or build cannot run (a cache block that does not divide its heads)
        is left out, said in the progress, never the end of the sweep."""
        try:
            return measure(candidate)
        except LocalopenError as exc:
            if session.stopped():
                raise
            if on_progress is not None:
                on_progress(f"{candidate.label}: not possible here ({exc})")
            return None

    with ctx.activity.busy():
        first = measure(current)
        measured = [m for m in (attempt(c) for c in candidates(current)) if m is not None]
        again = measure(current)  # a machine's speed drifts: the current settings' better run is the bar
    baseline = max((first, again), key=lambda m: (m.tg_ts, m.pp_ts))
    return choose(baseline, measured)


def save(ctx: AppContext, path: Path, choice: Choice) -> None:
    """Keep the chosen setting as the model's preset, with the figures it was chosen on."""
    if not choice.changed:
        return
    preset = {**presets.preset_for(ctx, path), **choice.best.candidate.preset()}
    b, base = choice.best, choice.baseline
    note = (
        f"tuned here: tg {base.tg_ts:.1f} -> {b.tg_ts:.1f} t/s, pp {base.pp_ts:.1f} -> {b.pp_ts:.1f} t/s ({choice.why})"
    )
    presets.save(ctx, presets.name_of(path), preset, note)
