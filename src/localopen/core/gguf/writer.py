"""Write GGUF files whose tensor data is all zeros, as sparse files.

llama.cpp's speed and memory do not depend on weight values (docs/DESIGN.md), so a file with a
real header and zero data measures like the real one at the cost of its header's disk space.
Used for the machine's calibration (model shapes written here) and for replicas of Hub files
(core/replica.py copies a real header instead). Pure Python: no numpy, no gguf package.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localopen.core.gguf.header import TENSOR_BLOCKS

ALIGNMENT = 32

# GGUF value types
U32, I32, F32, BOOL, STRING, ARRAY, U64 = 4, 5, 6, 7, 8, 9, 10
_CODES = {U32: "I", I32: "i", F32: "f", BOOL: "?", U64: "Q"}

# ggml tensor types used by the shapes written here
GGML_TYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q5_0": 6, "Q8_0": 8, "Q4_K": 12, "Q5_K": 13, "Q6_K": 14}


@dataclass(frozen=True)
class Value:
    """A typed metadata value: `kind` is a GGUF value type; arrays give `element`."""

    kind: int
    value: Any
    element: int | None = None


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]  # ggml order: ne0 (the row length) first
    ggml_type: int

    @property
    def n_bytes(self) -> int:
        per_block, block_bytes = TENSOR_BLOCKS[self.ggml_type]
        elements = 1
        for n in self.shape:
            elements *= n
        return -(-elements // per_block) * block_bytes


def _align(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def _string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def _value(v: Value) -> bytes:
    if v.kind == STRING:
        return _string(v.value)
    if v.kind == ARRAY:
        assert v.element is not None
        head = struct.pack("<IQ", v.element, len(v.value))
        if v.element == STRING:
            return head + b"".join(_string(s) for s in v.value)
        return head + struct.pack(f"<{len(v.value)}{_CODES[v.element]}", *v.value)
    return struct.pack("<" + _CODES[v.kind], v.value)


def header_bytes(metadata: dict[str, Value], tensors: list[TensorSpec]) -> tuple[bytes, int]:
    """The header up to the aligned start of the tensor data, and the data section's length."""
    out = [b"GGUF", struct.pack("<IQQ", 3, len(tensors), len(metadata))]
    for key, v in metadata.items():
        out += [_string(key), struct.pack("<I", v.kind), _value(v)]
    offset = 0
    for t in tensors:
        out += [_string(t.name), struct.pack("<I", len(t.shape))]
        out += [struct.pack(f"<{len(t.shape)}Q", *t.shape), struct.pack("<IQ", t.ggml_type, offset)]
        offset = _align(offset + t.n_bytes)
    head = b"".join(out)
    return head + b"\0" * (_align(len(head)) - len(head)), offset


def write_zero_gguf(path: Path, metadata: dict[str, Value], tensors: list[TensorSpec]) -> int:
    """Write the file (sparse where the filesystem allows); returns its size in bytes."""
    head, data_len = header_bytes(metadata, tensors)
    size = len(head) + data_len
    with path.open("wb") as fh:
        fh.write(head)
        fh.truncate(size)
    return size
