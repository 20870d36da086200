"""The layers: core/ and app/ import neither Qt nor llama_cpp, and nothing below ui/ imports it."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import localopen
import localopen.app
import localopen.core

SRC = Path(localopen.__file__).parent


def _modules(package) -> list[str]:
    return [f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__)]


def test_core_and_app_import_without_qt_or_llama_cpp() -> None:
    modules = _modules(localopen.core) + _modules(localopen.app)
    assert len(modules) >= 20
    code = (
        "import sys\n"
        "for banned in ('PySide6', 'llama_cpp', 'huggingface_hub', 'numpy'):\n"
        "    sys.modules[banned] = None  # any import of these now fails\n"
        f"for name in {modules!r}:\n"
        "    __import__(name)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


ENTRY_POINTS = {"__main__.py", "selftest.py"}  # above every layer: they start the app or check an install


def test_nothing_below_the_ui_imports_it_and_only_the_engine_imports_llama_cpp() -> None:
    below_ui = [p for p in SRC.rglob("*.py") if "ui" not in p.relative_to(SRC).parts and p.name not in ENTRY_POINTS]
    assert any(p.name == "cli.py" for p in below_ui) and any(p.parent.name == "engine" for p in below_ui)
    offenders = []
    for path in below_ui:
        rel = path.relative_to(SRC)
        for name in _imports(path):
            if name.startswith(("localopen.ui", "PySide6")):
                offenders.append(f"{rel} imports {name}")
            if name.startswith("llama_cpp") and rel.parts[0] != "engine":
                offenders.append(f"{rel} imports {name}")
            if name.startswith(("starlette", "uvicorn")) and rel.parts[0] != "api":
                offenders.append(f"{rel} imports {name} (the HTTP stack belongs to api/)")
    assert offenders == []


# What computes a product fact (fit, grade, verdict): the application layer calls these, faces never do.
FACT_FUNCTIONS = {
    "catalog_fit",
    "file_fit",
    "fit_verdict",
    "estimate_memory",
    "decode_bound",
    "band_for",
    "predicted",
    "measured",
    "verdict_here",
    "grade",
    "evidence_from_card",
    "evidence_from_header",
}
FACT_MODULES = {"localopen.core.model_fit", "localopen.core.usability"}


def _fact_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("localopen.core"):
            found += [
                f"{node.module}.{a.name}"
                for a in node.names
                if a.name in FACT_FUNCTIONS
                or node.module in FACT_MODULES
                or f"{node.module}.{a.name}" in FACT_MODULES
                or a.name in ("verdict", "usability", "model_fit")
            ]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name in FACT_MODULES]
    return found


def test_faces_do_not_compute_product_facts() -> None:
    """Fit, grade and verdict come from the application layer; views and the CLI only show them."""
    faces = [*(SRC / "ui").glob("*.py"), SRC / "cli.py", SRC / "engine_cli.py", SRC / "library_cli.py"]
    offenders = [f"{p.name} imports {name}" for p in faces for name in _fact_imports(p)]
    assert offenders == []
