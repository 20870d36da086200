"""The canary: which of llama.cpp's CPU kernels decode on this machine, tried where a crash hurts nobody.

Once per CPU, OS kernel and llama.cpp build (core/machine/kernels.py keeps the record), a tiny
zero-data model whose weights are of the types the fast kernels take (Q4_0, Q8_0, Q4_K, Q6_K, in
shapes AMX and the repacking kernels accept) is loaded and decoded in throwaway processes: in a
build with CPU variants (engine/cpu_variants.py) with each variant from the best down until one
decodes, then with no extra buffer type (and the list llama.cpp offers), then with each offered
one alone. A process that dies marks its variant or buffer type as crashing; every engine then
loads with the others (engine/cpu_kernels.py). A few seconds, once; the first load waits for it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import logging
import multiprocessing as mp
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from localopen.core.gguf.shapes import DenseShape, metadata, tensors
from localopen.core.gguf.writer import GGML_TYPES, TensorSpec, write_zero_gguf
from localopen.core.machine import cpu_features
from localopen.core.machine.hardware import cpu_model
from localopen.core.machine.kernels import KernelChoice, kernel_key, read_choice, save_choice, simd_level
from localopen.core.paths import app_paths
from localopen.core.versions import package_version
from localopen.engine.errors import describe_exit

log = logging.getLogger("localopen.kernels")

# Rows of 256 (whole K-quant blocks, AMX's alignment), rows counts divisible by 16 (AMX's tiles,
# the repacking kernels' 8): every weight type below reaches every kernel that takes it.
CANARY_SHAPE = DenseShape("localopen-canary", 4, 256, 512, 4, 4, 512, context_length=256)
# Layer i's matrices get this type (Q4_K_M's own mix, Q4_K with Q6_K, for the others).
LAYER_TYPES = {0: "Q4_0", 1: "Q8_0"}
PROMPT_TOKENS = 48  # a prompt batch (matrix-matrix kernels) …
DECODED_TOKENS = 4  # … and single tokens (matrix-vector kernels), where AMX's crash happens
CHILD_TIMEOUT_S = 120.0


def write_canary_model(path: Path) -> Path:
    specs = []
    for spec in tensors(CANARY_SHAPE, "Q4_K_M"):
        layer = spec.name.split(".")[1] if spec.name.startswith("blk.") else None
        kind = LAYER_TYPES.get(int(layer)) if layer is not None else None
        if kind is not None and len(spec.shape) == 2:
            spec = TensorSpec(spec.name, spec.shape, GGML_TYPES[kind])
        specs.append(spec)
    write_zero_gguf(path, metadata(CANARY_SHAPE, "Q4_K_M"), specs)
    return path


def build_id() -> str:
    """The installed llama.cpp build: the package's version and its libraries' sizes and times (a
    rebuild with other options is another build)."""
    version = package_version("llama_cpp_python", "llama_cpp") or "unknown"
    spec = importlib.util.find_spec("llama_cpp")
    libs = Path(spec.origin).parent / "lib" if spec is not None and spec.origin else None
    digest = hashlib.sha256()
    if libs is not None and libs.is_dir():
        for lib in sorted(libs.iterdir()):
            stat = lib.stat()
            digest.update(f"{lib.name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return f"{version}+{digest.hexdigest()[:8]}"


def decode_few(llm: Any) -> None:
    """A prompt batch, then a few tokens one at a time."""
    llm.eval([1] + [259 + i % 200 for i in range(PROMPT_TOKENS - 1)])
    for i in range(DECODED_TOKENS):
        llm.eval([300 + i])


def canary_child(
    conn: Any,
    model: str,
    variant: str | None,
    buffer_type: str | None,
    n_threads: int,
    decode: Callable[[Any], None] = decode_few,
    variants: Callable[[], list[str]] | None = None,
) -> None:
    """One canary process. In a build with CPU variants, asked with no variant it only names them,
    best first (each is then tried in its own process). Otherwise: load `variant`, load the model
    with only `buffer_type` (None: none, and report what is offered), decode, say whether that
    buffer type held any weight. A crash ends the process: its exit says it."""
    try:
        import llama_cpp
    except (ImportError, OSError, RuntimeError) as exc:  # said by the engine's own load, in words
        conn.send(("unavailable", str(exc)))
        return

    from localopen.engine import cpu_kernels, cpu_variants, llama_log

    capture = llama_log.install()  # before a variant loads: ggml says so in its log, not the terminal
    if variant is None:
        names = variants() if variants is not None else [v.name for v in cpu_variants.ranked()]
        if names:
            conn.send(("variants", names))
            return
    else:
        cpu_variants.load(variant)
    if buffer_type is None:
        conn.send(("offered", cpu_kernels.offered()))
    cpu_kernels.restrict([] if buffer_type is None else [buffer_type])
    llm = llama_cpp.Llama(model_path=model, n_ctx=128, n_batch=64, n_threads=n_threads, verbose=False)
    used = buffer_type is None or any(f"{buffer_type} model buffer size" in line for line in capture.lines)
    decode(llm)
    llm.close()
    conn.send(("decoded", used))


Child = Callable[..., None]


def _try(
    child: Child, model: Path, variant: str | None, buffer_type: str | None, n_threads: int
) -> tuple[str | None, dict[str, list[str]]]:
    """Run one canary process: (None when it decoded or named the variants, else how it ended;
    the lists it sent: "offered" buffer types, "variants")."""
    ctx = mp.get_context("spawn")
    parent, end = ctx.Pipe()
    process = ctx.Process(
        target=child, args=(end, str(model), variant, buffer_type, n_threads), name="localopen-canary", daemon=True
    )
    process.start()
    end.close()
    said: dict[str, list[str]] = {}
    finished = False
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if not parent.poll(0.1):
                if not process.is_alive():
                    break
                continue
            try:
                what, value = parent.recv()
            except (EOFError, OSError):
                break
            if what == "unavailable":
                return f"could not load llama.cpp ({value})", said
            if what in ("offered", "variants"):
                said[what] = list(value)
                finished = what == "variants"
            elif what == "decoded":
                finished = True
                if not value:
                    log.info("The canary's weights took no %s buffer here: it was not exercised", buffer_type)
            if finished:
                break
        process.join(10)
    finally:
        if process.is_alive():
            process.kill()
            process.join(5)
        parent.close()
    if finished:
        return None, said
    if process.exitcode is None:
        return f"did not finish in {CHILD_TIMEOUT_S:.0f} s", said
    return describe_exit(process.exitcode), said


def check_kernels(key: str, build: str, child: Child = canary_child, n_threads: int = 2) -> KernelChoice | None:
    """Find the CPU variant (in a build with them: the best that decodes) and try each extra buffer
    type with it, each in its own process; None when even the plain kernels did not decode
    (llama.cpp cannot run here at all: the load that follows says why)."""
    folder = Path(tempfile.mkdtemp(prefix="localopen-canary-"))
    variant = ""
    variants_crashed: dict[str, str] = {}
    try:
        model = write_canary_model(folder / "canary.gguf")
        failure, said = _try(child, model, None, None, n_threads)
        for name in said.get("variants", []):  # best first: the first that decodes is this machine's
            failure, said = _try(child, model, name, None, n_threads)
            if failure is None:
                variant = name
                break
            variants_crashed[name] = failure
            log.warning("The canary with llama.cpp's %s CPU variant %s: the next one is tried", name, failure)
        if failure is not None or "offered" not in said:
            log.error("The canary with llama.cpp's plain CPU kernels %s: no kernel choice is made", failure)
            return None
        offered = said["offered"]
        crashed: dict[str, str] = {}
        for name in offered:
            failure, _ = _try(child, model, variant or None, name, n_threads)
            if failure is not None:
                crashed[name] = failure
                log.warning("The canary with llama.cpp's %s kernels %s: models load without them", name, failure)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    cpu = cpu_features.read()
    choice = KernelChoice(
        key=key,
        build=build,
        offered=offered,
        crashed=crashed,
        checked_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        simd=simd_level(sorted(cpu.present)),
        variant=variant,
        variants_crashed=variants_crashed,
    )
    log.info(
        "Kernel canary: CPU variant %s, offered %s, crashed %s",
        variant or "linked in",
        offered,
        {**variants_crashed, **crashed} or "none",
    )
    return choice


@cache
def current_key() -> tuple[str, str]:
    """(the record's key, the build): read once a process, not at every load (/proc/cpuinfo, the
    libraries' files); an upgrade while the app runs is met at its next start."""
    build = build_id()
    return kernel_key(cpu_model(), sorted(cpu_features.read().present), build), build


_lock = threading.Lock()
_known: dict[str, KernelChoice | None] = {}  # this process's answers, by key


def kernel_choice(cache_dir: Path | None = None) -> KernelChoice | None:
    """This machine's record, read or made (the canary, once per key); None: no choice could be
    made, llama.cpp's own defaults apply."""
    key, build = current_key()
    with _lock:
        if key in _known:
            return _known[key]
        folder = cache_dir or app_paths().cache
        choice = read_choice(folder, key)
        if choice is None:
            choice = check_kernels(key, build)
            if choice is not None:
                save_choice(folder, choice)
        _known[key] = choice
        return choice


def remember_crash(path: str, how: str, cache_dir: Path | None = None) -> None:
    """A model that crashed on its first decode with the canary's kernels loads without extra
    buffer types from now on (for this build)."""
    choice = kernel_choice(cache_dir)
    if choice is None:
        return
    with _lock:
        choice.files[str(path)] = how
        save_choice(cache_dir or app_paths().cache, choice)
