"""Hub search with provisional grades: GGUF repositories outside the catalog, graded from their
model cards alone (the lineage rule reaches through bases the catalog knows), each with a
usable-here verdict: measured where a file of it is installed here, probed where one was probed
here, else predicted from the Hub's parameter count for the file a newcomer would pick. An
installed or probed file's size and fit are its own (read from its header), not estimates."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from localopen.app.context import AppContext
from localopen.app.measure import probed_headers
from localopen.app.models.grading import grade_card
from localopen.app.models.pull import DEFAULT_QUANT
from localopen.app.usable import usable_here
from localopen.app.usable.usable_here import MachineSnapshot
from localopen.core.estimate.inputs import file_features, file_fit, params_features, params_fit
from localopen.core.estimate.memory import FitVerdict
from localopen.core.estimate.speed import Features
from localopen.core.estimate.verdict import Verdict
from localopen.core.gguf.files import is_gguf, is_projector_name, quant_of
from localopen.core.gguf.header import GGUFError
from localopen.core.gguf.quant import estimate_file_bytes
from localopen.core.openness.grade import Grade
from localopen.core.store import measurements as usability
from localopen.core.store.library_db import LibraryModel

log = logging.getLogger("localopen.hub_search")

# The file a newcomer downloads first when a repository offers several: what `pull` fetches by
# default, else the nearest sizes to it.
PREFERRED_QUANTS = (DEFAULT_QUANT, "Q4_K_S", "IQ4_XS", "Q4_0", "Q5_K_M", "Q6_K", "Q8_0")


@dataclass
class HubResult:
    repo: str
    grade: Grade  # provisional
    quants: list[str]  # quantizations offered as .gguf files
    downloads: int | None
    likes: int | None
    last_modified: str | None
    info: dict[str, Any]  # model_info as JSON-like data
    params: int | None = None  # the Hub's count from the GGUF header (gguf.total)
    quant: str | None = None  # the file the size, fit and prediction are for
    size_bytes: int | None = None
    size_estimate: bool = True  # parameters x bits per weight; False: the installed or probed file's own
    fit: FitVerdict | None = None
    verdict: Verdict | None = None

    @property
    def vision(self) -> bool:
        """The repository publishes a vision projector (an mmproj file): its model sees images."""
        return any(is_gguf(f) and is_projector_name(f) for f in self.info.get("files", []))

    @property
    def params_b(self) -> float | None:
        return round(self.params / 1e9, 2) if self.params else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.repo,
            "downloads": self.downloads,
            "likes": self.likes,
            "last_modified": self.last_modified,
            "quants": self.quants,
            "vision": self.vision,
            "params_b": self.params_b,
            "quant": self.quant,
            "size_bytes": self.size_bytes,
            "size_estimate": self.size_estimate,
            "fit": self.fit.code if self.fit else None,
            "usable_here": self.verdict.to_dict() if self.verdict else None,
            **self.grade.to_dict(),
        }


def pick_quant(quants: list[str]) -> str | None:
    return next((q for q in PREFERRED_QUANTS if q in quants), quants[0] if quants else None)


@dataclass
class HubQuantRow:
    """One quantization a Hub repository offers, as this machine sees it."""

    quant: str
    size_bytes: int | None
    size_estimate: bool  # from the parameter count; False: the installed or probed file's own size
    fit: FitVerdict | None
    verdict: Verdict | None


def search_hub(ctx: AppContext, query: str, sort: str = "downloads", limit: int = 20) -> list[HubResult]:
    """Raises HubError (OfflineError when offline) in plain words."""
    results = []
    for info in ctx.hub().search(query, sort=sort, limit=limit):
        files = [f for f in info["files"] if is_gguf(f) and not is_projector_name(f)]  # a projector is no quant
        quants = sorted({q for f in files if (q := quant_of(f))})
        total = (info.get("gguf") or {}).get("total")
        results.append(
            HubResult(
                info["id"],
                grade_card(ctx, info)[1],
                quants,
                info.get("downloads"),
                info.get("likes"),
                info.get("lastModified"),
                info,
                params=total if isinstance(total, int) and total > 0 else None,
                quant=pick_quant(quants),
            )
        )
    assess(ctx, results)
    return results


def assess(ctx: AppContext, results: list[HubResult], here: MachineSnapshot | None = None) -> None:
    """Size, fit and usable-here of each result's pick on this machine as it stands now (a probe,
    a download or a benchmark since the search changes them; no network, but disk: off UI threads)."""
    here = here or MachineSnapshot.read(ctx)
    for r in results:
        row = _quant_row(ctx, here, r, r.quant) if r.quant else HubQuantRow("", None, True, None, None)
        r.size_bytes, r.size_estimate, r.fit, r.verdict = row.size_bytes, row.size_estimate, row.fit, row.verdict


def quant_rows(ctx: AppContext, here: MachineSnapshot, result: HubResult) -> list[HubQuantRow]:
    return [_quant_row(ctx, here, result, q) for q in result.quants]


def _quant_row(ctx: AppContext, here: MachineSnapshot, result: HubResult, quant: str) -> HubQuantRow:
    """Measured where this file of the repository is installed here, probed where it was probed
    here, else predicted from the Hub's parameter count (nothing without one). Size and fit are
    the file's own where it is installed or was probed (its header is kept), else estimates."""
    installed = here.installed.get(result.repo)
    if installed is not None and installed.quant == quant:
        row = _installed_row(ctx, here, installed, quant)
        if row is not None:
            return row
    params, profile = result.params, here.profile
    names = [n for n in here.probed.get(result.repo, []) if quant_of(n) == quant]
    probe = usability.latest_probe(ctx.db, here.machine_id, result.repo, names) if profile and names else None
    kept = next((h for n in names if (h := probed_headers.recall(ctx, result.repo, n)) is not None), None)
    size: int | None
    features: Features | None
    if kept is not None:
        size, features = kept.file_size, file_features(kept.header, kept.tensor_bytes)
        fit = file_fit(kept.header, profile, here.n_ctx, kept.tensor_bytes, budget=here.budget) if profile else None
    else:
        size = estimate_file_bytes(params, quant) if params else None
        features = params_features(params, quant) if params else None
        fit = params_fit(params, quant, profile, here.n_ctx, here.budget) if params and profile else None
    verdict = usable_here.verdict(ctx, here, fit, None, probe, features)
    if verdict is not None and verdict.predicted and kept is None:
        verdict = dataclasses.replace(
            verdict,
            reason=f"{verdict.reason} (for {quant}, from the Hub's parameter count; the file's exact shape "
            "is known once probed)",
        )
    return HubQuantRow(quant, size, kept is None, fit, verdict)


def _installed_row(ctx: AppContext, here: MachineSnapshot, installed: LibraryModel, quant: str) -> HubQuantRow | None:
    """The installed file as the library sees it: its size, its header's fit, its measured (or
    header-predicted) verdict. None where the file cannot be read (moved, deleted, damaged): the
    row then falls back to the Hub's figures, and the library says what is wrong with the file."""
    try:
        row = usable_here.file_row(ctx, here, installed.path)
    except (GGUFError, OSError) as exc:
        log.warning("Hub row for %s: the installed file was not read (%s)", installed.path, exc)
        return None
    return HubQuantRow(quant, installed.size or row.header.file_size, False, row.fit, row.verdict)
