"""A fast, defensive GGUF header reader.

gguf.GGUFReader decodes every array element (tens of seconds for a 262k-token vocabulary);
this reader walks the header over an mmap, skipping arrays it does not need, and checks
every count and length against the bytes that remain before trusting it. It never
allocates in proportion to an unchecked length field.
"""

from __future__ import annotations

import errno
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localopen.core.errors import LocalopenError

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
MAX_TENSOR_DIMS = 4  # GGML_MAX_DIMS
# Matrices a prompt token does not multiply: the embedding lookup, and the output matrix that
# llama.cpp applies to a prompt's last token only (llama-batch.cpp: no logits array -> last token).
_NOT_PER_PROMPT_TOKEN = {"token_embd.weight", "output.weight"}
MAX_KEPT_STRING = 1 << 20  # longer strings are skipped, not decoded
MAX_DECODED_ARRAY = 4096  # longer arrays are counted, not decoded
# What a header may ask a reader to walk: the largest vocabularies (with their merges) hold about a
# million strings, and no model nests arrays. A file beyond these is no model, and says so at once
# (a 0.8 GB file of 10^8 empty strings took 25 s per listing; 5000 nested arrays overflowed the stack).
MAX_STRINGS = 16_000_000
MAX_NESTING = 8

# GGUF value types -> (struct code, size)
_SCALARS = {
    0: ("B", 1),
    1: ("b", 1),
    2: ("H", 2),
    3: ("h", 2),
    4: ("I", 4),
    5: ("i", 4),
    6: ("f", 4),
    7: ("?", 1),
    10: ("Q", 8),
    11: ("q", 8),
    12: ("d", 8),
}
_STRING, _ARRAY = 8, 9

# llama_ftype values written to general.file_type
FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
}
# ggml_type values in tensor infos (used when general.file_type is missing)
TENSOR_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    6: "Q5_0",
    7: "Q5_1",
    8: "Q8_0",
    9: "Q8_1",
    10: "Q2_K",
    11: "Q3_K",
    12: "Q4_K",
    13: "Q5_K",
    14: "Q6_K",
    15: "Q8_K",
    16: "IQ2_XXS",
    17: "IQ2_XS",
    18: "IQ3_XXS",
    19: "IQ1_S",
    20: "IQ4_NL",
    21: "IQ3_S",
    22: "IQ2_S",
    23: "IQ4_XS",
    24: "I8",
    25: "I16",
    26: "I32",
    27: "I64",
    28: "F64",
    29: "IQ1_M",
    30: "BF16",
    34: "TQ1_0",
    35: "TQ2_0",
    39: "MXFP4",
}


# ggml type -> (elements per block, bytes per block): where each tensor's data ends (ggml's type traits).
TENSOR_BLOCKS = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 40),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82),
    23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2),
    34: (256, 54), 35: (256, 66), 39: (32, 17),
}  # fmt: skip


class GGUFError(LocalopenError):
    """The file is not a GGUF model this reader can trust."""


class GGUFPastEndError(GGUFError):
    """A field runs past the end of the bytes read (a truncated file, or only a prefix of one)."""


class GGUFIncompleteError(GGUFError):
    """Only a prefix of the file was read and the header goes on past it: read more."""


class GGUFTruncatedError(GGUFError):
    """The header is intact but the tensor data it describes runs past the end of the file."""

    def __init__(self, name: str, expected: int, actual: int) -> None:
        super().__init__(
            f"{name} is truncated: its tensors need {expected:,} bytes but the file has {actual:,} "
            f"({actual / expected:.0%}). It is an interrupted copy or download: download or copy it again."
        )
        self.expected, self.actual = expected, actual


