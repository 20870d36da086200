"""core/ must import without Qt and without llama_cpp (so it stays fast and headless)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import localopen.core


def test_core_imports_without_qt_or_llama_cpp() -> None:
    modules = [f"localopen.core.{m.name}" for m in pkgutil.iter_modules(localopen.core.__path__)]
    assert len(modules) >= 8
    code = (
        "import sys\n"
        "for banned in ('PySide6', 'llama_cpp', 'huggingface_hub'):\n"
        "    sys.modules[banned] = None  # any import of these now fails\n"
        f"for name in {modules!r}:\n"
        "    __import__(name)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
