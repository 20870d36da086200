"""Measured here before the download: a Hub file's speed and memory, from its header alone.

The header of the exact file (every part of a split model) is fetched with Range requests, a
zero-data replica is written as a sparse file in the cache folder, llama-bench's protocol runs
on it with short runs and this machine's settings, and the replica is deleted. Results are saved
with the other benchmark results, marked "probed": never taken for a measurement of the real file.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localopen.app import engine_options
from localopen.app.context import AppContext
from localopen.app.measure import probed_headers
from localopen.app.measure.benchmark import BenchmarkSession
from localopen.app.measure.calibration import current as current_calibration
from localopen.app.models.pull import choose_files, choose_projector
from localopen.core.errors import LocalopenError
from localopen.core.estimate import verdict as verdicts
from localopen.core.estimate.inputs import file_features, file_fit
from localopen.core.estimate.memory import ModelShape, decode_bound, human_bytes
from localopen.core.estimate.speed import Calibration, Features
from localopen.core.hub.replica import RemoteHeader, ReplicaError, fetch_header, write_replica
from localopen.core.openness.grade import evidence_from_header, grade
from localopen.core.options import BenchParams
from localopen.core.records import BenchResult, LoadInfo, MemoryFigures
from localopen.core.store import results as results_db
from localopen.core.store.library_db import record_hub_files
from localopen.core.store.measurements import probe_key

log = logging.getLogger("localopen.probe")

# Short runs: a probe should cost seconds before a download, not minutes. The prompt test is
# always 512 tokens, the prompt its time to first token is for: prompt speed on this CPU grows with
# the batch (pp64 read 14-33 % below pp512 for 1-8B models here), so a shorter prompt would not
# say it. Its warm-up is a short prompt (every weight is touched either way), generation is sized
# to take about TEST_SECONDS, and the runs repeat while that stays cheap.
# benchmarks/probe_accuracy.py checks the figures against the full protocol (pp512, tg128).
TEST_SECONDS = 2.0
PROBE_PROMPT = 512
WARMUP_PROMPT = 32
QUICK = BenchParams(n_prompt=PROBE_PROMPT, n_gen=32, reps=2, warmup_prompt=WARMUP_PROMPT)  # no calibration, to 2 GB
SHORT = BenchParams(n_prompt=PROBE_PROMPT, n_gen=16, reps=1, warmup_prompt=WARMUP_PROMPT)  # no calibration, above
UNCALIBRATED_SHORT_BYTES = 2 * 10**9

Progress = Callable[[LoadInfo | str], None]


class ProbeRefused(ReplicaError):
    """The probe would not fit in this machine's memory (its pages are real RAM once touched)."""


class ProbeStopped(LocalopenError):
    pass


@dataclass
class ProbeReport:
    repo: str
    file: str
    parts: int
    file_size: int
    bytes_fetched: int
    n_ctx: int
    memory: MemoryFigures
    verdict: verdicts.Verdict
    results: list[BenchResult] = field(default_factory=list)
    elapsed_s: float = 0.0
    load_time_ms: float = 0.0
    projector: dict[str, Any] | None = None  # a vision model's projector, probed beside it (LoadInfo.vision)

    def _test(self, prompt: bool) -> BenchResult | None:
        return next((r for r in self.results if r.is_prompt_test == prompt), None)

    @property
    def pp(self) -> BenchResult | None:
        return self._test(True)

    @property
    def tg(self) -> BenchResult | None:
        return self._test(False)

    def to_dict(self) -> dict[str, Any]:
        pp, tg = self.pp, self.tg
        return {
            "repo": self.repo,
            "file": self.file,
            "parts": self.parts,
            "file_size": self.file_size,
            "bytes_fetched": self.bytes_fetched,
            "fetched_share": round(self.bytes_fetched / self.file_size, 5) if self.file_size else None,
            "pp_tps": round(pp.avg_ts, 2) if pp else None,
            "tg_tps": round(tg.avg_ts, 2) if tg else None,
            "ttft_s": self.verdict.ttft_s,
            "n_prompt": pp.n_prompt if pp else None,
            "n_gen": tg.n_gen if tg else None,
            "n_ctx": self.n_ctx,
            "memory": self.memory.to_dict(),
            "band": self.verdict.band,
            "basis": "probed",
            "reason": self.verdict.reason,
            "load_time_ms": round(self.load_time_ms, 1),
            "elapsed_s": round(self.elapsed_s, 1),
            "projector": self.projector,
            "image_encode_ms": pp.image_encode_ms if pp else None,
        }


def _power_of_two_at_most(n: float, low: int, high: int) -> int:
    value = low
    while value * 2 <= min(n, high):
        value *= 2
    return value


def probe_params(features: Features, calibration: Calibration | None, n_threads: int | None) -> BenchParams:
    """Tests sized to take about TEST_SECONDS each here, repeated while that stays cheap."""
    if calibration is None:
        base = SHORT if features.weight_bytes > UNCALIBRATED_SHORT_BYTES else QUICK
        return dataclasses.replace(base, n_threads=n_threads)
    predicted = calibration.predict(features)
    n_gen = _power_of_two_at_most(predicted.tg_tps * TEST_SECONDS, 16, 128)
    per_rep = PROBE_PROMPT / predicted.pp_tps + n_gen / predicted.tg_tps
    reps = 3 if per_rep < 4 else 2 if per_rep < 8 else 1
    return BenchParams(PROBE_PROMPT, n_gen, reps, n_threads=n_threads, warmup_prompt=WARMUP_PROMPT)


