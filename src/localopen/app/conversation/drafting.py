"""Speculative decoding chosen by name: off, prompt lookup, or a draft model from the library; and
the installed models that could draft for a model (its tokenizer, a quarter of its size or less),
which `localopen info`, the Chat view and the benchmark suggest."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from localopen.app.context import AppContext
from localopen.app.models import library
from localopen.core.errors import LocalopenError
from localopen.core.gguf.vocabulary import could_draft_for
from localopen.core.store import library_db

log = logging.getLogger("localopen.drafting")

PLAIN = ("off", "none", "")


@dataclass(frozen=True)
class DraftCandidate:
    path: Path
    name: str
    size: int
    share: float  # its size as a share of the model's

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "path": str(self.path), "size": self.size, "share": round(self.share, 3)}


def resolve(ctx: AppContext, value: str | None) -> str | None:
    """A draft as the user names it ("lookup", "off", a library model or a file) as load options
    take it: "lookup", "off" or the draft model's path; None when none was named."""
    if value is None:
        return None
    text = value.strip()
    if text.lower() in PLAIN or text.lower() == "lookup":
        return text.lower() or "off"
    try:
        return str(library.resolve_model(ctx, text))
    except LocalopenError as exc:
        raise LocalopenError(
            f"No draft model '{text}': {exc} A draft is lookup, off, or a small model of the same family."
        ) from exc


def candidates(ctx: AppContext, path: str | Path) -> list[DraftCandidate]:
    """Installed models that could draft for the model at path, the smallest first."""
    target = Path(path)
    try:
        model_headers = library_db.read_part_headers(target)
    except LocalopenError:
        return []
    model_bytes = sum(h.tensor_bytes for h in model_headers)
    found = []
    for entry in library_db.list_models(ctx.db):
        if entry.missing or entry.path.resolve() == target.resolve():
            continue
        try:
            headers = library_db.read_part_headers(entry.path)
        except LocalopenError:
            log.info("Not a draft candidate (unreadable): %s", entry.path, exc_info=True)
            continue
        size = sum(h.tensor_bytes for h in headers)
        if could_draft_for(headers[0], size, model_headers[0], model_bytes):
            found.append(DraftCandidate(entry.path, entry.name, size, size / model_bytes))
    return sorted(found, key=lambda c: c.size)
