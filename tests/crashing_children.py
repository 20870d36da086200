"""Engine and canary processes that crash on cue, as llama.cpp's AMX kernels do on many
virtualised Xeons: the real process, killed by SIGSEGV on its first decode with a buffer type.

Module-level functions, so a spawned process can import them by name.
"""

from __future__ import annotations

import os
import signal
from typing import Any

CRASHING = "CPU_REPACK"  # the buffer type these children die with (offered on every AVX2 CPU)


def _segfault() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def canary_crashing_with_repack(
    conn: Any, model: str, variant: str | None, buffer_type: str | None, n_threads: int
) -> None:
    """The real canary, except that its decode with CPU_REPACK dies by SIGSEGV."""
    from localopen.engine import canary

    def decode(llm: Any) -> None:
        if buffer_type == CRASHING:
            _segfault()
        canary.decode_few(llm)

    canary.canary_child(conn, model, variant, buffer_type, n_threads, decode=decode)


# A build with its CPU backend in one library per CPU generation, best first as ggml scores them
# here; the best one dies on its first decode (as a variant built for instructions a virtual
# machine announces but does not run would).
VARIANTS = ["sapphirerapids", "icelake", "haswell"]


def canary_with_variants_best_crashing(
    conn: Any, model: str, variant: str | None, buffer_type: str | None, n_threads: int
) -> None:
    """The real canary in a build that names VARIANTS (decoding with the CPU backend this llama.cpp
    links in), except that the best variant dies by SIGSEGV on its first decode."""
    from localopen.engine import canary

    def decode(llm: Any) -> None:
        if variant == VARIANTS[0]:
            _segfault()
        canary.decode_few(llm)

    canary.canary_child(conn, model, variant, buffer_type, n_threads, decode=decode, variants=lambda: VARIANTS)


def engine_crashing_with_repack(conn: Any, stop_event: Any, pulse: Any = None) -> None:
    """The real engine, except that its first answer or benchmark with CPU_REPACK weights dies by SIGSEGV."""
    import llama_cpp  # noqa: F401 - the engine's import order (engine/child.py)

    from localopen.engine import worker

    def crash_first(original: Any) -> Any:
        def run(self: Any, request: Any) -> Any:
            if self.load_info is not None and CRASHING in self.load_info.kernels:
                _segfault()
            return original(self, request)

        return run

    worker.Worker._chat = crash_first(worker.Worker._chat)  # type: ignore[method-assign]
    worker.worker_main(conn, stop_event, pulse)


def engine_crashing_on_quantized(conn: Any, stop_event: Any, pulse: Any = None) -> None:
    """The real engine, except that any answer of a model with quantized weights dies by SIGSEGV,
    whatever kernels it uses (a fault the restart without extra kernels cannot mend)."""
    import llama_cpp  # noqa: F401 - the engine's import order (engine/child.py)

    from localopen.engine import worker

    original = worker.Worker._chat

    def run(self: Any, request: Any) -> Any:
        if self.load_info is not None and self.load_info.quantization.startswith("Q"):
            _segfault()
        return original(self, request)

    worker.Worker._chat = run  # type: ignore[method-assign]
    worker.worker_main(conn, stop_event, pulse)
