#!/usr/bin/env python3
"""GPU offload, checked for real: load a model on the CPU and fully offloaded, compare.

Run on a machine with a GPU and a GPU build of llama-cpp-python:
    python benchmarks/gpu_check.py [MODEL.gguf] [--out results.json]
Without MODEL, writes a synthetic ~1.3 GB F16 llama (random weights) to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> int:
    from localopen.core.options import BenchParams, LoadOptions, SamplingParams
    from localopen.engine.client import Engine
    from localopen.engine.protocol import BenchDone

    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?")
    parser.add_argument("--out")
    args = parser.parse_args()
    model = args.model
    if model is None:
        import numpy as np

        from tiny_gguf import write_tiny_llama

        start = time.time()
        model = str(
            write_tiny_llama(
                Path(tempfile.mkdtemp()) / "synthetic-1b-f16.gguf",
                n_embd=2048,
                n_layer=16,
                n_ff=5632,
                n_head=32,
                n_head_kv=8,
                dtype=np.float16,
            )
        )
        print(f"wrote {model} ({Path(model).stat().st_size / 1e9:.2f} GB) in {time.time() - start:.1f} s")
    report = {"model": model, "runs": []}
    for ngl in (0, -1):
        engine = Engine()
        try:
            info = engine.load(model, LoadOptions(n_ctx=2048, n_gpu_layers=ngl))
            stats = engine.answer([{"role": "user", "content": "hello"}], SamplingParams(max_tokens=64, seed=1))
            bench = []
            for ev in engine.bench(BenchParams(n_prompt=512, n_gen=128, reps=3)):
                if isinstance(ev, BenchDone):
                    bench = [
                        {
                            k: r.to_dict()[k]
                            for k in ("test", "avg_ts", "stddev_ts", "backends", "n_gpu_layers", "peak_rss_bytes")
                        }
                        for r in ev.results
                    ]
            loaded = info.to_dict()
            run = {
                "n_gpu_layers": ngl,
                **{
                    k: loaded[k]
                    for k in (
                        "backend",
                        "gpu_warning",
                        "gpu_layers_offloaded",
                        "load_time_ms",
                        "memory_actual",
                        "memory_estimate",
                        "estimate_error",
                    )
                },
                "chat": stats.to_dict(),
                "bench": bench,
            }
            report["runs"].append(run)
            print(json.dumps(run, indent=1))
        finally:
            engine.shutdown()
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
