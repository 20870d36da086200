"""llama.cpp's CPU backend built once per CPU generation, loaded at run time (engine process).

A release build (installers/linux/build.sh) compiles ggml with GGML_BACKEND_DL and
GGML_CPU_ALL_VARIANTS: no CPU backend is linked in, and beside libggml sit libggml-cpu-x64.so,
…-haswell.so, …-icelake.so, …-sapphirerapids.so, each with a `ggml_backend_score()` that says how
well it fits this CPU (0: it cannot run here). llama.cpp's own loader takes the highest score;
the kernel canary (engine/canary.py) tries them from the highest down in throwaway processes and
every engine loads the first that decoded. A build without variants (what `pip install` compiles
for this machine) has its CPU backend linked in, and nothing here does anything.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from localopen.engine import cpu_backend

log = logging.getLogger("localopen.engine")

_VARIANT = re.compile(r"^(?:lib)?ggml-cpu-(?P<name>[A-Za-z0-9_.]+)\.(?:so|dll|dylib)$")
_BACKEND = re.compile(r"^(?:lib)?ggml-(?P<name>[a-z0-9]+)\.(?:so|dll|dylib)$")
_NOT_BACKENDS = {"base", "cpu"}  # the library every backend links, and a linked-in CPU backend


@dataclass(frozen=True)
class Variant:
    name: str  # "haswell", "icelake", "sapphirerapids"…
    path: Path
    score: int  # ggml_backend_score(): 0 cannot run on this CPU; higher fits it better


def library_dir() -> Path | None:
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.origin:
        return None
    folder = Path(spec.origin).parent / "lib"
    return folder if folder.is_dir() else None


def variant_files(folder: Path | None = None) -> dict[str, Path]:
    """The CPU variants this build has, by name (none for a build with its CPU backend linked in)."""
    folder = folder or library_dir()
    if folder is None:
        return {}
    found = {}
    for path in sorted(folder.iterdir()):
        match = _VARIANT.match(path.name)
        if match:
            found[match["name"]] = path
    return found


def ranked(folder: Path | None = None) -> list[Variant]:
    """The variants that can run on this CPU, best first, as ggml scores them. Opens each library
    (as ggml's own loader does): call it in a process that imported llama_cpp, where the ggml base
    library they link is loaded."""
    variants = []
    for name, path in variant_files(folder).items():
        try:
            library = ctypes.CDLL(str(path))
            score_fn = library.ggml_backend_score
        except (OSError, AttributeError):
            log.warning("The CPU variant %s cannot be opened: it is skipped", path.name, exc_info=True)
            continue
        score_fn.restype = ctypes.c_int
        score = int(score_fn())
        if score > 0:
            variants.append(Variant(name, path, score))
    return sorted(variants, key=lambda v: -v.score)


@cache
def _ggml() -> ctypes.CDLL:
    ggml = cpu_backend.libggml()  # libllama's own: the registry its model loads read
    ggml.ggml_backend_load.argtypes = [ctypes.c_char_p]
    ggml.ggml_backend_load.restype = ctypes.c_void_p
    ggml.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
    ggml.ggml_backend_load_all_from_path.restype = None
    return ggml


_loaded: str | None = None  # the variant this process loaded ("" llama.cpp's own pick)


def load(variant: str | None) -> str | None:
    """Register the CPU backend `variant` (None: the one ggml scores highest) and the build's other
    dynamic backends, once per process; returns the variant in use, or None where the build has
    its CPU backend linked in. A second call with another variant keeps the first: a process
    cannot swap its CPU backend."""
    global _loaded
    if _loaded is not None:
        if variant is not None and variant != _loaded:
            log.warning("CPU variant %s asked for, but this process already runs %s", variant, _loaded)
        return _loaded or None
    files = variant_files()
    if not files:
        return None
    ggml = _ggml()
    folder = next(iter(files.values())).parent
    if variant is None or variant not in files:
        if variant is not None:
            log.warning("This build has no CPU variant %s: llama.cpp picks one", variant)
        ggml.ggml_backend_load_all_from_path(str(folder).encode())
        _loaded = ""
        return None
    if not ggml.ggml_backend_load(str(files[variant]).encode()):
        raise RuntimeError(f"llama.cpp's CPU backend {files[variant].name} could not be loaded")
    for path in sorted(folder.iterdir()):
        match = _BACKEND.match(path.name)
        if match and match["name"] not in _NOT_BACKENDS and not ggml.ggml_backend_load(str(path).encode()):
            log.info("The backend %s does not load on this machine (its driver or runtime is missing)", path.name)
    _loaded = variant
    log.info("llama.cpp's CPU backend: the %s variant", variant)
    return variant
