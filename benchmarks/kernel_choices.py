"""What each choice of llama.cpp's CPU kernels costs here, and whether the fit follows it: run by
hand, about 2 minutes a model on two cores.

For each model and each kernel choice (the extra buffer types this machine's canary kept, each
alone, AMX where it runs, and none: llama.cpp's plain kernels), loads the model in a fresh engine,
compares localopen's memory estimate with llama.cpp's own buffer report (the file's pages of
repacked tensors counted once: engine/llama_log.py), and, unless --memory-only, benchmarks
pp512 and tg128 like llama-bench. A choice the canary found crashing is loaded for its memory
report only (loading does not decode; the crash comes at the first matrix multiply).

    python benchmarks/kernel_choices.py MODEL.gguf [MODEL.gguf…] [--ctx 4096] [--reps 3] [--memory-only]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from localopen.core.options import BenchParams, LoadOptions
from localopen.engine.canary import kernel_choice
from localopen.engine.client import Engine
from localopen.engine.protocol import BenchDone

MiB = 2**20


def choices(offered: list[str], working: list[str]) -> list[tuple[tuple[str, ...], bool]]:
    """(kernels, whether they decode here): each offered one alone, the canary's choice, none."""
    out: list[tuple[tuple[str, ...], bool]] = [((name,), name in working) for name in offered]
    if len(working) > 1:
        out.append((tuple(working), True))
    out.append(((), True))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--memory-only", action="store_true")
    args = parser.parse_args()
    choice = kernel_choice()
    offered = choice.offered if choice else []
    working = choice.working if choice else []
    print(f"offered here: {', '.join(offered) or 'none'}; crashing: {', '.join(choice.crashed) if choice else '?'}")
    print("| model | kernels | mmap | llama.cpp MiB | estimate MiB | error | pp512 t/s | tg128 t/s |")
    print("|---|---|---|---|---|---|---|---|")
    for model in args.models:
        for kernels, decodes in choices(offered, working):
            for mmap in (True, False):
                engine = Engine()
                try:
                    info = engine.load(str(model), LoadOptions(n_ctx=args.ctx, kernels=kernels, use_mmap=mmap))
                    pp = tg = "crashes" if not decodes else "-"
                    if decodes and mmap and not args.memory_only:
                        params = BenchParams(n_prompt=512, n_gen=128, reps=args.reps)
                        done = [e for e in engine.bench(params) if isinstance(e, BenchDone)][-1]
                        speed = {"pp" if r.is_prompt_test else "tg": r.avg_ts for r in done.results}
                        pp, tg = f"{speed['pp']:.1f}", f"{speed['tg']:.2f}"
                    actual, estimate = info.memory_actual, info.memory_estimate
                    print(
                        f"| {model.name} | {', '.join(kernels) or 'none'} | {'yes' if mmap else 'no'} | "
                        f"{actual.total / MiB:.0f} | {estimate.total / MiB:.0f} | {info.estimate_error:+.1%} | "
                        f"{pp} | {tg} |",
                        flush=True,
                    )
                finally:
                    engine.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
