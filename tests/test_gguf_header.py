"""The fast GGUF header reader, on real files and on malformed ones made here."""

from __future__ import annotations

import struct
import time
import tracemalloc
from pathlib import Path

import pytest

from localopen.core.gguf.header import GGUFError, GGUFHeader, read_header
from localopen.core.gguf.shapes import DenseShape, write_shape

from tiny_gguf import N_VOCAB, expected_params


def test_tiny_model_fields(tiny_gguf: Path) -> None:
    h = read_header(tiny_gguf)
    assert h.architecture == "llama"
    assert h.name == "tiny-test-llama"
    assert h.n_params == expected_params()
    assert h.quantization == "F32"
    assert (h.context_length, h.block_count, h.embedding_length) == (512, 2, 64)
    assert (h.head_count, h.head_count_kv, h.key_length, h.value_length) == (4, 2, 16, 16)
    assert h.vocab_size == N_VOCAB
    assert h.has_chat_template and "im_start" in (h.chat_template or "")
    assert h.license == "apache-2.0"
    assert 0 < h.tensor_bytes < h.file_size


def test_real_gemma_header(gemma_path: Path) -> None:
    start = time.perf_counter()
    h = read_header(gemma_path)
    elapsed = time.perf_counter() - start
    assert h.architecture == "gemma3"
    assert h.quantization == "Q4_K_M"
    assert h.vocab_size == 262144
    assert (h.block_count, h.head_count, h.head_count_kv, h.key_length) == (18, 4, 1, 256)
    assert h.sliding_window == 512
    assert h.context_length == 32768
    assert h.license == "gemma"
    assert not h.has_chat_template
    assert 260e6 < h.n_params < 280e6
    assert elapsed < 2.0  # GGUFReader takes tens of seconds on this vocabulary; we skip it


def _header(version: int = 3, tensors: int = 0, kvs: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, tensors, kvs)


def _kv_string(key: str, value: bytes, claimed_len: int | None = None) -> bytes:
    k = key.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<I", 8) + struct.pack("<Q", claimed_len or len(value)) + value


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"GGUF", "too small"),
        (b"NOTAGGUFFILE" * 4, "not a GGUF file"),
        (_header(version=1) + b"\0" * 16, "version 1"),
        (_header(version=99) + b"\0" * 16, "version 99"),
        (_header(kvs=10**12), "metadata entries"),
        (_header(tensors=10**12), "tensors"),
        (_header(kvs=1) + _kv_string("general.name", b"x", claimed_len=2**60), "past the end"),
        (_header(kvs=2) + _kv_string("general.name", b"abc"), "past the end"),
        (_header(kvs=1) + struct.pack("<Q", 4) + b"key1" + struct.pack("<I", 77) + b"\0" * 8, "unknown value type"),
        (_header(kvs=1) + struct.pack("<Q", 4) + b"arr1" + struct.pack("<IIQ", 9, 4, 2**40), "past the end"),
    ],
)
def test_malformed_files_give_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(content)
    with pytest.raises(GGUFError, match=message):
        read_header(bad)


def test_truncated_real_file(tmp_path: Path, tiny_gguf: Path) -> None:
    data = tiny_gguf.read_bytes()
    for cut in (30, 200, 2000, 5000):
        part = tmp_path / f"cut{cut}.gguf"
        part.write_bytes(data[:cut])
        with pytest.raises(GGUFError):
            read_header(part)


def test_huge_length_fields_allocate_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "huge.gguf"
    bad.write_bytes(_header(kvs=1) + _kv_string("general.name", b"x" * 64, claimed_len=2**40))
    tracemalloc.start()
    with pytest.raises(GGUFError):
        read_header(bad)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1 << 20


def test_directory_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(GGUFError, match="folder"):
        read_header(tmp_path)
    with pytest.raises(GGUFError, match="No file"):
        read_header(tmp_path / "nope.gguf")


def test_block_sizes_are_ggmls() -> None:
    """Where tensor data ends depends on these: they must be ggml's (the gguf package's table)."""
    from gguf.constants import GGML_QUANT_SIZES

    from localopen.core.gguf.header import TENSOR_BLOCKS

    known = {t.value: size for t, size in GGML_QUANT_SIZES.items()}
    assert {k: known[k] for k in TENSOR_BLOCKS} == TENSOR_BLOCKS