@dataclass
class GGUFHeader:
    path: Path
    file_size: int
    version: int
    tensor_count: int
    metadata: dict[str, Any]
    array_lengths: dict[str, int]
    n_params: int
    tensor_data_offset: int
    tensor_data_end: int | None = None  # where the last tensor's data ends (None: a tensor type unknown here)
    tensor_types: dict[str, int] = field(default_factory=dict)  # ggml type name -> tensor count
    # ggml type name -> parameters of the tensors multiplied per prompt token: what prompt
    # processing's speed depends on. Not the token embedding table (a lookup) nor the output matrix
    # (a prompt computes logits for its last token only).
    matrix_params: dict[str, int] = field(default_factory=dict)
    type_bytes: dict[str, int] = field(default_factory=dict)  # ggml type name -> bytes of tensor data
    expert_params: int = 0  # parameters in mixture-of-experts expert tensors (*_exps)

    # --- convenient views on the metadata -------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    def arch_key(self, suffix: str, default: Any = None) -> Any:
        return self.metadata.get(f"{self.architecture}.{suffix}", default)

    @property
    def makes_embeddings(self) -> bool:
        """Whether `<arch>.pooling_type` (as llama.cpp reads it) pools token vectors into one
        embedding (mean, cls, last); none and rank (a reranker) make no embeddings."""
        pooling = self.arch_key("pooling_type")
        return isinstance(pooling, int) and pooling in (1, 2, 3)

    @property
    def embeds_only(self) -> bool:
        """An embedding model: it pools into embeddings and has no chat template (it writes no text)."""
        return self.makes_embeddings and not self.chat_template

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    @property
    def name(self) -> str:
        return str(self.metadata.get("general.name") or self.path.stem)

    @property
    def quantization(self) -> str:
        ftype = self.metadata.get("general.file_type")
        if isinstance(ftype, int) and ftype in FILE_TYPES:
            return FILE_TYPES[ftype]
        # No (known) file type: name it after the most common tensor type.
        if self.tensor_types:
            return max(self.tensor_types.items(), key=lambda kv: kv[1])[0]
        return "unknown"

    @property
    def context_length(self) -> int | None:
        return _as_int(self.arch_key("context_length"))

    @property
    def block_count(self) -> int | None:
        return _as_int(self.arch_key("block_count"))

    @property
    def embedding_length(self) -> int | None:
        return _as_int(self.arch_key("embedding_length"))

    @property
    def head_count(self) -> int | list[int] | None:
        return self.arch_key("attention.head_count")

    @property
    def head_count_kv(self) -> int | list[int] | None:
        return self.arch_key("attention.head_count_kv", self.head_count)

    @property
    def key_length(self) -> int | None:
        value = _as_int(self.arch_key("attention.key_length"))
        if value is None and self.embedding_length and isinstance(self.head_count, int) and self.head_count:
            return self.embedding_length // self.head_count
        return value

    @property
    def value_length(self) -> int | None:
        value = _as_int(self.arch_key("attention.value_length"))
        return value if value is not None else self.key_length

    @property
    def key_length_swa(self) -> int | None:
        """Gemma 4: sliding-window layers' head width, narrower than the global layers'."""
        return _as_int(self.arch_key("attention.key_length_swa"))

    @property
    def value_length_swa(self) -> int | None:
        return _as_int(self.arch_key("attention.value_length_swa"))

    @property
    def shared_kv_layers(self) -> int:
        """Gemma 4: how many last layers reuse earlier layers' KV cache instead of keeping their own."""
        return _as_int(self.arch_key("attention.shared_kv_layers")) or 0

    @property
    def sliding_window(self) -> int | None:
        return _as_int(self.arch_key("attention.sliding_window"))

    @property
    def vocab_size(self) -> int | None:
        if "tokenizer.ggml.tokens" in self.array_lengths:
            return self.array_lengths["tokenizer.ggml.tokens"]
        return _as_int(self.arch_key("vocab_size"))

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return value if isinstance(value, str) else None

    @property
    def has_chat_template(self) -> bool:
        return "tokenizer.chat_template" in self.metadata or "tokenizer.chat_template" in self.array_lengths

    @property
    def license(self) -> str | None:
        value = self.metadata.get("general.license")
        return str(value) if value is not None else None

    @property
    def split_count(self) -> int:
        return _as_int(self.metadata.get("split.count")) or 1

    @property
    def active_fraction(self) -> float:
        """Mixture of experts: the share of parameters one token uses (1.0 for dense models)."""
        count, used = _as_int(self.arch_key("expert_count")), _as_int(self.arch_key("expert_used_count"))
        if not self.expert_params or not self.n_params or not count or not used or used >= count:
            return 1.0
        dense = self.n_params - self.expert_params
        return (dense + self.expert_params * used / count) / self.n_params

    @property
    def attention_dim(self) -> int:
        """Query heads x head width, summed over the layers (0 heads in a recurrent layer): the
        attention's work per prompt token grows with it."""
        layers = self.block_count or 1
        heads = self.head_count
        if isinstance(heads, list):
            return sum(_as_int(h) or 0 for h in heads[:layers]) * (self.key_length or 128)
        return layers * (_as_int(heads) or 0) * (self.key_length or 128)

    @property
    def tensor_bytes(self) -> int:
        """Bytes of tensor data in this file (weights in memory ≈ this, mmapped)."""
        return max(0, self.file_size - self.tensor_data_offset)

    def summary(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "file_size": self.file_size,
            "gguf_version": self.version,
            "architecture": self.architecture,
            "name": self.name,
            "n_params": self.n_params,
            "quantization": self.quantization,
            "context_length": self.context_length,
            "block_count": self.block_count,
            "embedding_length": self.embedding_length,
            "head_count": self.head_count,
            "head_count_kv": self.head_count_kv,
            "key_length": self.key_length,
            "value_length": self.value_length,
            "sliding_window": self.sliding_window,
            "vocab_size": self.vocab_size,
            "has_chat_template": self.has_chat_template,
            "license": self.license,
            "split_count": self.split_count,
        }


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return None


