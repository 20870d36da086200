"""The catalog as the product's question asks it: per model, how open, does it fit here, is it usable
here. Explore, the CLI's `catalog` and `info`, the summary and the machine line all use these rows.

The usable-here verdict is measured where this machine has measured the installed file (a
benchmark, or a load that failed), else predicted from the fit estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from localopen.app import library
from localopen.app.context import AppContext
from localopen.core import library as core_library
from localopen.core import verdict as verdicts
from localopen.core.catalog import CatalogModel, Quant
from localopen.core.fit import FitVerdict
from localopen.core.gguf_header import GGUFHeader
from localopen.core.hardware import HardwareProfile
from localopen.core.library import LibraryModel, read_part_headers
from localopen.core.model_fit import catalog_fit, file_fit
from localopen.core.openness import Evidence, Grade, evidence_from_header, grade

GOOD_BANDS = ("fluent", "comfortable")
FITTING = ("fits_gpu", "fits_ram")


@dataclass
class QuantRow:
    quant: Quant
    fit: FitVerdict | None  # None until this machine is read


@dataclass
class CatalogRow:
    model: CatalogModel
    quant: Quant  # the recommended file
    fit: FitVerdict | None
    verdict: verdicts.Verdict | None
    installed: LibraryModel | None

    @property
    def fits(self) -> bool:
        return self.fit is not None and self.fit.code in FITTING


@dataclass(frozen=True)
class MachineLine:
    """How the catalog looks from this machine: how many fit, how many should run well."""

    total: int
    fitting: int
    good: int


def context_size(ctx: AppContext, n_ctx: int | None = None) -> int:
    """The context the fit is computed for: an explicit choice, else the user's setting."""
    return n_ctx or ctx.settings.n_ctx


def usable_here(
    ctx: AppContext, fit: FitVerdict | None, installed: LibraryModel | None, profile: HardwareProfile | None
) -> verdicts.Verdict | None:
    """Measured beats predicted."""
    if installed is not None:
        measured = library.verdict_of(ctx, installed, profile)
        if measured is not None:
            return measured
    return verdicts.predicted(fit, ctx.thresholds) if fit is not None else None


def quant_rows(
    ctx: AppContext, model: CatalogModel, profile: HardwareProfile | None = None, n_ctx: int | None = None
) -> list[QuantRow]:
    profile = profile or ctx.profile
    ctx_size = context_size(ctx, n_ctx)
    return [QuantRow(q, catalog_fit(model, profile, q, ctx_size) if profile else None) for q in model.quants]


def catalog_row(
    ctx: AppContext,
    model: CatalogModel,
    profile: HardwareProfile | None = None,
    n_ctx: int | None = None,
    installed: dict[str, LibraryModel] | None = None,
) -> CatalogRow:
    profile = profile or ctx.profile
    installed = library.installed_by_repo(ctx) if installed is None else installed
    fit = catalog_fit(model, profile, n_ctx=context_size(ctx, n_ctx)) if profile else None
    here = installed.get(model.gguf_repo)
    return CatalogRow(model, model.recommended, fit, usable_here(ctx, fit, here, profile), here)


def catalog_rows(ctx: AppContext, profile: HardwareProfile | None = None, n_ctx: int | None = None) -> list[CatalogRow]:
    installed = library.installed_by_repo(ctx)
    return [catalog_row(ctx, m, profile, n_ctx, installed) for m in ctx.catalog.models]


def machine_line(rows: list[CatalogRow]) -> MachineLine:
    return MachineLine(
        total=len(rows),
        fitting=sum(r.fits for r in rows),
        good=sum(1 for r in rows if r.verdict and r.verdict.band in GOOD_BANDS),
    )


@dataclass
class FileRow:
    """A local .gguf file seen as the catalog sees a model: provisional grade, fit, usable here."""

    header: GGUFHeader
    evidence: Evidence
    grade: Grade
    fit: FitVerdict | None
    verdict: verdicts.Verdict | None


def file_row(ctx: AppContext, path: Path, profile: HardwareProfile | None = None, n_ctx: int | None = None) -> FileRow:
    """Raises GGUFError in plain words for a file that is not a readable GGUF."""
    profile = profile or ctx.profile
    headers = read_part_headers(path)
    header, total = headers[0], sum(h.tensor_bytes for h in headers)
    evidence = evidence_from_header(header.metadata, ctx.catalog.evidence_by_repo())
    fit = file_fit(header, profile, context_size(ctx, n_ctx), total) if profile else None
    installed = core_library.get(ctx.db, str(path.resolve()))
    return FileRow(header, evidence, grade(evidence, provisional=True), fit, usable_here(ctx, fit, installed, profile))
