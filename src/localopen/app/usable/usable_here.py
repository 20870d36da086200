"""Usable here: the one home of the product's question, per model and per file: how open, does it
fit here, is it usable here. Explore, the CLI's `catalog` and `info`, the summary, the Hub search's
rows (app/hub_search) and the machine line all ask here.

Every answer starts from one `MachineSnapshot` of what this machine knows (its profile, the
installed files, the probed files, the calibration), read once per refresh, off any UI thread.
The usable-here verdict says how it was obtained: measured where this machine has measured the
installed file (a benchmark, or a load that failed), else probed where the Hub file was probed
here before a download, else shared where the open index holds records of the exact file (by
sha256) from machines like this one, else predicted from the file's shape and this machine's
calibration. A remote record never overrides a measurement made here, nor the fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localopen.app.context import AppContext
from localopen.app.conversation import vision
from localopen.app.index import read as index_reader
from localopen.app.measure import calibration as calibrations
from localopen.app.models import library
from localopen.core.estimate import verdict as verdicts
from localopen.core.estimate.budget import Budget
from localopen.core.estimate.inputs import (
    DEFAULT_CTX,
    catalog_features,
    catalog_fit,
    catalog_shape,
    file_features,
    file_fit,
)
from localopen.core.estimate.memory import FitVerdict, ModelShape, cache_args
from localopen.core.estimate.speed import Calibration, Features
from localopen.core.gguf.files import matches_quant, model_name
from localopen.core.gguf.header import GGUFHeader
from localopen.core.index.likeness import SharedSpeed, shared_speed
from localopen.core.index.trust import Checked
from localopen.core.machine.devices import devices
from localopen.core.machine.hardware import HardwareProfile
from localopen.core.openness.catalog import CatalogModel, Quant
from localopen.core.openness.grade import Evidence, Grade, evidence_from_header, grade
from localopen.core.openness.recognise import CatalogMatch, match_file
from localopen.core.report.result_record import MachineClass
from localopen.core.store import library_db as core_library
from localopen.core.store import measurements as usability
from localopen.core.store import presets as preset_store
from localopen.core.store.hashing import known_sha256
from localopen.core.store.library_db import LibraryModel, read_part_headers

GOOD_BANDS = ("fluent", "comfortable")
FITTING = ("fits_gpu", "fits_ram")


@dataclass(frozen=True)
class MachineSnapshot:
    """What this machine knows that the verdicts need: read once per refresh (SQLite and files), never
    once per row, and never on a UI thread."""

    profile: HardwareProfile | None
    n_ctx: int  # the context the fit is computed for
    machine_id: str
    installed: dict[str, LibraryModel]  # by repository
    probed: dict[str, list[str]]  # probed Hub file names by repository
    calibration: Calibration | None
    cache: dict[str, Any] = field(default_factory=cache_args)  # the KV cache the fit is computed for
    # Installed models' presets by name, and what the caller asked (context, cache type, flash
    # attention; None: not asked): an installed model's fit follows its preset unless asked.
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    asked: tuple[int | None, str | None, bool | None] = (None, None, None)
    budget: Budget = field(default_factory=Budget)  # the share of memory models may take
    index: dict[str, Checked] = field(default_factory=dict)  # the open index's cached records, by sha256

    def shared_speed(self, sha256: str, fit: FitVerdict | None) -> SharedSpeed | None:
        """What the open index says of this file on machines like this one (None: nothing, or it
        does not fit here: a remote record never answers for memory)."""
        checked = self.index.get(sha256) if sha256 else None
        if checked is None or self.profile is None or (fit is not None and fit.code == "no_fit"):
            return None
        gpu = self.profile.gpus[0].name if fit is not None and fit.code == "fits_gpu" and self.profile.gpus else None
        return shared_speed(checked, MachineClass.of(self.profile, "CPU", ""), gpu)

    def fit_settings(self, model: str | None) -> tuple[int, dict[str, Any]]:
        """The context and KV cache a model's fit is computed for: what the caller asked, else the
        model's preset, else the settings."""
        preset = self.presets.get(model or "")
        if not preset:
            return self.n_ctx, self.cache
        n_ctx, kv, fa = self.asked
        kv = kv or preset.get("kv_cache_type") or self.cache["type_k"]
        fa = fa if fa is not None else preset.get("flash_attn", self.cache["flash_attn"])
        return n_ctx or preset.get("n_ctx") or self.n_ctx, cache_args(kv, fa)

    @classmethod
    def read(
        cls,
        ctx: AppContext,
        profile: HardwareProfile | None = None,
        n_ctx: int | None = None,
        kv_cache_type: str | None = None,
        flash_attn: bool | None = None,
    ) -> MachineSnapshot:
        """`kv_cache_type`, `flash_attn`: the fit for these (None: the settings)."""
        profile = profile or ctx.profile
        machine_id = profile.fingerprint if profile is not None else ctx.machine_id()
        return cls(
            profile,
            n_ctx or ctx.settings.n_ctx,
            machine_id,
            library.installed_by_repo(ctx),
            usability.probed_files(ctx.db, machine_id),
            calibrations.current(ctx),
            cache_args(
                kv_cache_type or ctx.settings.kv_cache_type,
                ctx.settings.flash_attn if flash_attn is None else flash_attn,
            ),
            {p.model: p.settings for p in preset_store.all_presets(ctx.db)},
            (n_ctx, kv_cache_type, flash_attn),
            ctx.settings.budget,
            index_reader.cached(ctx),
        )


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


