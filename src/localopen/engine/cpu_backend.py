"""llama.cpp's CPU backend as ggml's registry gives it (engine process): its device, and the
functions it exports by name, which llama-cpp-python leaves unbound. Found as llama-bench and
llama-model.cpp find them, so a CPU backend loaded at run time (a dynamic backend) is found too."""

from __future__ import annotations

import ctypes
from functools import cache
from pathlib import Path

GGML_BACKEND_DEVICE_TYPE_CPU = 0


# The names libllama links ggml by. A wheel holds no symbolic links: libggml.so (which
# llama_cpp._ggml opens) and libggml.so.0 (which libllama needs) are two copies of one library,
# each with its own backend registry; the one libllama uses is the one that counts.
_LINKED_NAMES = ("libggml.so.0", "libggml.0.dylib", "ggml.dll")


@cache
def libggml() -> ctypes.CDLL:
    """The ggml library libllama uses (engine process, after `import llama_cpp`)."""
    from llama_cpp import _ggml as bound

    folder = Path(bound.__file__).parent / "lib"
    for name in _LINKED_NAMES:
        if (folder / name).is_file():
            return ctypes.CDLL(str(folder / name))
    return bound.libggml


@cache
def _ggml() -> ctypes.CDLL:
    ggml = libggml()
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
