"""The engine regression guard: each model's pp and tg on the previous llama.cpp build and the
current one, side by side, with a change flagged when it is beyond the noise.

Results are compared only like for like: the same file (sha256, else name), machine, test (pp512,
tg128…), threads, GPU layers, KV cache and flash attention. For each such group the newest result
of the two most recent builds is compared. A change is flagged when both results come from at
least 3 repetitions and the speeds differ by more than 5 % and more than twice their combined
spread (a 2-core machine drifts: a 5 % rule alone would cry wolf).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from localopen.core.records import BenchResult

MIN_CHANGE = 0.05
MIN_REPS = 3
NOISE_SIGMAS = 2.0


@dataclass(frozen=True)
class BuildChange:
    model: str
    test: str
    machine: str
    old_build: str
    new_build: str
    old_ts: float
    old_sd: float
    new_ts: float
    new_sd: float
    flagged: bool  # beyond the noise (and enough repetitions to say so)

    @property
    def change(self) -> float:
        return self.new_ts / self.old_ts - 1 if self.old_ts else 0.0

    @property
    def slower(self) -> bool:
        return self.flagged and self.change < 0

    @property
    def pin_command(self) -> str:
        """How to go back to the build that was faster (llama-cpp-python's version)."""
        return f'pip install "llama-cpp-python=={self.old_build}"'

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "test": self.test,
            "machine": self.machine,
            "old_build": self.old_build,
            "new_build": self.new_build,
            "old_ts": round(self.old_ts, 2),
            "new_ts": round(self.new_ts, 2),
            "change": round(self.change, 4),
            "flagged": self.flagged,
            "pin": self.pin_command if self.slower else None,
        }


def _key(r: BenchResult) -> tuple[Any, ...]:
    return (
        r.sha256 or r.model_filename,
        r.machine,
        r.test,
        r.draft,
        r.n_threads,
        r.n_gpu_layers,
        r.type_k,
        r.flash_attn,
    )


def _version_key(version: str) -> tuple[Any, ...]:
    parts = []
    for piece in version.replace("-", ".").split("."):
        parts.append((0, int(piece)) if piece.isdigit() else (1, piece))
    return tuple(parts)


def compare_builds(results: list[BenchResult]) -> list[BuildChange]:
    """Every like-for-like pair of the two most recent builds' newest results, oldest model first."""
    groups: dict[tuple[Any, ...], dict[str, BenchResult]] = {}
    for r in results:
        if not r.llama_cpp_version or r.basis != "measured":
            continue
        newest = groups.setdefault(_key(r), {})
        if r.llama_cpp_version not in newest or (r.id or 0) >= (newest[r.llama_cpp_version].id or 0):
            newest[r.llama_cpp_version] = r
    out = []
    for by_build in groups.values():
        if len(by_build) < 2:
            continue
        old_build, new_build = sorted(by_build, key=_version_key)[-2:]
        old, new = by_build[old_build], by_build[new_build]
        spread = math.hypot(old.stddev_ts, new.stddev_ts)
        differs = abs(new.avg_ts - old.avg_ts) > max(MIN_CHANGE * old.avg_ts, NOISE_SIGMAS * spread)
        enough = min(len(old.samples_ts), len(new.samples_ts)) >= MIN_REPS
        out.append(
            BuildChange(
                new.model_name or new.model_filename,
                new.test,
                new.machine,
                old_build,
                new_build,
                old.avg_ts,
                old.stddev_ts,
                new.avg_ts,
                new.stddev_ts,
                differs and enough,
            )
        )
    return out
