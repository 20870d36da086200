"""What each of llama.cpp's CPU variants gives here, in a build with one per CPU generation (the
release build: installers/linux/build.sh): run by hand, with the bundle's llama.cpp, e.g.

    PYTHONPATH=src build/venv/bin/python benchmarks/cpu_variants.py MODEL.gguf [--variants haswell sapphirerapids]

For each variant (default: every one this build has) a fresh engine loads the model with it and
the extra buffer types the kernel canary kept, and benchmarks pp512 and tg128 like llama-bench. A
variant this CPU cannot run is said so (ggml scores it 0, or it dies); the canary's own choice is
marked. The x86-64-v3 build the .deb shipped before is the haswell variant.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from localopen.core.options import BenchParams, LoadOptions
from localopen.engine import cpu_variants
from localopen.engine.canary import kernel_choice
from localopen.engine.client import Engine
from localopen.engine.errors import EngineError
from localopen.engine.protocol import BenchDone


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--variants", nargs="*", help="default: every variant of this build")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    names = args.variants or list(cpu_variants.variant_files())
    if not names:
        print("This llama.cpp has its CPU backend linked in: no variants to compare.")
        return 1
    choice = kernel_choice()
    kernels = tuple(choice.working) if choice else ()
    chosen = choice.variant if choice else ""
    print(f"extra buffer types: {', '.join(kernels) or 'none'}; the canary's variant: {chosen or '?'}")
    print("| variant | pp512 t/s | tg128 t/s |")
    print("|---|---|---|")
    for name in names:
        engine = Engine()
        try:
            engine.load(str(args.model), LoadOptions(n_ctx=4096, kernels=kernels, cpu_variant=name))
            done = [e for e in engine.bench(BenchParams(n_prompt=512, n_gen=128, reps=args.reps))]
            speed = {
                "pp" if r.is_prompt_test else "tg": r for r in [d for d in done if isinstance(d, BenchDone)][-1].results
            }
            pp, tg = speed["pp"], speed["tg"]
            cells = f"{pp.avg_ts:.1f} ± {pp.stddev_ts:.1f} | {tg.avg_ts:.2f} ± {tg.stddev_ts:.2f}"
        except EngineError as exc:
            cells = f"cannot run here ({exc}) |"
        finally:
            engine.shutdown()
        print(f"| {name}{' (chosen)' if name == chosen else ''} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