class _Cursor:
    """Bounds-checked reads over a buffer; every read that would pass the end raises."""

    def __init__(self, buf: mmap.mmap | bytes, size: int, endian: str) -> None:
        self.buf, self.size, self.pos, self.e = buf, size, 0, endian
        self.strings = 0  # strings met so far (bounded: MAX_STRINGS)

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise GGUFPastEndError(f"The file is truncated or corrupt: {what} runs past the end of the file.")

    def scalar(self, code: str, size: int, what: str) -> Any:
        self.need(size, what)
        (value,) = struct.unpack_from(self.e + code, self.buf, self.pos)
        self.pos += size
        return value

    def u32(self, what: str) -> int:
        return self.scalar("I", 4, what)

    def u64(self, what: str) -> int:
        return self.scalar("Q", 8, what)

    def string(self, what: str, keep: bool = True) -> str | None:
        length = self.u64(f"the length of {what}")
        self.need(length, what)  # checked against the file before anything is allocated
        start = self.pos
        self.pos += length
        if not keep or length > MAX_KEPT_STRING:
            return None
        return bytes(self.buf[start : start + length]).decode("utf-8", errors="replace")


def read_header(path: str | Path) -> GGUFHeader:
    """Read a GGUF file's metadata and tensor table; raise GGUFError with a plain message."""
    path = Path(path)
    if not path.exists():
        raise GGUFError(f"No file at {path}.")
    if path.is_dir():
        raise GGUFError(f"{path} is a folder, not a GGUF model file.")
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, 2)
            if size == 0:
                raise GGUFError(f"{path.name} is empty (0 bytes): not a GGUF model file.")
            if size < 24:
                raise GGUFError(f"{path.name} is too small ({size} bytes) to be a GGUF model file.")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse(path, buf, size)
    except PermissionError as exc:
        raise GGUFError(f"Cannot read {path}: permission denied.") from exc
    except OSError as exc:
        if exc.errno == errno.ENOMEM:  # the file is mapped to be read: a process limited in memory cannot
            raise GGUFError(
                f"Not enough memory to read {path.name}: this process may not map a file of its size "
                "(a memory limit is set for it). The file itself is not the problem."
            ) from exc
        raise GGUFError(f"Cannot read {path}: {exc.strerror or exc}.") from exc


def parse_prefix(name: str, prefix: bytes, file_size: int) -> GGUFHeader:
    """The header of a file of `file_size` bytes from its first bytes (a Range request's answer).
    Raises GGUFIncompleteError when the header goes on past the prefix: fetch more and try again."""
    if len(prefix) < 24 and len(prefix) < file_size:
        raise GGUFIncompleteError(f"{name}: {len(prefix)} bytes are not enough for a GGUF header.")
    try:
        return _parse(Path(name), prefix, len(prefix), file_size)
    except GGUFPastEndError as exc:
        if len(prefix) < file_size:
            raise GGUFIncompleteError(f"{name}: the header goes on past byte {len(prefix):,}.") from exc
        raise


