"""A persistent ggml threadpool for a llama context, as llama-bench and llama-server attach one
(llama-cpp-python leaves `llama_attach_threadpool` unbound: bound here through ctypes).

Without one, ggml makes a throwaway threadpool for every graph it computes, that is for every
generated token: in an OpenMP build that is two allocations, in a pthreads build (macOS, some
Windows and ARM builds) it starts and joins the worker threads each time. The pool is made with
llama-bench's defaults (normal priority, no CPU mask, poll 50) and must outlive the contexts
attached to it: `detach` before `free`.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

from localopen.engine import cpu_backend

log = logging.getLogger("localopen.engine")

GGML_MAX_N_THREADS = 512  # ggml.h
POLL = 50  # llama-bench's and llama-server's default polling level (0-100)


class ThreadpoolParams(ctypes.Structure):
    """struct ggml_threadpool_params (ggml.h)."""

    _fields_ = [
        ("cpumask", ctypes.c_bool * GGML_MAX_N_THREADS),
        ("n_threads", ctypes.c_int),
        ("prio", ctypes.c_int),
        ("poll", ctypes.c_uint32),
        ("strict_cpu", ctypes.c_bool),
        ("paused", ctypes.c_bool),
    ]


class _Api:
    """The C functions, found as llama-bench finds them: the pool's constructor through the CPU
    backend's registry (the CPU backend may be a library loaded at run time)."""

    def __init__(self) -> None:
        import llama_cpp

        ggml = cpu_backend.libggml()
        ggml.ggml_threadpool_params_init.argtypes = [ctypes.POINTER(ThreadpoolParams), ctypes.c_int]
        ggml.ggml_threadpool_params_init.restype = None
        self.params_init = ggml.ggml_threadpool_params_init
        if cpu_backend.device() is None:
            raise OSError("llama.cpp has no CPU backend")

        def proc(name: str) -> int:
            address = cpu_backend.proc(name)
            if not address:
                raise OSError(f"the CPU backend does not export {name}")
            return int(address)

        self.new = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.POINTER(ThreadpoolParams))(proc("ggml_threadpool_new"))
        self.free = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(proc("ggml_threadpool_free"))
        lib = llama_cpp.llama_cpp._lib  # noqa: SLF001 - the functions llama-cpp-python does not bind
        self.attach = lib.llama_attach_threadpool
        self.attach.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        self.attach.restype = None
        self.detach = lib.llama_detach_threadpool
        self.detach.argtypes = [ctypes.c_void_p]
        self.detach.restype = None


_api: _Api | None = None


def _get_api() -> _Api:
    global _api
    if _api is None:
        _api = _Api()
    return _api


class Threadpool:
    """One ggml threadpool of n_threads workers, attached to one llama context at a time."""

    def __init__(self, n_threads: int, poll: int = POLL) -> None:
        api = _get_api()
        params = ThreadpoolParams()
        api.params_init(ctypes.byref(params), max(1, min(n_threads, GGML_MAX_N_THREADS)))
        params.poll = poll
        self.n_threads, self.poll = params.n_threads, poll
        self._pool = api.new(ctypes.byref(params))
        if not self._pool:
            raise OSError(f"llama.cpp could not create a threadpool of {n_threads} threads")
        self._ctx: Any = None

    def attach(self, ctx: Any) -> None:
        """Compute this context's graphs (one token and prompt batches alike) on this pool."""
        self.detach()
        _get_api().attach(ctx, self._pool, None)
        self._ctx = ctx

    def detach(self) -> None:
        if self._ctx is not None:
            _get_api().detach(self._ctx)
            self._ctx = None

    def free(self) -> None:
        """Detach, then end the pool's threads; the pool cannot be used after this."""
        self.detach()
        if self._pool:
            _get_api().free(self._pool)
            self._pool = None


def threadpool_for(ctx: Any, n_threads: int) -> Threadpool | None:
    """A pool attached to ctx; None (ggml's own per-graph pools are used) when this llama.cpp
    cannot make one, which is logged: it costs speed, never correctness."""
    try:
        pool = Threadpool(n_threads)
    except (OSError, AttributeError):
        log.warning("No persistent threadpool: llama.cpp's per-graph threadpools are used", exc_info=True)
        return None
    pool.attach(ctx)
    return pool
