"""Running the installed `localopen` command the way a user does."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def exe() -> list[str]:
    """The console script pip installed for this interpreter (or on PATH), else `python -m localopen`."""
    beside = Path(sys.executable).parent / ("localopen.exe" if sys.platform == "win32" else "localopen")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("localopen")
    return [found] if found else [sys.executable, "-m", "localopen"]


def run(*args: str, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*exe(), *args], capture_output=True, text=True, timeout=timeout, env=env)
