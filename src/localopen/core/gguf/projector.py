"""Vision projectors (the mmproj files of llama.cpp's libmtmd), read from their headers: what they
are, what an image costs, and whether one belongs with a model.

A projector turns an image into embeddings the text model reads as tokens. Paired with weights it
was not trained for it "produces confident nonsense, not an error", so the pairing is checked
before a load: its output width against the model's embedding width, and the model family its
projector type serves. libmtmd checks the width again at load (engine/vision).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from localopen.core.gguf.header import GGUFHeader

PROJECTOR_ARCH = "clip"

# Projector types (clip.projector_type, tools/mtmd/clip-impl.h) whose text models are known: a pair
# outside its family is refused. A type not named here is checked by its width alone.
FAMILIES: dict[str, tuple[str, frozenset[str]]] = {
    "gemma3": ("Gemma 3", frozenset({"gemma3"})),
    "gemma3nv": ("Gemma 3n", frozenset({"gemma3n"})),
    "gemma4v": ("Gemma 4", frozenset({"gemma4"})),
    "gemma4uv": ("Gemma 4", frozenset({"gemma4"})),
    "qwen2vl_merger": ("Qwen2-VL", frozenset({"qwen2vl"})),
    "qwen2vl": ("Qwen2-VL", frozenset({"qwen2vl"})),
    "qwen25vl": ("Qwen2.5-VL", frozenset({"qwen2vl"})),
    "qwen3vl_merger": ("Qwen3-VL", frozenset({"qwen3vl", "qwen3vlmoe"})),
    "qwen3vl": ("Qwen3-VL", frozenset({"qwen3vl", "qwen3vlmoe"})),
    "idefics3": ("SmolVLM / Idefics3", frozenset({"llama", "smollm3"})),
    "pixtral": ("Mistral (Pixtral)", frozenset({"llama", "mistral3"})),
    "llama4": ("Llama 4", frozenset({"llama4"})),
    "lfm2": ("LFM2-VL", frozenset({"lfm2"})),
}


@dataclass(frozen=True)
class Projector:
    """A vision projector's facts from its header."""

    kind: str  # clip.projector_type, e.g. "gemma3"
    projection_dim: int | None  # the embedding width it produces (the text model's must match)
    image_size: int | None  # the side of the square the encoder sees, in pixels
    patch_size: int | None
    merge: int  # patches merged per side after the encoder (1: none)
    encoder_params: int
    file_size: int

    @property
    def family(self) -> str | None:
        return FAMILIES[self.kind][0] if self.kind in FAMILIES else None

    @property
    def image_tokens(self) -> int | None:
        """Tokens one image of the encoder's size becomes (fixed-size encoders; larger images may
        be tiled into more)."""
        if not self.image_size or not self.patch_size:
            return None
        side = self.image_size // self.patch_size // max(1, self.merge)
        return side * side

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "family": self.family,
            "projection_dim": self.projection_dim,
            "image_size": self.image_size,
            "patch_size": self.patch_size,
            "image_tokens": self.image_tokens,
            "encoder_params": self.encoder_params,
            "file_size": self.file_size,
        }


def is_projector(header: GGUFHeader) -> bool:
    return header.architecture == PROJECTOR_ARCH


def read_projector(header: GGUFHeader) -> Projector:
    kind = header.get("clip.projector_type") or header.get("clip.vision.projector_type") or "?"
    merge = header.get("clip.vision.projector.scale_factor")
    if not isinstance(merge, int):
        merge = 4 if kind == "gemma3" else 1  # clip.cpp's default for Gemma 3
    return Projector(
        kind=str(kind),
        projection_dim=_int(header.get("clip.vision.projection_dim")),
        image_size=_int(header.get("clip.vision.image_size")),
        patch_size=_int(header.get("clip.vision.patch_size")),
        merge=merge,
        encoder_params=header.n_params,
        file_size=header.file_size,
    )


def pairing_problem(projector: Projector, model: GGUFHeader, projector_name: str, model_name: str) -> str | None:
    """Why this projector cannot serve this model, in words naming both files; None when it can."""
    width = model.embedding_length
    if projector.projection_dim and width and projector.projection_dim != width:
        return (
            f"The vision projector {projector_name} produces embeddings {projector.projection_dim} wide, but "
            f"{model_name} reads {width}: it was made for another model. Use the projector (mmproj file) "
            "published with this model."
        )
    family = FAMILIES.get(projector.kind)
    if family is not None and model.architecture not in family[1]:
        return (
            f"The vision projector {projector_name} is a {family[0]} projector ({projector.kind}), but "
            f"{model_name} is a {model.architecture} model: it would answer about images it cannot see. "
            "Use the projector (mmproj file) published with this model."
        )
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
