"""Every GGUF file-naming rule in one place: what a GGUF file is, its split parts, its model name and
its quantization. The Hub listing, the models folder, pulls, the catalog and the engine all ask here,
so a name is read the same way everywhere.

llama.cpp's gguf-split names parts `NAME-00001-of-00003.gguf`; quantization is the file name's
token such as `Q4_K_M`, `IQ3_XXS`, `BF16` (Qwen writes `fp16` for F16).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

SUFFIX = ".gguf"
SPLIT_RE = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
QUANT_RE = re.compile(r"(?i)(?:^|[-_.])((?:IQ|Q)\d(?:_[A-Z0-9]+)*|BF16|FP16|F16|FP32|F32|MXFP4)(?=[-_.]|$)")
_SYNONYMS = {"FP16": "F16", "FP32": "F32"}


@dataclass(frozen=True)
class SplitPart:
    stem: str  # the name before -0000N-of-0000M.gguf
    index: int  # 1-based
    total: int


def is_gguf(name: str) -> bool:
    return name.lower().endswith(SUFFIX)


def is_projector_name(name: str) -> bool:
    """A vision projector by llama.cpp's naming (mmproj-*.gguf): used with its model, never alone."""
    return "mmproj" in Path(name).name.lower()


def split_part(name: str) -> SplitPart | None:
    """Which part of a split model a file name is, or None for a whole file."""
    m = SPLIT_RE.search(name)
    return SplitPart(name[: m.start()], int(m.group(1)), int(m.group(2))) if m else None


def is_first_part(name: str) -> bool:
    """A whole file, or the first part of a split one: what a library lists and the engine loads."""
    part = split_part(name)
    return part is None or part.index == 1


def model_name(filename: str) -> str:
    """A file's model name, as clients and the app show it: without the split suffix and .gguf."""
    name = Path(filename).name
    part = split_part(name)
    if part is not None:
        return part.stem
    return name[: -len(SUFFIX)] if is_gguf(name) else name


def parts_of(path: Path) -> list[Path]:
    """All parts of a split GGUF (…-00001-of-00003.gguf), in order, or just the file."""
    part = split_part(path.name)
    if part is None:
        return [path]
    suffix = path.name[-len(SUFFIX) :]
    return [path.with_name(f"{part.stem}-{i:05d}-of-{part.total:05d}{suffix}") for i in range(1, part.total + 1)]


def quant_of(filename: str) -> str | None:
    """The quantization a file name states, upper case and normalised (fp16 -> F16), or None."""
    name = Path(filename).name
    part = split_part(name)
    base = part.stem if part is not None else (name[: -len(SUFFIX)] if is_gguf(name) else name)
    m = QUANT_RE.search(base)
    if not m:
        return None
    quant = m.group(1).upper()
    return _SYNONYMS.get(quant, quant)


def matches_quant(filename: str, pattern: str) -> bool:
    """A file matches a catalog pattern such as *Q6_K*.gguf only with exactly that quantization:
    not Q6_K_L, and *F16* never BF16 (but Qwen's -fp16.gguf is F16). The rest of the pattern (a
    model name around the quantization) still applies. A vision projector (mmproj-model-f16.gguf)
    is never a model's file, whatever its precision."""
    if is_projector_name(filename) and not is_projector_name(pattern):
        return False
    wanted = quant_of(pattern.replace("*", "-"))
    if wanted is None:
        return fnmatch.fnmatch(filename.lower(), pattern.lower())
    if quant_of(filename) != wanted:
        return False
    return fnmatch.fnmatch(
        _quant_blanked(filename, filename).lower(), _quant_blanked(pattern.replace("*", "-"), pattern).lower()
    )


def _quant_blanked(probe: str, text: str) -> str:
    """text with its quantization token (found in probe, the same length) replaced by a fixed word."""
    m = QUANT_RE.search(probe)
    return text if m is None else text[: m.start(1)] + "QUANT" + text[m.end(1) :]
