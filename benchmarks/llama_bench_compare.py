#!/usr/bin/env python3
"""localopen's engine against llama.cpp's own llama-bench, on the same GGUF, threads and llama.cpp.

llama-bench is built (when asked, with --build) from the llama.cpp source vendored in the sdist
of the installed llama-cpp-python version, so both sides run the same llama.cpp code.

    python benchmarks/llama_bench_compare.py --build MODEL.gguf [-p 512] [-n 128] [-r 5] [-t THREADS]

Prints both results side by side with the ratio localopen / llama-bench for pp and tg.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path

CACHE = Path(os.environ.get("LLAMA_BENCH_CACHE", Path.home() / ".cache" / "localopen-llama-bench"))


def build_llama_bench() -> Path:
    ver = version("llama-cpp-python")
    root = CACHE / ver
    binary = root / "build" / "bin" / "llama-bench"
    if binary.exists():
        return binary
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-binary",
                ":all:",
                "--no-deps",
                "-d",
                tmp,
                f"llama-cpp-python=={ver}",
            ],
            check=True,
        )
        sdist = next(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        with tarfile.open(sdist) as tar:
            tar.extractall(root / "src", filter="data")
    source = next((root / "src").glob("llama_cpp_python-*")) / "vendor" / "llama.cpp"
    # Same CPU build flags as the wheel pip built (native, OpenMP); GPU flags come from CMAKE_ARGS.
    extra = os.environ.get("CMAKE_ARGS", "").split()
    subprocess.run(
        [
            "cmake",
            "-S",
            str(source),
            "-B",
            str(root / "build"),
            "-DCMAKE_BUILD_TYPE=Release",
            "-DLLAMA_CURL=OFF",
            "-DLLAMA_BUILD_TESTS=OFF",
            "-DLLAMA_BUILD_EXAMPLES=OFF",
            "-DLLAMA_BUILD_SERVER=OFF",
            *extra,
        ],
        check=True,
    )
    subprocess.run(
        ["cmake", "--build", str(root / "build"), "--target", "llama-bench", "-j", str(os.cpu_count())], check=True
    )
    return binary


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
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = json.loads(out)
    return {("pp" if r["n_prompt"] else "tg") + str(r["n_prompt"] or r["n_gen"]): r for r in rows}


def run_localopen(model: str, args: argparse.Namespace) -> dict[str, dict]:
    from localopen.engine.client import Engine
    from localopen.engine.protocol import BenchDone, BenchParams, LoadOptions

    engine = Engine()
    try:
        engine.load(model, LoadOptions(n_ctx=256, n_threads=args.t, n_gpu_layers=args.ngl))
        for event in engine.bench(BenchParams(n_prompt=args.p, n_gen=args.n, reps=args.r, n_threads=args.t)):
            if isinstance(event, BenchDone):
                return {r.test: r.to_dict() for r in event.results}
    finally:
        engine.shutdown()
    raise RuntimeError("no benchmark result")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--build", action="store_true", help="build llama-bench if it is not built yet")
    parser.add_argument("--llama-bench", help="use this llama-bench binary instead")
    parser.add_argument("-p", type=int, default=512)
    parser.add_argument("-n", type=int, default=128)
    parser.add_argument("-r", type=int, default=5)
    parser.add_argument("-t", type=int, default=None)
    parser.add_argument("--ngl", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1, help="alternate the two tools this many times")
    args = parser.parse_args()
    if args.llama_bench:
        binary = Path(args.llama_bench)
    elif args.build or (CACHE / version("llama-cpp-python") / "build" / "bin" / "llama-bench").exists():
        binary = build_llama_bench()
    else:
        parser.error("llama-bench is not built: pass --build (a few minutes) or --llama-bench PATH")
    ours_all, theirs_all = [], []
    for _ in range(args.rounds):  # alternate, so drift (thermal, other load) hits both sides alike
        theirs_all.append(run_llama_bench(binary, args.model, args))
        ours_all.append(run_localopen(args.model, args))
    print(f"{'test':8} {'llama-bench t/s':>20} {'localopen t/s':>20} {'ratio':>7}")
    for test in theirs_all[0]:
        theirs = sum(r[test]["avg_ts"] for r in theirs_all) / args.rounds
        ours = sum(r[test]["avg_ts"] for r in ours_all) / args.rounds
        sd_t = max(r[test]["stddev_ts"] for r in theirs_all)
        sd_o = max(r[test]["stddev_ts"] for r in ours_all)
        print(f"{test:8} {theirs:13.2f} ± {sd_t:5.2f} {ours:13.2f} ± {sd_o:5.2f} {ours / theirs:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
