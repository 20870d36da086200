"""How busy other programs keep this machine's cores, so a measurement is never taken for calm
when it was not.

A speed or bandwidth measured while something else uses the cores reads low, and the
calibration and the bandwidth probe drive every verdict after them (seen: 9.43 → 1.23 GB/s on
one machine within minutes under load). The whole machine's busy CPU time, less this process's
and its children's (the engine processes that do the measuring), over the wall time, is the
cores' worth of work other programs did meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

log = logging.getLogger("localopen.load")

# Busy: other programs used at least half a core, or a quarter of the cores on a larger machine.
BUSY_SHARE = 0.25
BUSY_MIN_CORES = 0.5


@dataclass(frozen=True)
class LoadReading:
    others_cores: float  # cores' worth of CPU time other programs used, on average over the span
    cores: int
    seconds: float

    @property
    def busy(self) -> bool:
        return self.others_cores >= max(BUSY_MIN_CORES, BUSY_SHARE * self.cores)

    def __str__(self) -> str:
        return f"other programs kept {self.others_cores:.1f} of {self.cores} cores busy"


def _own_cpu_s() -> float:
    """CPU seconds of this process, its ended children (joined: counted by the system) and its live ones."""
    me = psutil.Process()
    t = me.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in me.children(recursive=True):
        try:
            c = child.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # ended meanwhile: counted with the ended children once joined
        total += c.user + c.system
    return total


def _machine_busy_s() -> float:
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    return sum(t) - idle


class OtherLoad:
    """Other programs' CPU use from now until `reading()`."""

    def __init__(self) -> None:
        self._start = (time.monotonic(), _machine_busy_s(), _own_cpu_s())

    def reading(self) -> LoadReading:
        wall0, busy0, own0 = self._start
        wall, busy, own = time.monotonic(), _machine_busy_s(), _own_cpu_s()
        seconds = max(wall - wall0, 1e-6)
        others = max(0.0, (busy - busy0) - (own - own0)) / seconds
        return LoadReading(round(others, 2), psutil.cpu_count(logical=True) or 1, round(seconds, 2))


def sample(seconds: float = 0.5) -> LoadReading:
    watch = OtherLoad()
    time.sleep(seconds)
    return watch.reading()


def wait_calm(max_wait_s: float, stopped: Callable[[], bool] = lambda: False) -> LoadReading:
    """Wait (up to max_wait_s) until other programs leave the cores calm; the last reading."""
    deadline = time.monotonic() + max_wait_s
    reading = sample()
    while reading.busy and time.monotonic() < deadline and not stopped():
        log.info("Waiting for a calm machine before measuring: %s", reading)
        reading = sample(1.0)
    return reading