class ProbeSession:
    """One probe at a time. run() blocks: call it from a worker thread; stop() from any."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.bench = BenchmarkSession(ctx)
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()
        self.bench.stop()

    def kill(self) -> None:
        self.bench.kill()

    def run(
        self, repo: str, quant: str | None = None, filename: str | None = None, on_progress: Progress | None = None
    ) -> ProbeReport:
        started = time.monotonic()
        self._stopped.clear()
        ctx = self.ctx
        say = on_progress or (lambda _event: None)
        files = ctx.hub().files(repo)
        record_hub_files(ctx.db, files)
        chosen = choose_files(files, quant, filename)
        projector = choose_projector(files)  # a vision model's: probed beside it (its memory, an image's encoding)
        headers: list[RemoteHeader] = []
        for remote in [*chosen, projector] if projector is not None else chosen:
            if self._stopped.is_set():
                raise ProbeStopped("The probe was stopped.")
            say(f"Reading the header of {Path(remote.filename).name} ({human_bytes(remote.size)} on the Hub)…")
            headers.append(fetch_header(remote))
        projector_header = headers.pop() if projector is not None else None
        header = headers[0].header
        total = sum(h.header.tensor_bytes for h in headers)
        profile = ctx.profile or ctx.read_profile(measure=False)
        n_ctx = min(ctx.settings.n_ctx, header.context_length or ctx.settings.n_ctx)
        fit = file_fit(
            header,
            profile,
            n_ctx,
            total,
            {"projector_bytes": projector.size or 0} if projector is not None else None,
            ctx.settings.budget,
        )
        if fit.code == "no_fit":
            raise ProbeRefused(
                f"Not probed: {fit.detail}. A probe loads the whole model into memory as the real file "
                "would, so it cannot run here either."
            )
        features = file_features(header, total)
        options = engine_options.load_options(ctx.settings, n_ctx=n_ctx)
        params = probe_params(features, current_calibration(ctx), options.n_threads)
        ctx.paths.cache.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="probe-", dir=ctx.paths.cache))
        try:
            say(f"Writing a zero-data replica ({human_bytes(sum(h.remote.size or 0 for h in headers))}, sparse)…")
            path = write_replica(headers, folder)
            if projector_header is not None:  # beside the model, as a download puts it: it is paired and loaded
                write_replica([projector_header], folder)
            if self._stopped.is_set():
                raise ProbeStopped("The probe was stopped.")
            run = self.bench.measure(path, options, params, on_progress)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if run.aborted or run.load is None or len(run.results) < 2:
            raise ProbeStopped("The probe was stopped before it finished; nothing was saved.")
        self._describe(run.results, headers, total)
        for r in run.results:
            r.id = results_db.save(ctx.db, r)
        probed_headers.remember(ctx, headers)
        tests = {("pp" if r.is_prompt_test else "tg"): r for r in run.results}
        verdict = verdicts.probed(tests["tg"].avg_ts, tests["pp"].avg_ts, ctx.thresholds)
        log.info("Probed %s/%s: %s", repo, chosen[0].filename, verdict.reason)
        return ProbeReport(
            repo=repo,
            file=chosen[0].filename,
            parts=len(chosen),
            file_size=sum(f.size or 0 for f in chosen),
            bytes_fetched=sum(h.bytes_fetched for h in headers),
            n_ctx=run.load.n_ctx,
            memory=run.load.memory_actual,
            verdict=verdict,
            results=run.results,
            elapsed_s=time.monotonic() - started,
            load_time_ms=run.load.load_time_ms,
            projector=run.load.vision and {k: v for k, v in run.load.vision.items() if k != "projector"},
        )

    def _describe(self, results: list[BenchResult], headers: list[RemoteHeader], total: int) -> None:
        """What the results are about: the Hub file (by repo, name and sha256), never the replica."""
        ctx, first = self.ctx, headers[0]
        header, remote = first.header, first.remote
        entry = ctx.catalog.get(remote.repo)
        grade_ = (
            entry.grade
            if entry
            else grade(evidence_from_header(header.metadata, ctx.catalog.evidence_by_repo()), provisional=True)
        )
        profile = ctx.profile
        bound = decode_bound(ModelShape.from_header(header, total), profile.bandwidth_gbs if profile else None)
        for r in results:
            r.basis = "probed"
            r.repo = remote.repo
            r.model_filename = probe_key(remote.repo, remote.filename)
            r.sha256 = remote.sha256 or ""
            r.quantization = header.quantization
            r.model_name = header.name
            r.grade = grade_.letter
            r.decode_bound_tps = bound
            r.machine = ctx.machine_id()
            r.cpu_info = profile.cpu_model if profile else ""
            r.gpu_info = ", ".join(g.name for g in profile.gpus) if profile else ""
