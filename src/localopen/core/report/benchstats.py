"""Throughput statistics computed exactly as llama.cpp's llama-bench does."""

from __future__ import annotations

import math


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def stdev(values: list[float]) -> float:
    """Sample standard deviation, llama-bench's formula (0 for fewer than two samples)."""
    n = len(values)
    if n <= 1:
        return 0.0
    m = mean(values)
    sq_sum = sum(v * v for v in values)
    return math.sqrt(max(0.0, sq_sum / (n - 1) - m * m * n / (n - 1)))


def tokens_per_second(samples_ns: list[int], n_tokens: int) -> list[float]:
    """llama-bench's get_ts(): one rate per repetition, 1e9 × tokens ÷ ns."""
    return [1e9 * n_tokens / t for t in samples_ns if t > 0]
