"""The one-page summary: which open models are usable systems on this machine, by openness grade.
The app's dialog and `localopen summary` print the same page."""

from __future__ import annotations

from localopen.app.context import AppContext
from localopen.app.conversation import capabilities
from localopen.app.models import library_listing
from localopen.app.usable import usable_here
from localopen.core.estimate.memory import human_bytes
from localopen.core.machine.hardware import HardwareProfile
from localopen.core.report import summary_page as pages
from localopen.core.report.summary_page import SummaryRow


def machine_text(profile: HardwareProfile | None) -> str:
    if profile is None:
        return "not read yet"
    return f"{profile.cpu_model}, {human_bytes(profile.ram_total)} RAM, {profile.bandwidth_gbs} GB/s"


def summary_rows(ctx: AppContext, profile: HardwareProfile | None = None) -> list[SummaryRow]:
    """Every catalog model with its verdict, then installed models outside the catalog that were
    measured here (imported files, other Hub repos)."""
    profile = profile or ctx.profile
    rows = []
    here = usable_here.MachineSnapshot.read(ctx, profile)
    for r in usable_here.catalog_rows(ctx, here):
        if r.verdict is None:
            continue
        g = r.model.grade
        caps = capabilities.of_repo(ctx, here, r.model.gguf_repo)
        rows.append(
            SummaryRow(
                r.model.id,
                g.letter,
                g.transparency,
                g.rights.license_key or "none",
                r.verdict.band,
                r.verdict.reason,
                r.verdict.basis,
                caps.short if caps else "?",
            )
        )
    seen = {r.name for r in rows}
    for entry in library_listing.entries(ctx, profile):
        m = entry.model
        if entry.verdict is None or entry.grade is None or m.name in seen or (m.repo and ctx.catalog.get(m.repo)):
            continue
        g = entry.grade
        rows.append(
            SummaryRow(
                m.name,
                g.letter,
                g.transparency,
                g.rights.license_key or "none",
                entry.verdict.band,
                entry.verdict.reason,
                entry.verdict.basis,
                entry.capabilities.short if entry.capabilities else "?",
            )
        )
    return rows


def render(ctx: AppContext, fmt: str = "markdown", profile: HardwareProfile | None = None) -> str:
    """The page as Markdown or HTML."""
    profile = profile or ctx.profile
    rows, machine = summary_rows(ctx, profile), machine_text(profile)
    return pages.to_html(rows, machine) if fmt == "html" else pages.markdown(rows, machine)
