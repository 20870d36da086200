"""The layers, walked recursively: imports point down (core < engine < app < api < cli, ui), no
import loop inside a layer, each third-party stack stays in its layer, and no face computes a
product fact."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import localopen
import localopen.app
import localopen.core

SRC = Path(localopen.__file__).parent
ENTRY_POINTS = {"__main__.py", "selftest.py"}  # above every layer: they start the app or check an install

# What each layer may import of localopen (itself included). Faces: api/ (HTTP), cli/ (terminal),
# ui/ (Qt); the terminal and the app may start the HTTP face, nothing imports a terminal command.
ALLOWED = {
    "core": {"core"},
    "engine": {"core", "engine"},
    "app": {"core", "engine", "app"},
    "api": {"core", "engine", "app", "api"},
    "cli": {"core", "engine", "app", "api", "cli"},
    "ui": {"core", "engine", "app", "api", "ui"},
}
# Third-party stacks that belong to one layer.
STACKS = {"PySide6": "ui", "llama_cpp": "engine", "starlette": "api", "uvicorn": "api"}


def _modules(package) -> list[str]:
    """Every module of a package, subpackages included."""
    return [m.name for m in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")]


def _layer(path: Path) -> str:
    return path.relative_to(SRC).parts[0]


def _sources() -> list[Path]:
    return [p for p in SRC.rglob("*.py") if p.name not in ENTRY_POINTS and p.parent != SRC]


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_every_module_belongs_to_a_layer() -> None:
    top = {p.name for p in SRC.glob("*.py")} - {"__init__.py"}
    assert top == ENTRY_POINTS, "a module outside every layer: put it in one"
    assert {_layer(p) for p in _sources()} <= set(ALLOWED) | {"resources"}


def test_core_and_app_import_without_qt_or_llama_cpp() -> None:
    modules = _modules(localopen.core) + _modules(localopen.app)
    assert any(".core.chat." in m for m in modules), "subpackages are walked"
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


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_imports_point_down(layer: str) -> None:
    files = [p for p in _sources() if _layer(p) == layer]
    assert files, layer
    offenders = []
    for path in files:
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "localopen" and len(parts) > 1 and parts[1] in ALLOWED and parts[1] not in ALLOWED[layer]:
                offenders.append(f"{path.relative_to(SRC)} imports {name}")
            owner = STACKS.get(parts[0])
            if owner is not None and owner != layer:
                offenders.append(f"{path.relative_to(SRC)} imports {name} (that belongs to {owner}/)")
    assert offenders == []


def test_the_check_sees_a_wrong_import(tmp_path: Path) -> None:
    """The walk is not vacuous: an upward import in a nested module is found."""
    nested = tmp_path / "bad.py"
    nested.write_text("def f():\n    from localopen.app.context import AppContext\n")
    assert "localopen.app.context" in _imports(nested)


def _module_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the modules of the same layer it imports (lazy and type-only imports included: a
    loop hidden in a function or behind TYPE_CHECKING is still a loop)."""
    names = {}
    for path in root.rglob("*.py"):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        here = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name in names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package up
                    up = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in names else base)
        layer = name.split(".")[:2]
        graph[name] = {t for t in targets if t in names and t != name and t.split(".")[:2] == layer}
    return graph


def _loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import loops (strongly connected groups of two or more modules), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                loops.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return loops


def test_no_import_loop_inside_a_layer() -> None:
    graph = _module_graph(SRC, "localopen")
    assert "localopen.app.conversation.capabilities" in graph["localopen.app.models.library_listing"], "edges are read"
    assert _loops(graph) == []


def test_the_loop_check_sees_a_loop_hidden_in_a_function_and_behind_type_checking(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "library.py").write_text("def entries():\n    from pkg.app import capabilities\n")
    (app / "capabilities.py").write_text("from pkg.app.chat import ChatSession\n")
    (app / "chat.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import library\n")
    (app / "other.py").write_text("from pkg.app import library\n")  # imports into the loop: not part of it
    assert _loops(_module_graph(tmp_path, "pkg")) == [["pkg.app.capabilities", "pkg.app.chat", "pkg.app.library"]]


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
FACT_MODULES = {"localopen.core.estimate.inputs", "localopen.core.store.measurements"}


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
                or a.name in ("verdict", "measurements", "inputs")  # the module itself, to call its functions
            ]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name in FACT_MODULES]
    return found


def test_faces_do_not_compute_product_facts() -> None:
    """Fit, grade and verdict come from the application layer; views, the CLI and the API only show them."""
    faces = [p for p in _sources() if _layer(p) in ("ui", "cli", "api")] + [SRC / "selftest.py"]
    assert any(_layer(p) == "cli" for p in faces) and any(_layer(p) == "api" for p in faces)
    offenders = [f"{p.relative_to(SRC)} imports {name}" for p in faces for name in _fact_imports(p)]
    assert offenders == []


# Where core's operations live (the database's tables, conversations, the Hub): faces reach them
# through app/, which owns what an operation means (core/store/db.py, opening and repairing the
# database before any app context exists, is the one exception).
OPERATION_MODULES = ("localopen.core.store", "localopen.core.chat.conversations", "localopen.core.hub")
OPERATIONS_ALLOWED = ("localopen.core.store.db",)


def _core_operations(path: Path) -> list[str]:
    """What a file imports from core's operation modules that is not a type: functions, modules."""
    import importlib
    import inspect

    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith(OPERATION_MODULES)]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module not in OPERATIONS_ALLOWED:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if (
                    full.startswith(OPERATION_MODULES)
                    and full not in OPERATIONS_ALLOWED
                    and not node.module.startswith(OPERATION_MODULES)
                ):
                    found.append(full)  # the module itself, to call its functions
                elif node.module.startswith(OPERATION_MODULES):
                    obj = getattr(importlib.import_module(node.module), alias.name, None)
                    if not inspect.isclass(obj):
                        found.append(full)
    return found


def test_faces_reach_core_operations_through_app() -> None:
    faces = [p for p in _sources() if _layer(p) in ("ui", "cli", "api")]
    offenders = [f"{p.relative_to(SRC)} imports {name}" for p in faces for name in _core_operations(p)]
    assert offenders == []


def test_the_check_sees_a_face_calling_a_core_operation(tmp_path: Path) -> None:
    face = tmp_path / "view.py"
    face.write_text(
        "from localopen.core.store.library_db import LibraryModel, import_file\n"
        "def f():\n    from localopen.core.chat import conversations\n"
        "    from localopen.core.store.db import connect\n"
    )
    assert sorted(_core_operations(face)) == [
        "localopen.core.chat.conversations",
        "localopen.core.store.library_db.import_file",
    ]