def verdict(
    ctx: AppContext,
    here: MachineSnapshot,
    fit: FitVerdict | None,
    installed: LibraryModel | None,
    probe: usability.MeasuredSpeed | None = None,
    features: Features | None = None,
    embeds: bool = False,
    sha256: str = "",
) -> verdicts.Verdict | None:
    """Measured beats probed beats shared beats predicted; an embedding model is judged by how fast it reads."""
    found = _verdict(ctx, here, fit, installed, probe, features, sha256)
    return verdicts.for_embeddings(found, ctx.thresholds) if embeds and found is not None else found


def _verdict(
    ctx: AppContext,
    here: MachineSnapshot,
    fit: FitVerdict | None,
    installed: LibraryModel | None,
    probe: usability.MeasuredSpeed | None,
    features: Features | None,
    sha256: str,
) -> verdicts.Verdict | None:
    if installed is not None:
        measured = library.verdict_of(ctx, installed, here.profile)
        if measured is not None:
            return measured
    if probe is not None:
        return verdicts.probed(probe.tg_tps, probe.pp_tps, ctx.thresholds)
    shared = here.shared_speed(sha256, fit)
    if shared is not None:
        return verdicts.shared(shared.tg_tps, shared.pp_tps, ctx.thresholds, shared.describe(), shared.machines)
    if fit is None:
        return None
    speed = None
    if here.calibration is not None and features is not None and features.weight_bytes:
        predicted = here.calibration.predict(features)
        speed = (predicted.tg_tps, predicted.pp_tps)
    busy = here.calibration is not None and bool(here.calibration.busy)
    return verdicts.predicted(fit, ctx.thresholds, speed, busy)


def _probe_of(
    ctx: AppContext, here: MachineSnapshot, model: CatalogModel, quant: Quant
) -> usability.MeasuredSpeed | None:
    """The newest probe here of this catalog file (by its Hub name, or its sha256 when known)."""
    if here.profile is None:
        return None
    names = [name for name in here.probed.get(model.gguf_repo, []) if matches_quant(name, quant.pattern)]
    if not names and not quant.sha256:
        return None
    return usability.latest_probe(ctx.db, here.machine_id, model.gguf_repo, names, quant.sha256 or "")


def quant_rows(ctx: AppContext, here: MachineSnapshot, model: CatalogModel) -> list[QuantRow]:
    """Every file of a catalog model: its fit and usable-here verdict."""
    installed = here.installed.get(model.gguf_repo)
    rows = []
    for q in model.quants:
        mine = installed if installed is not None and installed.quant == q.type else None
        n_ctx, cache = here.fit_settings(mine.name if mine else None)
        fit = catalog_fit(model, here.profile, q, n_ctx, cache, here.budget) if here.profile else None
        probe = _probe_of(ctx, here, model, q)
        features = catalog_features(model, q)
        answer = verdict(ctx, here, fit, mine, probe, features, model.kind == "embedding", q.sha256 or "")
        rows.append(QuantRow(q, fit, answer))
    return rows


