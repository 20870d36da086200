"""A GGUF file from elsewhere (LM Studio, Ollama, Jan, a shared folder) recognised as a catalog
model, so its curated grade, lineage and evidence apply instead of a provisional grade read from
its own metadata. The match says its basis:

- by sha256, where the catalog knows the file's hash (`localopen refresh` caches the Hub's): the
  very file the catalog describes;
- by name, where the file's own metadata (general.basename with its size label and finetune, or
  general.name) or its file name (less the quantization) is one catalog model's id or repository
  name, and no other's. A model fine-tuned from a catalog model names itself, not its base (its
  base is lineage, never identity), so it is not matched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from localopen.core.gguf.files import QUANT_RE, model_name
from localopen.core.openness.catalog import Catalog, CatalogModel


@dataclass(frozen=True)
class CatalogMatch:
    model: CatalogModel
    basis: str  # in words: "same sha256 as bartowski/… Q4_K_M", "matched by name (general.basename …)"
    exact: bool  # by hash: the catalog's own file


def normalise(text: str) -> str:
    """'Qwen2.5 7B Instruct' and 'qwen2.5-7b-instruct' alike: lower case, runs of other characters as '-'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _names(metadata: dict[str, Any], filename: str) -> list[tuple[str, str]]:
    """(normalised name, where it was read) in order of trust."""
    found = []
    base, size = metadata.get("general.basename"), metadata.get("general.size_label")
    if isinstance(base, str) and base:
        parts = [base, size if isinstance(size, str) else "", metadata.get("general.finetune") or ""]
        found.append((normalise(" ".join(str(p) for p in parts if p)), "its metadata's basename, size and finetune"))
    name = metadata.get("general.name")
    if isinstance(name, str) and name:
        found.append((normalise(name), "its metadata's name"))
    stem = model_name(filename)
    quant = QUANT_RE.search(stem)
    if quant is not None:
        stem = stem[: quant.start(1)]
    found.append((normalise(stem), "its file name"))
    return [(n, where) for n, where in found if n]


def _keys(model: CatalogModel) -> set[str]:
    repo_name = model.gguf_repo.split("/")[-1]
    repo_name = re.sub(r"(?i)[-_.]gguf$", "", repo_name)
    return {normalise(model.id), normalise(model.base_model.split("/")[-1]), normalise(repo_name)}


def match_file(
    catalog: Catalog, metadata: dict[str, Any], filename: str, sha256: str | None = None
) -> CatalogMatch | None:
    """The catalog model this file is, with the basis of the match; None when none (or several) fit."""
    if sha256:
        for model in catalog.models:
            for quant in model.quants:
                if quant.sha256 and quant.sha256.lower() == sha256.lower():
                    return CatalogMatch(model, f"same sha256 as {model.gguf_repo} {quant.type}", True)
    keys = {model.id: _keys(model) for model in catalog.models}
    for name, where in _names(metadata, filename):
        hits = [m for m in catalog.models if name in keys[m.id]]
        if len(hits) == 1:
            return CatalogMatch(hits[0], f"matched by name ({where}: {name})", False)
    return None
