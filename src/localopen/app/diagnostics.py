"""What a bug report needs, in one block of text: versions, this machine, llama.cpp's backends, where
the log is and its last lines. The Hub token never appears in it, even if a log line held one."""

from __future__ import annotations

import os
import platform
import re
import sys
from collections import deque

from localopen import __version__
from localopen.app import cpu_kernels
from localopen.app.context import AppContext
from localopen.core.estimate.memory import human_bytes
from localopen.core.logs import log_path
from localopen.core.versions import package_version

LOG_LINES = 40
_TOKEN = re.compile(r"hf_[A-Za-z0-9]{8,}")


def _version(distribution: str, module: str) -> str:
    return package_version(distribution, module, may_import=True) or "not installed"


def redact(text: str) -> str:
    """Hide Hub tokens: the current one (HF_TOKEN) and anything shaped like one."""
    secret = os.environ.get("HF_TOKEN")
    if secret:
        text = text.replace(secret, "[token hidden]")
    return _TOKEN.sub("[token hidden]", text)


def diagnostics(ctx: AppContext, extra: list[str] | None = None) -> str:
    """extra: lines only a face knows (the GUI adds Qt's version and platform)."""
    hw = ctx.profile or ctx.read_profile(measure=False)
    gpus = ", ".join(f"{g.name} ({human_bytes(g.memory_total)})" for g in hw.gpus) or "none detected"
    lines = [
        f"localopen {__version__}",
        f"Python {sys.version.split()[0]} on {platform.platform()} ({hw.arch})",
        f"llama-cpp-python {_version('llama-cpp-python', 'llama_cpp')}; "
        f"backends: {', '.join(hw.llama_backends) or 'none'}",
        f"huggingface_hub {_version('huggingface_hub', 'huggingface_hub')}; PySide6 {_version('PySide6', 'PySide6')}",
        f"CPU: {hw.cpu_model}, {hw.cores_physical} cores; RAM {human_bytes(hw.ram_total)}; GPU: {gpus}",
        f"llama.cpp CPU kernels: {hw.cpu_kernels or cpu_kernels.in_words()}",
        f"Offline: {'yes' if ctx.settings.offline else 'no'}; models folder: {ctx.models_dir}",
        *(extra or []),
        f"Log: {log_path(ctx.paths)}",
    ]
    try:
        with log_path(ctx.paths).open(encoding="utf-8", errors="replace") as f:
            tail = list(deque(f, maxlen=LOG_LINES))
    except OSError:
        tail = ["(no log yet)\n"]
    return redact("\n".join(lines) + f"\n\nLast {LOG_LINES} lines of the log:\n" + "".join(tail))