def test_intact_header_with_tensor_data_cut_short_is_truncated(
    tmp_path: Path, tiny_gguf: Path, gemma_path: Path
) -> None:
    from localopen.core.gguf.header import GGUFTruncatedError

    data = tiny_gguf.read_bytes()
    header_end = read_header(tiny_gguf).tensor_data_offset
    for keep in (header_end + 1, len(data) // 2, len(data) - 1):  # the header is whole every time
        cut = tmp_path / f"cut{keep}.gguf"
        cut.write_bytes(data[:keep])
        with pytest.raises(GGUFTruncatedError, match="truncated") as err:
            read_header(cut)
        assert (err.value.expected, err.value.actual) == (len(data), keep)
        assert f"{len(data):,}" in str(err.value) and f"{keep:,}" in str(err.value)
    assert read_header(tiny_gguf).file_size == len(data)  # an intact file is exactly as long as it says
    assert read_header(gemma_path).quantization == "Q4_K_M"  # and a real quantized file passes


def test_prompt_work_counts_the_matrices_a_prompt_token_multiplies(tmp_path: Path) -> None:
    """Not the embedding lookup, nor the output matrix (llama.cpp computes a prompt's logits for its
    last token only); attention width is query heads x head width over the layers."""
    shape = DenseShape("untied", 4, 256, 768, 4, 2, 1000)
    path = tmp_path / "untied.gguf"
    write_shape(path, shape, "F16")
    h = read_header(path)
    per_layer = 256 * 256 * 2 + 256 * 2 * 64 * 2 + 3 * 256 * 768 + 2 * 256  # q,o + k,v + ffn + 2 norms
    assert sum(h.matrix_params.values()) == 4 * per_layer + 256  # + the output norm
    assert h.n_params == sum(h.matrix_params.values()) + 2 * 1000 * 256  # embedding and output
    assert h.attention_dim == 4 * 4 * 64
    norms = h.matrix_params["F32"]
    assert h.type_bytes == {"F16": 2 * (h.n_params - norms), "F32": 4 * norms}  # every tensor's bytes, by type


def test_attention_width_of_a_hybrid_counts_only_its_attention_layers() -> None:
    """A per-layer head count (0 in a recurrent layer), as Granite 4.0 H and Nemotron H write it."""
    h = GGUFHeader(
        path=Path("hybrid.gguf"), file_size=0, version=3, tensor_count=0, array_lengths={}, n_params=0,
        tensor_data_offset=0,
        metadata={"general.architecture": "granitehybrid", "granitehybrid.block_count": 4,
                  "granitehybrid.attention.head_count": [0, 8, 0, 8], "granitehybrid.attention.key_length": 64},
    )  # fmt: skip
    assert h.attention_dim == 16 * 64


def _hostile_header(tmp_path: Path, name: str, body: bytes, size: int | None = None) -> Path:
    """A GGUF v3 header with no tensors and one metadata entry whose value is `body` (type 9: array)."""
    import struct

    key = b"hostile.array"
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key + struct.pack("<I", 9) + body
    path = tmp_path / name
    with path.open("wb") as f:
        f.write(data)
        if size:
            f.truncate(size)  # sparse: the disk holds only the header
    return path


def test_arrays_nested_thousands_deep_are_refused_in_words_not_a_recursion_error(tmp_path: Path) -> None:
    import struct

    nested = struct.pack("<IQ", 9, 1) * 5000 + struct.pack("<IQ", 4, 0)
    path = _hostile_header(tmp_path, "nested.gguf", nested, size=1 << 20)
    with pytest.raises(GGUFError, match="nests arrays more than 8 deep"):
        read_header(path)


def test_a_hundred_million_strings_are_refused_at_once(tmp_path: Path) -> None:
    import struct
    import time

    strings = struct.pack("<IQ", 8, 10**8)  # 10^8 empty strings would take 8 bytes each
    path = _hostile_header(tmp_path, "strings.gguf", strings, size=10**8 * 8 + 4096)
    started = time.monotonic()
    with pytest.raises(GGUFError, match="strings past"):
        read_header(path)
    assert time.monotonic() - started < 1
