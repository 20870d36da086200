"""Benchmark sessions: llama-bench's protocol on installed models, results saved with what they
are about (the file, this machine, the llama.cpp build), and their comparison side by side.

Each model runs in a fresh engine process owned by the session: clean peak-memory figures, and a
crash ends one model's run, never the engine a chat is using.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from localopen.app.context import AppContext
from localopen.app.conversation import vision
from localopen.app.measure import draft_bench
from localopen.app.models import library
from localopen.core.errors import LocalopenError
from localopen.core.estimate import verdict as verdicts
from localopen.core.estimate.memory import ModelShape, decode_bound
from localopen.core.options import BenchParams, LoadOptions
from localopen.core.records import BenchResult, LoadInfo
from localopen.core.report.builds import BuildChange, compare_builds
from localopen.core.report.result_record import DraftSpeedup, MachineClass, ResultRecord, ToolCheckResult
from localopen.core.store import library_db, tool_checks
from localopen.core.store import results as results_db
from localopen.core.store.hashing import cached_sha256
from localopen.core.store.library_db import read_part_headers
from localopen.engine.client import Engine
from localopen.engine.errors import EngineDied
from localopen.engine.protocol import BenchDone, BenchProgress

log = logging.getLogger("localopen.benchmark")

Progress = Callable[[LoadInfo | str], None]


@dataclass
class BenchRun:
    path: Path
    load: LoadInfo | None = None
    results: list[BenchResult] = field(default_factory=list)  # saved, with their ids
    aborted: bool = False


class BenchmarkSession:
    """Runs models one at a time. run() blocks: call it from a worker thread; stop() from any."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._engine: Engine | None = None
        self._stopped = threading.Event()
        self._interrupted = threading.Event()  # this measurement only (the calibration gives way)

    def stopped(self) -> bool:
        """Whether stop() was asked since the run began."""
        return self._stopped.is_set()

    def stop(self) -> None:
        """Stop the run in progress (finished tests are kept) and any model not yet started."""
        self._stopped.set()
        engine = self._engine
        if engine is not None:
            engine.stop()

    def interrupt(self) -> None:
        """Stop the measurement in progress, or the next one, (it comes back aborted) without
        stopping the run; clear_interrupt() before listening for a reason to interrupt."""
        self._interrupted.set()
        engine = self._engine
        if engine is not None:
            engine.stop()

    def clear_interrupt(self) -> None:
        self._interrupted.clear()

    def kill(self) -> None:
        """Last resort at quit: end the engine process now."""
        engine = self._engine
        if engine is not None:
            engine.kill()

    def run_all(
        self,
        paths: list[Path],
        how: Callable[[Path], tuple[LoadOptions, BenchParams]],
        on_progress: Progress | None = None,
    ) -> list[BenchRun]:
        """Every model in turn, each loaded and run as `how` says for it (its preset over the
        settings), until one is stopped; a failure ends the run (its message says why)."""
        self._stopped.clear()
        runs: list[BenchRun] = []
        for path in paths:
            if self._stopped.is_set():
                break
            options, params = how(path)
            runs.append(self.run(path, options, params, on_progress, reset_stop=False))
            if runs[-1].aborted:
                break
        return runs

    def run(
        self,
        path: Path,
        options: LoadOptions,
        params: BenchParams,
        on_progress: Progress | None = None,
        reset_stop: bool = True,
        on_result: Callable[[BenchResult], None] | None = None,
    ) -> BenchRun:
        """Benchmark an installed file: the outcome of its load is noted, its results saved.
        on_result hears each test as it ends (described, not yet saved)."""
        try:
            note = lambda exc: library.note_load(self.ctx, path, exc)  # noqa: E731
            with self.ctx.activity.busy():
                run = self.measure(path, options, params, on_progress, reset_stop, on_load=note, on_result=on_result)
        except EngineDied as exc:  # a crash while benchmarking says the same as a failed load
            library.note_load(self.ctx, path, exc)
            raise
        if on_progress is not None:
            on_progress(f"{Path(path).name}: checking the file's sha256…")
        self._describe(run.path, run.results)
        for r in run.results:
            r.id = results_db.save(self.ctx.db, r)
        return run

    def run_drafting(
        self,
        path: Path,
        options: LoadOptions,
        draft: str,
        n_gen: int = 128,
        reps: int = 3,
        on_progress: Progress | None = None,
    ) -> BenchRun:
        """Speculative decoding measured on a file (app/draft_bench): each task plainly and with
        the drafter ("lookup" or a draft model's path); results saved like a benchmark's."""
        self._stopped.clear()
        run = BenchRun(Path(path))
        engines: list[Engine] = []

        def start_engine() -> Engine:
            engine = self._engine = Engine()
            engines.append(engine)
            return engine

        try:
            with self.ctx.activity.busy():
                run.load, run.results, run.aborted = draft_bench.measure(
                    start_engine, Path(path), options, draft, n_gen, reps, self._stopped.is_set, on_progress
                )
        finally:
            self._engine = None
            for engine in engines:
                engine.shutdown()
        self._describe(run.path, run.results)
        for r in run.results:
            r.id = results_db.save(self.ctx.db, r)
        return run

    def measure(
        self,
        path: Path,
        options: LoadOptions,
        params: BenchParams,
        on_progress: Progress | None = None,
        reset_stop: bool = True,
        on_load: Callable[[LocalopenError | None], None] | None = None,
        on_result: Callable[[BenchResult], None] | None = None,
    ) -> BenchRun:
        """Load `path` in a fresh engine and run the protocol on it; nothing is saved.
        on_load hears how the load went (None: it worked); on_result each test as it ends."""
        if reset_stop:
            self._stopped.clear()
        run = BenchRun(Path(path))
        engine = self._engine = Engine()
        try:
            try:
                # A vision model loads with its projector: the protocol then times an image's encoding too.
                run.load = engine.load(str(path), vision.with_projector(path, options))
            except LocalopenError as exc:
                if on_load is not None:
                    on_load(exc)
                raise
            if on_load is not None:
                on_load(None)
            if on_progress is not None:
                on_progress(run.load)
            if self._stopped.is_set() or self._interrupted.is_set():
                run.aborted = True
                return run
            for event in engine.bench(params):
                if isinstance(event, BenchProgress) and event.result is not None:
                    if on_result is not None:
                        self._describe(run.path, [event.result])
                        on_result(event.result)
                elif isinstance(event, BenchProgress) and on_progress is not None:
                    on_progress(event.message)
                elif isinstance(event, BenchDone):
                    run.results, run.aborted = event.results, event.aborted or self._interrupted.is_set()
        finally:
            self._engine = None
            engine.shutdown()
        return run

    def _describe(self, path: Path, results: list[BenchResult]) -> None:
        """What each result says about the file (sha256, quantization, grade, the machine's bandwidth
        bound for it) and about this machine."""
        ctx = self.ctx
        profile = ctx.profile
        headers = read_part_headers(path)
        header, total_bytes = headers[0], sum(h.tensor_bytes for h in headers)
        grade = library.grade_of_path(ctx, path)
        bound = decode_bound(ModelShape.from_header(header, total_bytes), profile.bandwidth_gbs if profile else None)
        sha256 = cached_sha256(ctx.db, path)
        for r in results:
            r.sha256 = sha256
            r.quantization = header.quantization
            r.model_name = header.name
            r.grade = grade.letter if grade else "?"
            r.decode_bound_tps = bound
            r.machine = ctx.machine_id()
            r.cpu_info = profile.cpu_model if profile else ""
            r.gpu_info = ", ".join(g.name for g in profile.gpus) if profile else ""


