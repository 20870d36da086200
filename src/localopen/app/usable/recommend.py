"""The first screen's answer: open models that are usable systems here, the most open first.

A recommendation is a catalog chat model whose recommended file fits this machine and whose
usable-here verdict is fluent, comfortable or readable; they are ordered by openness grade (A
first, then transparency), then by the usable-here band, then by how the band is known (measured
beats probed beats predicted), then the larger model first (more capable, and usable anyway).
Every face (the Start view, `localopen recommend`) shows this same list; nothing here is Qt's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from localopen.app.context import AppContext
from localopen.app.conversation import capabilities
from localopen.app.usable.usable_here import CatalogRow, MachineSnapshot, catalog_rows
from localopen.core.estimate import verdict as verdicts
from localopen.core.estimate.memory import human_bytes
from localopen.core.openness.grade import in_one_line

USABLE_BANDS = ("fluent", "comfortable", "readable")


@dataclass(frozen=True)
class Recommendation:
    id: str
    repo: str
    quant: str
    pattern: str  # the recommended file, as a download names it
    grade: str  # "A · T3"
    letter: str
    band: str
    basis: str  # measured | probed | shared | predicted
    reason: str
    size_bytes: int | None
    can: tuple[str, ...]  # thinking, tools (when known from a template)
    installed_path: str | None  # set when the file is in the library: chat at once
    label: str  # the band with its basis as every face shows it ("comfortable (3 like this)")
    basis_words: str = ""  # how the verdict is known, in words (core/estimate/verdict.py)
    openness: str = ""  # the grade's evidence in one line (core/openness/grade.in_one_line)

    @property
    def size_text(self) -> str:
        return human_bytes(self.size_bytes) if self.size_bytes else "size unknown"

    @property
    def summary(self) -> str:
        """One line: how usable, how known, how big, what it can do."""
        can = f" · {', '.join(self.can)}" if self.can else ""
        return f"{self.label} · {self.size_text}{can}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "repo": self.repo,
            "quant": self.quant,
            "grade": self.letter,
            "badge": self.grade,
            "band": self.band,
            "basis": self.basis,
            "basis_words": self.basis_words,
            "reason": self.reason,
            "size_bytes": self.size_bytes,
            "capabilities": list(self.can),
            "installed": self.installed_path is not None,
        }


def _order(row: CatalogRow) -> tuple[str, int, int, int, float]:
    grade, verdict = row.model.grade, row.verdict
    assert verdict is not None
    return (
        grade.letter,
        -grade.transparency,
        USABLE_BANDS.index(verdict.band),
        verdicts.BASES.index(verdict.basis) if verdict.basis in verdicts.BASES else len(verdicts.BASES),
        -row.model.params_b,
    )


def recommend(ctx: AppContext, here: MachineSnapshot | None = None, limit: int = 6) -> list[Recommendation]:
    """The open chat models usable here, the most open first (at most `limit`)."""
    here = here or MachineSnapshot.read(ctx)
    usable = [
        r
        for r in catalog_rows(ctx, here)
        if r.model.kind == "chat" and r.fits and r.verdict is not None and r.verdict.band in USABLE_BANDS
    ]
    out = []
    for row in sorted(usable, key=_order)[:limit]:
        assert row.verdict is not None
        found = capabilities.of_repo(ctx, here, row.model.gguf_repo)
        sees = row.model.vision is not None or (found is not None and found.vision is not None)
        can = tuple(
            c
            for c, on in (("thinking", found and found.reasoning), ("tools", found and found.tools), ("images", sees))
            if on
        )
        installed = row.installed
        out.append(
            Recommendation(
                id=row.model.id,
                repo=row.model.gguf_repo,
                quant=row.quant.type,
                pattern=row.quant.pattern,
                grade=row.model.grade.badge,
                letter=row.model.grade.letter,
                band=row.verdict.band,
                basis=row.verdict.basis,
                reason=row.verdict.reason,
                size_bytes=installed.size if installed is not None and installed.size else row.quant.size_bytes,
                can=can,
                installed_path=str(installed.path) if installed is not None and not installed.missing else None,
                basis_words=row.verdict.basis_words,
                label=row.verdict.label,
                openness=in_one_line(row.model.evidence),
            )
        )
    return out
