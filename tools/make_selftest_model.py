#!/usr/bin/env python3
"""Write resources/selftest-tiny.gguf: the random-weight model `localopen --self-test` loads.

A 2-layer llama with a byte vocabulary, F16 matrices (~0.2 MB). It is made entirely by this
script (random weights from a fixed seed), so it carries this project's licence (Apache-2.0).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> int:
    import numpy as np

    from tiny_gguf import write_tiny_llama

    target = ROOT / "resources" / "selftest-tiny.gguf"
    write_tiny_llama(
        target,
        license="apache-2.0",
        seed=20261123,
        dtype=np.float16,
        extra={"general.description": "localopen self-test model: random weights, not a language model"},
    )
    print(f"wrote {target} ({target.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