@dataclass(frozen=True)
class DraftGain:
    """Speculative decoding on one task: the drafted speed against the plain one (newest of each)."""

    task: str
    draft: str
    plain_ts: float
    drafted_ts: float
    same_text: bool | None
    kept: float | None = None  # the share of drafted tokens the model kept

    @property
    def speedup(self) -> float:
        return self.drafted_ts / self.plain_ts if self.plain_ts else 0.0

    def describe(self) -> str:
        text = f"{self.task} {self.speedup:.2f}x"
        return text if self.same_text is not False else text + " (text differed)"


@dataclass
class ComparisonRow:
    """One model's pp and tg results side by side, with efficiency and the measured verdict, and
    what drafting gained on each task it was measured on."""

    model_filename: str
    pp: BenchResult | None
    tg: BenchResult | None
    verdict: verdicts.Verdict | None
    drafting: list[DraftGain] = field(default_factory=list)
    latest: BenchResult | None = None  # the model's newest result of any kind (drafting alone, perhaps)

    def drafting_summary(self) -> str:
        """'lookup: quote 1.9x, code 1.6x, chat 0.95x', one drafter after another."""
        by_draft: dict[str, list[str]] = {}
        for gain in self.drafting:
            by_draft.setdefault(gain.draft, []).append(gain.describe())
        return "; ".join(f"{draft}: {', '.join(parts)}" for draft, parts in by_draft.items())

    @property
    def base(self) -> BenchResult:
        result = self.tg or self.pp or self.latest
        assert result is not None
        return result

    @property
    def name(self) -> str:
        """The file's name; a probe says so (it measured a zero-data replica of a Hub file)."""
        name = Path(self.model_filename).name
        return f"{name} (probed)" if self.base.basis == "probed" else name

    @property
    def efficiency(self) -> float | None:
        """Measured generation speed as a share of this machine's memory-bandwidth bound."""
        if self.tg is None or not self.tg.decode_bound_tps:
            return None
        return self.tg.avg_ts / self.tg.decode_bound_tps


