"""llama.cpp's log, routed to Python logging, and the memory report read from it.

The callback bundled with llama-cpp-python maps ggml levels wrongly (warnings leak to stderr
even with verbose=False); this one maps them properly and keeps the lines a load reports.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import re
from dataclasses import dataclass, field

log = logging.getLogger("localopen.llama")

# ggml_log_level: NONE=0, DEBUG=1, INFO=2, WARN=3, ERROR=4, CONT=5
_LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
MiB = 2**20


class LogCapture:
    """Collects llama.cpp log lines (for the memory report) and forwards them to logging."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._partial = ""
        self._last_level = logging.INFO

    def handle(self, level: int, text: str) -> None:
        py_level = self._last_level if level == 5 else _LEVELS.get(level, logging.DEBUG)
        self._last_level = py_level
        self._partial += text
        while "\n" in self._partial:
            line, self._partial = self._partial.split("\n", 1)
            self.lines.append(line)
            log.log(py_level, "%s", line)

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


@dataclass
class MemoryReport:
    """What llama.cpp says it allocated, in bytes, by kind and by device."""

    weights: int = 0
    kv_cache: int = 0
    compute: int = 0
    output: int = 0
    by_device: dict[str, int] = field(default_factory=dict)
    flash_attn: bool | None = None

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute + self.output

    def to_dict(self) -> dict:
        return {
            "weights": self.weights,
            "kv_cache": self.kv_cache,
            "compute": self.compute,
            "output": self.output,
            "total": self.total,
            "by_device": self.by_device,
            "flash_attn": self.flash_attn,
        }


_BUFFER = re.compile(r"^\s*(?:\S+:\s+)?(\S+)\s+(model|KV|compute|output) buffer size\s*=\s*([\d.]+) MiB")


def parse_memory(lines: list[str]) -> MemoryReport:
    """Read 'load_tensors: CUDA0 model buffer size = 235.16 MiB' style lines."""
    report = MemoryReport()
    for line in lines:
        if "flash_attn" in line and "=" in line and "llama_context" in line:
            value = line.split("=", 1)[1].strip().lower()
            report.flash_attn = value in ("enabled", "1", "true", "on")
        m = _BUFFER.match(line)
        if not m:
            continue
        device, kind, mib = m.group(1), m.group(2), float(m.group(3))
        size = int(mib * MiB)
        device = device.removesuffix("_Mapped").removesuffix("_REPACK")
        report.by_device[device] = report.by_device.get(device, 0) + size
        if kind == "model":
            report.weights += size
        elif kind == "KV":
            report.kv_cache += size
        elif kind == "compute":
            report.compute += size
        else:
            report.output += size
    return report
