"""Where a model's memory can live: this machine's RAM and each GPU llama.cpp can offload to
(RPC servers' memory, as ggml reports it, joins this list). core/estimate/budget.py says how much
of each models may take."""

from __future__ import annotations

from dataclasses import dataclass

import psutil

from localopen.core.machine.hardware import HardwareProfile


@dataclass(frozen=True)
class Device:
    kind: str  # "RAM" or "GPU"
    name: str
    total: int  # bytes
    free: int  # bytes a new model could take now (RAM: the OS's available memory)


def devices(hw: HardwareProfile) -> list[Device]:
    """RAM first, then each GPU the installed llama.cpp can offload to."""
    found = [Device("RAM", "RAM", hw.ram_total, hw.ram_available)]
    if hw.gpu_offload_possible:
        for gpu in hw.gpus:
            free = gpu.memory_free if gpu.memory_free is not None else gpu.memory_total
            found.append(Device("GPU", gpu.name, gpu.memory_total, free))
    return found


def ram_now() -> Device:
    """This machine's RAM as it is this moment (the engine's check before a load)."""
    memory = psutil.virtual_memory()
    return Device("RAM", "RAM", memory.total, memory.available)
