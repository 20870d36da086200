"""A short memory-bandwidth probe: parallel array copies, best of several runs.

Decode speed is bounded by memory bandwidth, so this number anchors the speed predictions.
numpy releases the GIL while copying, so one thread per physical core approaches what
llama.cpp's own threads can pull from memory.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor


def measure_bandwidth(size_mib: int = 128, repeats: int = 4, threads: int = 1) -> float:
    """Copy bandwidth in GB/s (bytes read + bytes written, 1 GB = 1e9 bytes)."""
    import numpy as np  # only when measuring: keeps numpy off the start-up path

    n = size_mib * 2**20 // 8
    src = np.ones(n, dtype=np.float64)
    dst = np.empty_like(src)
    threads = max(1, threads)
    bounds = [(i * n // threads, (i + 1) * n // threads) for i in range(threads)]

    def copy(span: tuple[int, int]) -> None:
        np.copyto(dst[span[0] : span[1]], src[span[0] : span[1]])

    best = float("inf")
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(copy, bounds))  # warm-up: page in both arrays
        for _ in range(repeats):
            start = time.perf_counter()
            list(pool.map(copy, bounds))
            best = min(best, time.perf_counter() - start)
    return round(2 * src.nbytes / best / 1e9, 2)