def compare(results: list[BenchResult], thresholds: verdicts.Thresholds) -> list[ComparisonRow]:
    """Newest pp and tg per model file, in the order models first appear."""
    by_model: dict[str, dict[str, BenchResult]] = {}
    tasks: dict[str, dict[tuple[str, str], BenchResult]] = {}  # file -> (task, draft) -> newest
    latest: dict[str, BenchResult] = {}
    for r in results:
        latest[r.model_filename] = r
        tests = by_model.setdefault(r.model_filename, {})
        if r.task:
            tasks.setdefault(r.model_filename, {})[(r.task, r.draft)] = r
        else:
            tests["pp" if r.is_prompt_test else "tg"] = r
    rows = []
    for filename, tests in by_model.items():
        pp, tg = tests.get("pp"), tests.get("tg")
        verdict = None
        if tg is not None:
            judge = verdicts.probed if tg.basis == "probed" else verdicts.measured
            verdict = judge(tg.avg_ts, pp.avg_ts if pp else None, thresholds)
        gains = _draft_gains(tasks.get(filename, {}))
        rows.append(ComparisonRow(filename, pp, tg, verdict, gains, latest[filename]))
    return rows


def _draft_gains(tasks: dict[tuple[str, str], BenchResult]) -> list[DraftGain]:
    """Each drafted task against the same task decoded plainly."""
    gains = []
    for (task, draft), r in tasks.items():
        plain = tasks.get((task, ""))
        if draft and plain is not None:
            gains.append(DraftGain(task, draft, plain.avg_ts, r.avg_ts, r.same_text, r.draft_kept))
    return gains


def build_changes(ctx: AppContext) -> list[BuildChange]:
    """Each model's speeds on the previous llama.cpp build and the current one (this machine's)."""
    return compare_builds(results_db.query(ctx.db, machine=ctx.machine_id()))


def stale(ctx: AppContext, current: str) -> list[Path]:
    """Installed models benchmarked here on an earlier llama.cpp build but not on `current`: the
    ones to measure again (short protocol) to see what the new build changed."""
    by_file: dict[str, set[str]] = {}
    for r in results_db.query(ctx.db, machine=ctx.machine_id()):
        if r.basis == "measured" and r.llama_cpp_version and not r.task:  # llama-bench's tests, re-run
            by_file.setdefault(r.model_filename, set()).add(r.llama_cpp_version)
    installed = {str(m.path): m.path for m in library_db.list_models(ctx.db) if not m.missing}
    return [installed[f] for f, builds in by_file.items() if f in installed and current not in builds]


RERUN_PARAMS = BenchParams(n_prompt=128, n_gen=32, reps=3)  # short, with enough repetitions to flag a change


def history(ctx: AppContext, model: str | None = None, machine: str | None = None) -> list[BenchResult]:
    return results_db.query(ctx.db, model, machine)


def records(ctx: AppContext, model: str | None = None) -> list[ResultRecord]:
    """This machine's saved llama-bench results as versioned records (core/report/result_record):
    per file, settings and llama.cpp build, its newest prompt test with its newest generation test,
    with what else was measured of the same file here (drafting, a picture's encoding, the
    tool-calling check)."""
    import localopen

    profile = ctx.profile or ctx.read_profile()  # with the measured bandwidth (cached once measured)
    machine_id = ctx.machine_id()
    newest: dict[tuple[object, ...], dict[str, BenchResult]] = {}
    tasks: dict[str, dict[tuple[str, str], BenchResult]] = {}  # file -> (task, draft) -> newest
    for r in results_db.query(ctx.db, model, machine_id):
        if r.task:  # drafting tasks are not llama-bench's tests: their speed-ups go with the file's record
            tasks.setdefault(r.sha256 or r.model_filename, {})[(r.task, r.draft)] = r
            continue
        if r.basis not in ("measured", "probed"):
            continue
        file, settings = r.sha256 or r.model_filename, (r.n_threads, r.n_gpu_layers, r.type_k, r.type_v, r.flash_attn)
        key = (file, r.basis, *settings, r.backends, r.llama_cpp_version)
        kind = "pp" if r.n_prompt and not r.n_gen else "tg" if r.n_gen and not r.n_prompt else ""
        pair = newest.setdefault(key, {})
        if kind and (kind not in pair or r.test_time > pair[kind].test_time):
            pair[kind] = r
    out = []
    for pair in newest.values():
        if "pp" in pair and "tg" in pair:
            pp, tg = pair["pp"], pair["tg"]
            file = tg.sha256 or tg.model_filename
            drafting = tuple(
                DraftSpeedup(g.task, Path(g.draft).name, round(g.speedup, 3), g.same_text)
                for g in _draft_gains(tasks.get(file, {}))
            )
            check = tool_checks.latest(ctx.db, machine_id, tg.sha256) if tg.sha256 and tg.basis == "measured" else None
            tools = ToolCheckResult(check.passed, check.total, check.tool_format) if check and check.total else None
            machine = MachineClass.of(profile, tg.backends, tg.llama_cpp_version)
            image_ms = pp.image_encode_ms or tg.image_encode_ms
            out.append(ResultRecord.of(pp, tg, machine, drafting, image_ms, tools, localopen.__version__))
    return sorted(out, key=lambda rec: rec.measured_at)