def catalog_row(ctx: AppContext, here: MachineSnapshot, model: CatalogModel) -> CatalogRow:
    """A catalog model as the product's question asks it: its recommended file, or the one installed."""
    quant = model.recommended
    installed = here.installed.get(model.gguf_repo)
    n_ctx, cache = here.fit_settings(installed.name if installed else None)
    fit = catalog_fit(model, here.profile, n_ctx=n_ctx, cache=cache, budget=here.budget) if here.profile else None
    probe = _probe_of(ctx, here, model, quant)
    features = catalog_features(model, quant)
    answer = verdict(ctx, here, fit, installed, probe, features, model.kind == "embedding", quant.sha256 or "")
    return CatalogRow(model, quant, fit, answer, installed)


def catalog_rows(ctx: AppContext, here: MachineSnapshot) -> list[CatalogRow]:
    return [catalog_row(ctx, here, m) for m in ctx.catalog.models]


# The cache types a person would weigh: f16 (llama.cpp's default), and the two quantized ones
# (with flash attention, which a quantized V cache needs).
CACHE_CHOICES = (("f16", False), ("q8_0", True), ("q4_0", True))


def largest_contexts(
    here: MachineSnapshot, shape: ModelShape, max_ctx: int, projector_bytes: int = 0
) -> dict[str, int | None]:
    """The largest context that fits this machine for each KV-cache type (None: not even 256 tokens)."""
    if here.profile is None:
        return {}
    room = here.budget.best_room(devices(here.profile))
    return {
        name: here.budget.largest_context(shape, room, max_ctx, projector_bytes=projector_bytes, **cache_args(name, fa))
        for name, fa in CACHE_CHOICES
    }


def catalog_largest_contexts(here: MachineSnapshot, model: CatalogModel) -> dict[str, int | None]:
    return largest_contexts(here, catalog_shape(model, model.recommended), model.context_length)


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
    match: CatalogMatch | None = None  # the catalog model it is recognised as: its curated grade applies
    largest_context: dict[str, int | None] = field(default_factory=dict)  # by KV-cache type
    cache: dict[str, Any] = field(default_factory=cache_args)  # the KV cache its fit is for (its preset's)


def file_row(ctx: AppContext, here: MachineSnapshot, path: Path) -> FileRow:
    """A local file (disk work). Raises GGUFError in plain words for a file that is not a readable GGUF."""
    headers = read_part_headers(path)
    header, total = headers[0], sum(h.tensor_bytes for h in headers)
    evidence = evidence_from_header(header.metadata, ctx.catalog.evidence_by_repo())
    n_ctx, cache = here.fit_settings(model_name(path.name))
    projector = vision.pairing(path).facts  # a vision model's projector loads beside it: its memory counts
    sized = {**cache, "projector_bytes": projector.file_size} if projector is not None else cache
    fit = file_fit(header, here.profile, n_ctx, total, sized, here.budget) if here.profile else None
    installed = core_library.get(ctx.db, str(path.resolve()))
    probe = None
    if installed is not None and installed.repo and installed.expected_sha256 and here.profile is not None:
        probe = usability.latest_probe(
            ctx.db, here.machine_id, installed.repo, [installed.filename], installed.expected_sha256
        )
    sha = known_sha256(ctx.db, path)
    answer = verdict(ctx, here, fit, installed, probe, file_features(header, total), header.embeds_only, sha or "")
    known = match_file(ctx.catalog, header.metadata, path.name, sha)
    largest = largest_contexts(
        here,
        ModelShape.from_header(header, total),
        header.context_length or DEFAULT_CTX,
        projector.file_size if projector is not None else 0,
    )
    if known is not None:
        return FileRow(header, known.model.evidence, known.model.grade, fit, answer, known, largest, cache)
    return FileRow(header, evidence, grade(evidence, provisional=True), fit, answer, None, largest, cache)
