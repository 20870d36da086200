"""The library as the faces list it: every installed model with its grade, its verdict here and
what it can do (its template's capabilities and the agent check). Above app/models/library.py, which
the capability checks themselves use."""

from __future__ import annotations

from dataclasses import dataclass

from localopen.app.context import AppContext
from localopen.app.conversation import capabilities
from localopen.app.conversation.capabilities import Capabilities
from localopen.app.models import library
from localopen.core.estimate.verdict import Verdict
from localopen.core.gguf.header import GGUFError
from localopen.core.machine.hardware import HardwareProfile
from localopen.core.openness.grade import Grade
from localopen.core.openness.recognise import CatalogMatch
from localopen.core.store import library_db as core_library
from localopen.core.store.library_db import LibraryModel


@dataclass
class LibraryEntry:
    model: LibraryModel
    grade: Grade | None  # None: the file is missing or damaged
    verdict: Verdict | None  # from what happened on this machine; None: not measured yet
    problem: str | None = None  # why the file cannot be used (truncated, not a GGUF, ...)
    capabilities: Capabilities | None = None  # from its chat template and the agent check here
    match: CatalogMatch | None = None  # a file from elsewhere recognised as a catalog model

    @property
    def badge(self) -> str:
        if self.model.missing:
            return "?"
        return self.grade.badge if self.grade else "damaged"


def entries(ctx: AppContext, profile: HardwareProfile | None = None) -> list[LibraryEntry]:
    """Every library model with grade and verdict (reads headers of new files: disk work)."""
    profile = profile or ctx.profile
    out = []
    for m in core_library.list_models(ctx.db):
        checked = None if m.missing else library.header_facts(ctx, m.path)
        caps, match = None, None
        if checked is None or isinstance(checked, GGUFError):
            grade_here, problem = None, (str(checked) if checked is not None else None)
        else:
            # A catalog repo's file is that model; another file may be recognised as one (once).
            curated = ctx.catalog.get(m.repo) if m.repo else None
            match = None if curated is not None else library.recognised(ctx, m)
            curated = curated or (match.model if match is not None else None)
            grade_here, problem = curated.grade if curated is not None else checked[0], None
            caps = capabilities.of_file(ctx, m.path, checked[1])
        out.append(LibraryEntry(m, grade_here, library.verdict_of(ctx, m, profile), problem, caps, match))
    return out
