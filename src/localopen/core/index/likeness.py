"""Machines like this one, and what their records say of a file here.

A record counts for this machine when it ran where this machine would run the file: on a GPU,
the same GPU model; on the CPU, the same architecture and widest vector instructions, with a
memory bandwidth within a factor of two of this one's. Generation on a CPU is bound by memory
bandwidth, so each such record's generation speed is scaled by the ratio of the bandwidths
(this machine's over the record's); prompt processing, bound by compute, is not. The answer is
the median over independent submissions, with the spread and whether they agree.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from localopen.core.index.trust import Checked, Submitted
from localopen.core.report.result_record import MachineClass

BANDWIDTH_BAND = 2.0  # a machine whose bandwidth is within this factor of this one's is "like it"
AGREEMENT = 0.25  # submissions agree when their scaled speeds are within this share of the median


@dataclass(frozen=True)
class SharedSpeed:
    """What the open index says of one file on machines like this one."""

    machines: int  # independent submissions counted
    tg_tps: float  # the median, scaled to this machine's bandwidth where the bound is known
    tg_low: float
    tg_high: float
    pp_tps: float
    scaled: bool  # generation speeds were scaled by the bandwidth ratio
    ignored: str = ""  # "2 records ignored: implausible" ('' when none was)

    @property
    def agree(self) -> bool:
        return self.machines >= 2 and self.tg_high - self.tg_low <= AGREEMENT * self.tg_tps

    def describe(self) -> str:
        """'measured on 3 machines like this one: 21.4 tokens/s (19.8–23.0, they agree)'."""
        what = f"measured on {self.machines} machine{'s' if self.machines != 1 else ''} like this one"
        if self.machines == 1:
            detail = "one submission: one person's word"
        else:
            detail = f"{self.tg_low:.1f}–{self.tg_high:.1f}, they {'agree' if self.agree else 'disagree'}"
        scaled = ", scaled to this machine's memory bandwidth" if self.scaled else ""
        tail = f"; {self.ignored}" if self.ignored else ""
        return f"{what}: {self.tg_tps:.1f} tokens/s ({detail}{scaled}){tail}"


def like_this(submitted: Submitted, here: MachineClass, gpu: str | None) -> bool:
    """Whether a record ran where this machine would run the file (`gpu`: the GPU model it would
    run on, None: its CPU)."""
    record, them = submitted.record, submitted.record.machine
    if gpu is not None:
        return record.n_gpu_layers > 0 and gpu in them.gpus
    if record.n_gpu_layers > 0 or them.arch != here.arch or them.simd != here.simd:
        return False
    if them.bandwidth_gbs and here.bandwidth_gbs:
        ratio = here.bandwidth_gbs / them.bandwidth_gbs
        return 1 / BANDWIDTH_BAND <= ratio <= BANDWIDTH_BAND
    return them.cpu_model == here.cpu_model  # without bandwidths, only the same CPU is "like"


def shared_speed(checked: Checked, here: MachineClass, gpu: str | None = None) -> SharedSpeed | None:
    """The median over independent submissions from machines like this one (None: none)."""
    by_source: dict[str, list[tuple[float, float, bool]]] = {}
    for s in checked.kept:
        if not like_this(s, here, gpu):
            continue
        them = s.record.machine.bandwidth_gbs
        ratio = here.bandwidth_gbs / them if gpu is None and them and here.bandwidth_gbs else None
        tg = s.record.tg_ts * ratio if ratio else s.record.tg_ts
        by_source.setdefault(s.source, []).append((tg, s.record.pp_ts, ratio is not None))
    if not by_source:
        return None
    # One submission is one voice, however many records it holds: its own median.
    voices = [
        (statistics.median(t for t, _, _ in rs), statistics.median(p for _, p, _ in rs), all(s for _, _, s in rs))
        for rs in by_source.values()
    ]
    tgs = [v[0] for v in voices]
    return SharedSpeed(
        machines=len(voices),
        tg_tps=round(statistics.median(tgs), 2),
        tg_low=round(min(tgs), 2),
        tg_high=round(max(tgs), 2),
        pp_tps=round(statistics.median(v[1] for v in voices), 2),
        scaled=all(v[2] for v in voices),
        ignored=checked.ignored_words(),
    )
