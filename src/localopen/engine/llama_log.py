"""llama.cpp's log, routed to Python logging, and the memory report read from it.

The callback bundled with llama-cpp-python maps ggml levels wrongly (warnings leak to stderr
even with verbose=False); this one maps them properly and keeps the lines a load reports.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import re
from collections.abc import Callable

from localopen.core.records import MemoryFigures

log = logging.getLogger("localopen.llama")

# ggml_log_level: NONE=0, DEBUG=1, INFO=2, WARN=3, ERROR=4, CONT=5
_LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
MiB = 2**20


# llama.cpp's and ggml's words for an allocation that failed (the process may abort right after).
MEMORY_FAILURES = (
    "failed to allocate",
    "unable to allocate",
    "out of memory",
    "cannot allocate memory",
    "insufficient memory",
    "bad_alloc",
)


def is_memory_failure(line: str) -> bool:
    low = line.lower()
    return any(m in low for m in MEMORY_FAILURES)


class LogCapture:
    """Collects llama.cpp log lines (for the memory report) and forwards them to logging."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._partial = ""
        self._last_level = logging.INFO
        self.on_memory_failure: Callable[[str], None] | None = None  # told at once (an abort may follow)

    def handle(self, level: int, text: str) -> None:
        py_level = self._last_level if level == 5 else _LEVELS.get(level, logging.DEBUG)
        self._last_level = py_level
        self._partial += text
        while "\n" in self._partial:
            line, self._partial = self._partial.split("\n", 1)
            self.lines.append(line)
            log.log(py_level, "%s", line)
            if self.on_memory_failure is not None and is_memory_failure(line):
                self.on_memory_failure(line.strip())

    def clear(self) -> None:
        self.lines.clear()


_capture = LogCapture()
_callback_ref = None  # keep the ctypes callback alive for the life of the process


def install() -> LogCapture:
    """Install the callback once per process; returns the shared capture."""
    global _callback_ref
    if _callback_ref is None:
        import llama_cpp

        @llama_cpp.llama_log_callback
        def _cb(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
            with contextlib.suppress(Exception):  # never raise into C
                _capture.handle(int(level), text.decode("utf-8", errors="replace"))

        llama_cpp.llama_log_set(_cb, ctypes.c_void_p(0))
        _callback_ref = _cb
    return _capture


_vision_installed = False


def install_vision() -> None:
    """Route libmtmd's log (the projector's loader and encoder) to the same capture, once: it
    prints to the terminal otherwise."""
    global _vision_installed
    if _vision_installed or _callback_ref is None:
        return
    import llama_cpp.mtmd_cpp as mtmd

    mtmd.mtmd_log_set(_callback_ref, ctypes.c_void_p(0))
    mtmd.mtmd_helper_log_set(_callback_ref, ctypes.c_void_p(0))
    _vision_installed = True


_BUFFER = re.compile(r"^\s*(?:\S+:\s+)?(\S+)\s+(model|KV|compute|output) buffer size\s*=\s*([\d.]+) MiB")
# The CPU backend's extra buffer types (engine/cpu_kernels.py): memory of the CPU device.
EXTRA_BUFFERS = ("AMX", "CPU_REPACK", "CPU_KLEIDIAI")


def parse_memory(lines: list[str]) -> MemoryFigures:
    """Read 'load_tensors: CUDA0 model buffer size = 235.16 MiB' style lines."""
    report = MemoryFigures()
    for line in lines:
        m = _BUFFER.match(line)
        if not m:
            continue
        buffer, kind, mib = m.group(1), m.group(2), float(m.group(3))
        size = int(mib * MiB)
        device = "CPU" if buffer in EXTRA_BUFFERS else buffer.removesuffix("_Mapped")
        report.by_device[device] = report.by_device.get(device, 0) + size
        if kind == "model":
            report.weights += size
            if buffer in EXTRA_BUFFERS:
                report.extra_buffers[buffer] = report.extra_buffers.get(buffer, 0) + size
            report.mapped = report.mapped or buffer.endswith("_Mapped")
        elif kind == "KV":
            report.kv_cache += size
        elif kind == "compute":
            report.compute += size
        else:
            report.output += size
    return report
