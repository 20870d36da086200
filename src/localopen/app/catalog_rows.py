"""The catalog as the product's question asks it: per model, how open, does it fit here, is it usable
here. Explore, the CLI's `catalog` and `info`, the summary and the machine line all use these rows.

The usable-here verdict says how it was obtained: measured where this machine has measured the
installed file (a benchmark, or a load that failed), else probed where the Hub file was probed
here before a download, else predicted from the file's shape and this machine's calibration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from localopen.app import calibration as calibrations
from localopen.app import library
from localopen.app.context import AppContext
from localopen.core.estimate import verdict as verdicts
from localopen.core.estimate.inputs import catalog_features, catalog_fit, file_features, file_fit
from localopen.core.estimate.memory import FitVerdict
from localopen.core.estimate.speed import Calibration, Features
from localopen.core.gguf.files import matches_quant
from localopen.core.gguf.header import GGUFHeader
from localopen.core.machine.hardware import HardwareProfile
from localopen.core.openness.catalog import CatalogModel, Quant
from localopen.core.openness.grade import Evidence, Grade, evidence_from_header, grade
from localopen.core.store import library_db as core_library
from localopen.core.store import measurements as usability
from localopen.core.store.library_db import LibraryModel, read_part_headers

GOOD_BANDS = ("fluent", "comfortable")
FITTING = ("fits_gpu", "fits_ram")


@dataclass
class QuantRow:
    quant: Quant
    fit: FitVerdict | None  # None until this machine is read
    verdict: verdicts.Verdict | None = None


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
    ctx: AppContext,
    fit: FitVerdict | None,
    installed: LibraryModel | None,
    profile: HardwareProfile | None,
    probe: usability.Measured | None = None,
    features: Features | None = None,
    calibration: Calibration | None = None,
) -> verdicts.Verdict | None:
    """Measured beats probed beats predicted."""
    if installed is not None:
        measured = library.verdict_of(ctx, installed, profile)
        if measured is not None:
            return measured
    if probe is not None:
        return verdicts.probed(probe.tg_tps, probe.pp_tps, ctx.thresholds)
    if fit is None:
        return None
    speed = None
    if calibration is not None and features is not None and features.weight_bytes:
        predicted = calibration.predict(features)
        speed = (predicted.tg_tps, predicted.pp_tps)
    return verdicts.predicted(fit, ctx.thresholds, speed)


def _probe_of(
    ctx: AppContext, model: CatalogModel, quant: Quant, profile: HardwareProfile | None, probed: list[str]
) -> usability.Measured | None:
    """The newest probe here of this catalog file (by its Hub name, or its sha256 when known)."""
    if profile is None:
        return None
    names = [name for name in probed if matches_quant(name, quant.pattern)]
    if not names and not quant.sha256:
        return None
    return usability.latest_probe(ctx.db, ctx.machine_id(), model.gguf_repo, names, quant.sha256 or "")


def quant_rows(
    ctx: AppContext, model: CatalogModel, profile: HardwareProfile | None = None, n_ctx: int | None = None
) -> list[QuantRow]:
    profile = profile or ctx.profile
    ctx_size = context_size(ctx, n_ctx)
    calibration = calibrations.current(ctx)
    probed = usability.probed_files(ctx.db, ctx.machine_id()).get(model.gguf_repo, [])
    installed = library.installed_by_repo(ctx).get(model.gguf_repo)
    rows = []
    for q in model.quants:
        fit = catalog_fit(model, profile, q, ctx_size) if profile else None
        mine = installed if installed is not None and installed.quant == q.type else None
        probe = _probe_of(ctx, model, q, profile, probed)
        verdict = usable_here(ctx, fit, mine, profile, probe, catalog_features(model, q), calibration)
        rows.append(QuantRow(q, fit, verdict))
    return rows


def catalog_row(
    ctx: AppContext,
    model: CatalogModel,
    profile: HardwareProfile | None = None,
    n_ctx: int | None = None,
    installed: dict[str, LibraryModel] | None = None,
    calibration: Calibration | None = None,
    probed: dict[str, list[str]] | None = None,
) -> CatalogRow:
    profile = profile or ctx.profile
    installed = library.installed_by_repo(ctx) if installed is None else installed
    calibration = calibration or calibrations.current(ctx)
    probed = usability.probed_files(ctx.db, ctx.machine_id()) if probed is None else probed
    quant = model.recommended
    fit = catalog_fit(model, profile, n_ctx=context_size(ctx, n_ctx)) if profile else None
    here = installed.get(model.gguf_repo)
    probe = _probe_of(ctx, model, quant, profile, probed.get(model.gguf_repo, []))
    verdict = usable_here(ctx, fit, here, profile, probe, catalog_features(model, quant), calibration)
    return CatalogRow(model, quant, fit, verdict, here)


def catalog_rows(ctx: AppContext, profile: HardwareProfile | None = None, n_ctx: int | None = None) -> list[CatalogRow]:
    installed = library.installed_by_repo(ctx)
    calibration = calibrations.current(ctx)
    probed = usability.probed_files(ctx.db, ctx.machine_id())
    return [catalog_row(ctx, m, profile, n_ctx, installed, calibration, probed) for m in ctx.catalog.models]


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
    probe = None
    if installed is not None and installed.repo and installed.expected_sha256 and profile is not None:
        probe = usability.latest_probe(
            ctx.db, ctx.machine_id(), installed.repo, [installed.filename], installed.expected_sha256
        )
    verdict = usable_here(ctx, fit, installed, profile, probe, file_features(header, total), calibrations.current(ctx))
    return FileRow(header, evidence, grade(evidence, provisional=True), fit, verdict)
