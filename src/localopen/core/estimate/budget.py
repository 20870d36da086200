"""The one memory rule: how much of each device models may take, where a model fits, and the
largest context that fits. The fit verdicts (Start, Explore, `localopen fit`), the model store
(models loaded together) and the engine's check before a load all ask here, so every face names
the same largest context for the same file.

A share of each device's free memory, 85 % unless the `models_memory_percent` setting says
otherwise: the rest stays with the operating system and the app. Memory that loaded models hold
counts as free for the model store, which unloads them to make room.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from localopen.core.estimate.memory import CTX_PAD, FitVerdict, ModelShape, decode_bound, estimate_memory, human_bytes
from localopen.core.machine.devices import Device, devices
from localopen.core.machine.hardware import HardwareProfile

DEFAULT_PERCENT = 85
TIGHT_SHARE = 0.95  # of all RAM: it would fit once other programs close


@dataclass(frozen=True)
class Placement:
    code: str  # fits_gpu | fits_ram | tight | no_fit
    device: Device  # where it goes (RAM for tight and no_fit)
    room: int  # bytes models may take there


@dataclass(frozen=True)
class Budget:
    percent: int = DEFAULT_PERCENT  # of a device's free memory that models may take

    def __post_init__(self) -> None:
        object.__setattr__(self, "percent", max(10, min(100, int(self.percent))))

    def room(self, device: Device, held: int = 0) -> int:
        """Bytes models may take on this device; `held`: what loaded models hold there now (the
        store can unload them, so it counts as free)."""
        return int((device.free + held) * self.percent / 100)

    def in_words(self, device: Device, held: int = 0) -> str:
        free = device.free + held
        where = "available" if device.kind == "RAM" else f"free on {device.name}"
        return f"{human_bytes(self.room(device, held))} for models ({self.percent}% of {human_bytes(free)} {where})"

    def place(self, need: int, devices: Sequence[Device]) -> Placement:
        """Where a model needing `need` bytes fits: the GPU with the most free memory, else RAM,
        else tight (RAM would hold it with other programs closed), else nowhere."""
        ram = next(d for d in devices if d.kind == "RAM")
        gpus = [d for d in devices if d.kind == "GPU"]
        if gpus:
            gpu = max(gpus, key=lambda d: d.free)
            if need <= self.room(gpu):
                return Placement("fits_gpu", gpu, self.room(gpu))
        if need <= self.room(ram):
            return Placement("fits_ram", ram, self.room(ram))
        return Placement("tight" if need <= ram.total * TIGHT_SHARE else "no_fit", ram, self.room(ram))

    def best_room(self, devices: Sequence[Device]) -> int:
        """The most one model may take on any one device."""
        return max(self.room(d) for d in devices)

    @staticmethod
    def largest_context(shape: ModelShape, room: float, max_ctx: int, **kwargs: Any) -> int | None:
        """The largest context (a multiple of 256, up to max_ctx) whose estimate fits in `room`;
        None when not even 256 tokens do. The only such search: every face names this one."""
        if estimate_memory(shape, CTX_PAD, **kwargs).total > room:
            return None
        lo, hi = 1, max(1, max_ctx // CTX_PAD)
        while lo < hi:  # the estimate grows with the context: bisect on multiples of 256
            mid = (lo + hi + 1) // 2
            if estimate_memory(shape, mid * CTX_PAD, **kwargs).total <= room:
                lo = mid
            else:
                hi = mid - 1
        return lo * CTX_PAD


_LABELS = {"fits_gpu": "fits on GPU", "fits_ram": "fits in RAM", "tight": "tight", "no_fit": "will not fit"}


def fit_verdict(
    shape: ModelShape, hw: HardwareProfile, n_ctx: int, budget: Budget | None = None, **kwargs: Any
) -> FitVerdict:
    """Whether a model at this context fits here, by the one rule; `kwargs`: the estimate's cache
    and buffer options (memory.estimate_memory)."""
    budget = budget or Budget()
    mem = estimate_memory(shape, n_ctx, **kwargs)
    need = mem.total
    place = budget.place(need, devices(hw))
    room = budget.in_words(place.device)
    detail = {
        "fits_gpu": f"needs {human_bytes(need)} of {room}",
        "fits_ram": f"needs {human_bytes(need)} of {room}",
        "tight": f"needs {human_bytes(need)}, more than {room}, of {human_bytes(hw.ram_total)} in all: "
        "close other programs first",
        "no_fit": f"needs {human_bytes(need)}, more than this machine's {human_bytes(hw.ram_total)} of RAM",
    }[place.code]
    return FitVerdict(place.code, _LABELS[place.code], detail, mem, decode_bound(shape, hw.bandwidth_gbs))
