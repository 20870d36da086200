"""llama.cpp's CPU backend as ggml's registry gives it (engine process): its device, and the
functions it exports by name, which llama-cpp-python leaves unbound. Found as llama-bench and
llama-model.cpp find them, so a CPU backend loaded at run time (a dynamic backend) is found too."""

from __future__ import annotations

import ctypes
from functools import cache

GGML_BACKEND_DEVICE_TYPE_CPU = 0


@cache
def _ggml() -> ctypes.CDLL:
    from llama_cpp import _ggml as bound

    ggml = bound.libggml
    ggml.ggml_backend_dev_by_type.argtypes = [ctypes.c_int]
    ggml.ggml_backend_dev_by_type.restype = ctypes.c_void_p
    ggml.ggml_backend_dev_backend_reg.argtypes = [ctypes.c_void_p]
    ggml.ggml_backend_dev_backend_reg.restype = ctypes.c_void_p
    ggml.ggml_backend_reg_get_proc_address.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    ggml.ggml_backend_reg_get_proc_address.restype = ctypes.c_void_p
    ggml.ggml_backend_buft_name.argtypes = [ctypes.c_void_p]
    ggml.ggml_backend_buft_name.restype = ctypes.c_char_p
    return ggml


def device() -> int | None:
    """The CPU device (ggml_backend_dev_t), or None when llama.cpp has no CPU backend."""
    return _ggml().ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU) or None


def proc(name: str) -> int | None:
    """The address of a function the CPU backend exports, or None."""
    dev = device()
    registry = _ggml().ggml_backend_dev_backend_reg(dev) if dev else None
    return _ggml().ggml_backend_reg_get_proc_address(registry, name.encode()) or None if registry else None


def buffer_type_name(buft: int) -> str:
    return str(_ggml().ggml_backend_buft_name(buft).decode())
