"""Which of llama.cpp's CPU "extra buffer types" a load may use, chosen per load (engine process).

llama.cpp lays weights out for faster kernels in the CPU backend's extra buffer types (AMX,
CPU_REPACK, KleidiAI), taken from the list `ggml_backend_dev_get_extra_bufts` returns, in that
order, at every model load (llama-model.cpp's make_cpu_buft_list). `use_extra_bufts = False` drops
all of them, which also drops CPU_REPACK, the kernels that make prompts fast on every AVX2 CPU;
`tensor_buft_overrides` cannot say "anything but AMX" (an override to the CPU type falls back
through the same list). The list is a static, null-terminated array the CPU backend owns for the
life of the process: writing the allowed entries back into it, in order, before each load is
exactly "load with only these". The original entries are read once and kept.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Sequence

from localopen.engine import cpu_backend

log = logging.getLogger("localopen.engine")

_array: ctypes.Array[ctypes.c_void_p] | None = None  # the CPU backend's own list
_original: list[tuple[str, int]] | None = None  # (name, buffer type) as llama.cpp offered them


def _read() -> None:
    global _array, _original
    if _original is not None:
        return
    _original = []
    address = cpu_backend.proc("ggml_backend_dev_get_extra_bufts")
    if address is None:
        log.info("This llama.cpp's CPU backend offers no extra buffer types")
        return
    get = ctypes.CFUNCTYPE(ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p)(address)
    entries = get(cpu_backend.device())
    if not entries:
        return
    n = 0
    while entries[n]:
        n += 1
    _array = ctypes.cast(entries, ctypes.POINTER(ctypes.c_void_p * (n + 1))).contents
    _original = [(cpu_backend.buffer_type_name(entries[i]), int(entries[i])) for i in range(n)]


def offered() -> list[str]:
    """The extra buffer types llama.cpp offers on this CPU, in its order of preference."""
    _read()
    assert _original is not None
    return [name for name, _ in _original]


def restrict(allowed: Sequence[str] | None) -> list[str]:
    """From now on, loads use only these extra buffer types (None: all llama.cpp offers); returns
    those in effect."""
    _read()
    assert _original is not None
    if _array is None:
        return []
    keep = [(name, ptr) for name, ptr in _original if allowed is None or name in allowed]
    for i, (_, ptr) in enumerate(keep):
        _array[i] = ptr
    for i in range(len(keep), len(_original) + 1):
        _array[i] = None
    return [name for name, _ in keep]
