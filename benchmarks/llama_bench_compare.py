#!/usr/bin/env python3
"""localopen's engine against llama.cpp's own llama-bench, on the same GGUF, threads and llama.cpp.

llama-bench is built (when asked, with --build) from the llama.cpp source vendored in the sdist
of the installed llama-cpp-python version, so both sides run the same llama.cpp code.

    python benchmarks/llama_bench_compare.py --build MODEL.gguf [-p 512] [-n 128] [-r 5] [-t THREADS]

Prints both results side by side with the ratio localopen / llama-bench for pp and tg (the median of
alternated rounds); --chat adds the Chat view's answer stream (sampling included) against tg.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from llama_cpp_tools import build_tool, comparison_model, tool_path


def run_llama_bench(binary: Path, model: str, args: argparse.Namespace) -> dict[str, dict]:
    cmd = [
        str(binary),
        "-m",
        model,
        "-p",
        str(args.p),
        "-n",
        str(args.n),
        "-r",
        str(args.r),
        "-o",
        "json",
        "-ngl",
        str(args.ngl),
    ]
    if args.t:
        cmd += ["-t", str(args.t)]
    if args.plain_kernels:
        cmd += ["--repack", "0"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = json.loads(out)
    return {("pp" if r["n_prompt"] else "tg") + str(r["n_prompt"] or r["n_gen"]): r for r in rows}


def chat_rate(engine: Any, n_gen: int, reps: int, sampling: str = "greedy") -> dict[str, float]:
    """Generation as the Chat view receives it (the engine's answer stream, sampling included):
    tokens/s from the first piece to the last, the median of reps answers, at temperature 0 (greedy)
    or with the Chat view's own defaults (app: temperature 0.8, top-k 40, repeat penalty 1.1; seeded)."""
    import dataclasses

    from localopen.app import engine_options
    from localopen.core.options import SamplingParams

    chosen = (
        SamplingParams(max_tokens=n_gen, temperature=0, repeat_penalty=1.0)
        if sampling == "greedy"
        else dataclasses.replace(engine_options.sampling(), max_tokens=n_gen, seed=1)
    )
    rates = []
    prompt = [{"role": "user", "content": "Counting from one to a thousand: 1, 2, 3, 4, 5,"}]
    for _ in range(reps + 1):  # the first answer warms up
        times: list[float] = []
        stats = engine.answer(
            prompt,
            chosen,
            "completion",
            lambda _piece, times=times: times.append(time.perf_counter()),
        )
        if len(times) > 1:
            rates.append((stats.completion_tokens - 1) / (times[-1] - times[0]))
    return {"avg_ts": statistics.median(rates[1:]), "stddev_ts": statistics.pstdev(rates[1:])}


def run_localopen(model: str, args: argparse.Namespace) -> dict[str, dict]:
    from localopen.core.options import BenchParams, LoadOptions
    from localopen.engine.client import Engine
    from localopen.engine.protocol import BenchDone

    engine = Engine()
    try:
        kernels = () if args.plain_kernels else None  # None: the kernels this machine's canary kept
        engine.load(
            model,
            LoadOptions(n_ctx=max(256, args.n + 64), n_threads=args.t, n_gpu_layers=args.ngl, kernels=kernels),
        )
        for event in engine.bench(BenchParams(n_prompt=args.p, n_gen=args.n, reps=args.r, n_threads=args.t)):
            if isinstance(event, BenchDone):
                results = {r.test: r.to_dict() for r in event.results}
                if args.chat:
                    results[f"chat{args.n}"] = chat_rate(engine, args.n, args.r, args.chat_sampling)
                return results
    finally:
        engine.shutdown()
    raise RuntimeError("no benchmark result")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a GGUF file, or gemma (the test model), mini, 1b or 7b (zero-data replicas)")
    parser.add_argument("--build", action="store_true", help="build llama-bench if it is not built yet")
    parser.add_argument("--llama-bench", help="use this llama-bench binary instead")
    parser.add_argument("-p", type=int, default=512)
    parser.add_argument("-n", type=int, default=128)
    parser.add_argument("-r", type=int, default=5)
    parser.add_argument("-t", type=int, default=None)
    parser.add_argument("--ngl", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1, help="alternate the two tools this many times")
    parser.add_argument(
        "--plain-kernels",
        action="store_true",
        help="no extra CPU buffer types on either side (llama-bench --repack 0): where llama.cpp's AMX "
        "kernels crash, llama-bench cannot run otherwise",
    )
    parser.add_argument("--chat", action="store_true", help="also the chat's answer stream against llama-bench's tg")
    parser.add_argument(
        "--chat-sampling",
        choices=("greedy", "app"),
        default="greedy",
        help="the chat's sampling: greedy, or its defaults",
    )
    args = parser.parse_args()
    if args.llama_bench:
        binary = Path(args.llama_bench)
    elif args.build or tool_path("llama-bench").exists():
        binary = build_tool("llama-bench")
    else:
        parser.error("llama-bench is not built: pass --build (a few minutes) or --llama-bench PATH")
    model = str(comparison_model(args.model))
    ours_all, theirs_all = [], []
    for i in range(args.rounds):  # alternate, so drift (thermal, other load) hits both sides alike
        if i % 2 == 0:
            theirs_all.append(run_llama_bench(binary, model, args))
            ours_all.append(run_localopen(model, args))
        else:
            ours_all.append(run_localopen(model, args))
            theirs_all.append(run_llama_bench(binary, model, args))
    print(f"{'test':8} {'llama-bench t/s':>16} {'localopen t/s':>16} {'ratio (median of rounds)':>26}")
    tests = [(test, test) for test in theirs_all[0]]
    if args.chat:  # the chat's stream against llama-bench's tg: the Chat view's target
        tests.append((f"chat{args.n}", f"tg{args.n}"))
    for test, reference in tests:
        theirs = statistics.median(r[reference]["avg_ts"] for r in theirs_all)
        ours = statistics.median(r[test]["avg_ts"] for r in ours_all)
        ratios = sorted(o[test]["avg_ts"] / t[reference]["avg_ts"] for o, t in zip(ours_all, theirs_all))
        spread = f"{ratios[0]:.3f}-{ratios[-1]:.3f}" if len(ratios) > 1 else ""
        print(f"{test:8} {theirs:16.2f} {ours:16.2f} {statistics.median(ratios):10.3f} {spread:>15}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