def _parse(path: Path, buf: mmap.mmap | bytes, size: int, file_size: int | None = None) -> GGUFHeader:
    """Parse `size` bytes of `buf`; `file_size` is the whole file's size when buf is only its start."""
    file_size = size if file_size is None else file_size
    if buf[:4] != MAGIC:
        raise GGUFError(f"{path.name} is not a GGUF file (it does not start with 'GGUF').")
    (version,) = struct.unpack_from("<I", buf, 4)
    endian = "<"
    if version not in SUPPORTED_VERSIONS:
        (swapped,) = struct.unpack_from(">I", buf, 4)
        if swapped in SUPPORTED_VERSIONS:
            endian, version = ">", swapped
        else:
            raise GGUFError(f"{path.name} uses GGUF version {version}; localopen reads versions 2 and 3.")
    cur = _Cursor(buf, size, endian)
    cur.pos = 8
    tensor_count = cur.u64("the tensor count")
    kv_count = cur.u64("the metadata count")
    # Each key/value needs at least 8 (key length) + 4 (type) + 1 bytes; each tensor info 8+4+8+4+8.
    if kv_count * 13 > file_size - cur.pos:
        raise GGUFError(f"{path.name} claims {kv_count} metadata entries, more than the file can hold.")
    if tensor_count * 32 > file_size - cur.pos:
        raise GGUFError(f"{path.name} claims {tensor_count} tensors, more than the file can hold.")

    metadata: dict[str, Any] = {}
    array_lengths: dict[str, int] = {}
    for index in range(kv_count):
        # A key longer than any real one is not kept; its value is still read past.
        key = cur.string(f"metadata key #{index}") or f"(overlong key #{index})"
        vtype = cur.u32(f"the type of '{key}'")
        if vtype == _ARRAY:
            etype = cur.u32(f"the element type of '{key}'")
            count = cur.u64(f"the length of '{key}'")
            array_lengths[key] = count
            values = _read_array(cur, key, etype, count)
            if values is not None:
                metadata[key] = values
        else:
            value = _read_value(cur, key, vtype)
            if value is not None:
                metadata[key] = value

    n_params = 0
    data_end = 0  # where the last tensor's data ends, relative to the start of the data section
    unknown_type = False
    expert_params = 0
    tensor_types: dict[str, int] = {}
    matrix_params: dict[str, int] = {}
    type_bytes: dict[str, int] = {}
    for index in range(tensor_count):
        name = cur.string(f"tensor name #{index}") or ""
        n_dims = cur.u32(f"the dimensions of tensor #{index}")
        if n_dims > MAX_TENSOR_DIMS:
            raise GGUFError(f"{path.name} is corrupt: tensor #{index} claims {n_dims} dimensions.")
        elements = 1
        for _ in range(n_dims):
            elements *= cur.u64(f"a dimension of tensor #{index}")
        ttype = cur.u32(f"the type of tensor #{index}")
        offset = cur.u64(f"the offset of tensor #{index}")
        block = TENSOR_BLOCKS.get(ttype)
        type_name = TENSOR_TYPES.get(ttype, f"type{ttype}")
        if block is None:
            unknown_type = True  # a type this reader does not know: where its data ends is unknown
        else:
            n_bytes = -(-elements // block[0]) * block[1]
            data_end = max(data_end, offset + n_bytes)
            type_bytes[type_name] = type_bytes.get(type_name, 0) + n_bytes
        n_params += elements
        if "_exps" in name:
            expert_params += elements
        tensor_types[type_name] = tensor_types.get(type_name, 0) + 1
        if name not in _NOT_PER_PROMPT_TOKEN:
            matrix_params[type_name] = matrix_params.get(type_name, 0) + elements

    alignment = _as_int(metadata.get("general.alignment")) or 32
    if alignment <= 0 or alignment & (alignment - 1):
        raise GGUFError(f"{path.name} is corrupt: general.alignment is {alignment}, not a power of two.")
    data_offset = (cur.pos + alignment - 1) // alignment * alignment
    if tensor_count and data_offset > file_size:
        raise GGUFError(f"The file {path.name} is truncated: it ends before its tensor data.")
    if tensor_count and not unknown_type and data_offset + data_end > file_size:
        # Every size and speed figure comes from this header: never from one whose data is missing.
        raise GGUFTruncatedError(path.name, data_offset + data_end, file_size)
    return GGUFHeader(
        path=path,
        file_size=file_size,
        version=version,
        tensor_count=tensor_count,
        metadata=metadata,
        array_lengths=array_lengths,
        n_params=n_params,
        tensor_data_offset=data_offset,
        tensor_data_end=data_offset + data_end if not unknown_type else None,
        tensor_types=tensor_types,
        matrix_params=matrix_params,
        type_bytes=type_bytes,
        expert_params=expert_params,
    )


def _read_value(cur: _Cursor, key: str, vtype: int) -> Any:
    if vtype == _STRING:
        return cur.string(f"the value of '{key}'")
    if vtype in _SCALARS:
        code, size = _SCALARS[vtype]
        return cur.scalar(code, size, f"the value of '{key}'")
    raise GGUFError(f"The file is corrupt: '{key}' has unknown value type {vtype}.")


def _skip_strings(cur: _Cursor, key: str, count: int) -> None:
    """The hot loop of a 262k-token vocabulary: lengths only, one bounds check each."""
    unpack, buf, end, fmt = struct.unpack_from, cur.buf, cur.size, cur.e + "Q"
    pos = cur.pos
    for _ in range(count):
        if pos + 8 > end:
            break
        pos += 8 + unpack(fmt, buf, pos)[0]
        if pos > end:
            break
    else:
        cur.pos = pos
        return
    raise GGUFPastEndError(f"The file is truncated or corrupt: the array '{key}' runs past the end of the file.")


def _count_strings(cur: _Cursor, key: str, count: int) -> None:
    cur.strings += count
    if cur.strings > MAX_STRINGS:
        raise GGUFError(f"The file is not a model: '{key}' brings its strings past {MAX_STRINGS:,}.")


def _skip_nested(cur: _Cursor, key: str, count: int) -> None:
    """Walk arrays of arrays without recursion (a hostile file nests thousands deep)."""
    pending = [(count, 1)]  # arrays left to walk at each level
    while pending:
        left, depth = pending.pop()
        if left == 0:
            continue
        pending.append((left - 1, depth))
        if depth > MAX_NESTING:
            raise GGUFError(f"The file is not a model: '{key}' nests arrays more than {MAX_NESTING} deep.")
        etype = cur.u32(f"an element type in '{key}'")
        inner = cur.u64(f"an element length in '{key}'")
        if etype == _ARRAY:
            pending.append((inner, depth + 1))
        elif etype == _STRING:
            cur.need(inner * 8, f"the array '{key}'")
            _count_strings(cur, key, inner)
            _skip_strings(cur, key, inner)
        elif etype in _SCALARS:
            size = _SCALARS[etype][1]
            cur.need(inner * size, f"the array '{key}'")
            cur.pos += inner * size
        else:
            raise GGUFError(f"The file is corrupt: the array '{key}' has unknown element type {etype}.")


def _read_array(cur: _Cursor, key: str, etype: int, count: int) -> list[Any] | None:
    """Decode short arrays; skip long ones (checking every length on the way)."""
    if etype == _STRING:
        cur.need(count * 8, f"the array '{key}'")  # each string has at least its 8-byte length
        _count_strings(cur, key, count)
        if count <= MAX_DECODED_ARRAY:
            return [cur.string(f"an element of '{key}'") for _ in range(count)]
        _skip_strings(cur, key, count)
        return None
    if etype == _ARRAY:
        _skip_nested(cur, key, count)  # legal but unused by models: walked to stay in sync
        return None
    if etype not in _SCALARS:
        raise GGUFError(f"The file is corrupt: the array '{key}' has unknown element type {etype}.")
    code, size = _SCALARS[etype]
    cur.need(count * size, f"the array '{key}'")
    if count > MAX_DECODED_ARRAY:
        cur.pos += count * size
        return None
    values = list(struct.unpack_from(f"{cur.e}{count}{code}", cur.buf, cur.pos))
    cur.pos += count * size
    return values
