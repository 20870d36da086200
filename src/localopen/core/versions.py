"""Installed packages' versions, also where their metadata is absent (a frozen bundle ships the
modules without their dist-info): the package's metadata, else the version its own module states."""

from __future__ import annotations

import importlib
import importlib.util
import re
from importlib import metadata
from pathlib import Path

_STATED = re.compile(r"""^__version__\s*(?::\s*str\s*)?=\s*["']([^"']+)["']""", re.MULTILINE)


def package_version(distribution: str, module: str, may_import: bool = False) -> str | None:
    """The version of a distribution (e.g. llama-cpp-python) providing `module` (llama_cpp); None
    when it is not installed. Without metadata, the module's `__version__` is read from its source,
    or (may_import) from the imported module."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        pass
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return None
    if spec.origin and Path(spec.origin).is_file() and spec.origin.endswith(".py"):
        found = _STATED.search(Path(spec.origin).read_text(encoding="utf-8", errors="replace"))
        if found:
            return found.group(1)
    if may_import:
        try:
            stated = getattr(importlib.import_module(module), "__version__", None)
        except (ImportError, OSError, RuntimeError):
            return None
        return str(stated) if stated else None
    return None
