"""The openness grade: rights (from the effective licence) × transparency (from evidence).

Implements docs/OPENNESS.md. `unknown` always counts as the worst value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from localopen.core.openness.licences import Rights, flags_of, normalize, rights_of

COMPONENTS = ("data_pretrain", "data_posttrain", "training_code", "report")
REPORT_KINDS = ("peer_reviewed", "preprint", "tech_report")
GRADE_LABELS = {
    "A": "Open science",
    "B": "Open source, partly reproducible",
    "C": "Open weights",
    "D": "Restricted weights",
    "E": "Non-commercial / research-only weights",
    "?": "Unrated",
}


@dataclass(frozen=True)
class LicenseSource:
    """One place a licence was found: the GGUF repo, its header, a base model, or curation."""

    license_id: str | None
    license_name: str | None = None
    origin: str = "gguf-repo"  # gguf-repo | gguf-header | base-model(n hops) | curated
    repo: str | None = None
    url: str | None = None

    @property
    def key(self) -> str:
        return normalize(self.license_id, self.license_name)


@dataclass
class Evidence:
    """The evidence record of OPENNESS.md (curated fields default to unknown)."""

    licenses: list[LicenseSource] = field(default_factory=list)
    lineage: list[str] = field(default_factory=list)
    data_pretrain: str = "unknown"
    data_posttrain: str = "unknown"
    training_code: str = "unknown"
    report: str = "unknown"
    intermediate_ckpts: str = "unknown"
    gated: bool = False
    flags: set[str] = field(default_factory=set)
    sources: dict[str, str] = field(default_factory=dict)  # fact -> URL
    curated: bool = False
    unverified_facts: list[str] = field(default_factory=list)  # curated but not yet re-checked


@dataclass
class Grade:
    letter: str
    rights: Rights
    rights_origin: str  # where the effective licence came from
    transparency: int
    provisional: bool
    flags: set[str]
    explanation: list[str]
    raise_hints: list[str]
    unverified: list[str]

    @property
    def label(self) -> str:
        return GRADE_LABELS[self.letter]

    @property
    def badge(self) -> str:
        """ "D · T3": the letter with transparency beside it, as the rubric asks."""
        return f"{self.letter} · T{self.transparency}"

    def to_dict(self, evidence: Evidence | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "grade": self.letter,
            "label": self.label,
            "rights": self.rights.label,
            "transparency": f"T{self.transparency}",
            "provisional": self.provisional,
            "license": {
                "effective": self.rights.license_key or None,
                "source": self.rights_origin,
                "reason": self.rights.reason,
            },
            "flags": sorted(self.flags),
            "explanation": self.explanation,
            "to_raise": self.raise_hints,
            "not_verified": self.unverified,
        }
        if evidence is not None:
            out["evidence"] = {
                "lineage": evidence.lineage,
                "licenses": [
                    {"license": s.key or None, "origin": s.origin, "repo": s.repo, "url": s.url}
                    for s in evidence.licenses
                ],
                **{c: getattr(evidence, c) for c in COMPONENTS},
                "intermediate_ckpts": evidence.intermediate_ckpts,
                "gated": evidence.gated,
                "sources": evidence.sources,
            }
        return out


def effective_rights(licenses: list[LicenseSource]) -> tuple[Rights, str]:
    """The most restrictive licence found anywhere; missing ones are inherited, not counted.

    An unrecognised licence counts as the worst (R0): the app never overclaims.
    """
    worst = deciding_licence(licenses)
    if worst is None:
        return rights_of(""), "none in the GGUF repo, its header or its lineage"
    return rights_of(worst.key), worst.origin


def deciding_licence(licenses: list[LicenseSource]) -> LicenseSource | None:
    """The most restrictive licence stated anywhere (None when none is)."""
    stated = [s for s in licenses if s.key]
    return min(stated, key=lambda s: rights_of(s.key).level) if stated else None


def transparency_level(ev: Evidence) -> int:
    has_report = ev.report in REPORT_KINDS
    if (
        ev.data_pretrain == "open"
        and ev.data_posttrain in ("open", "n/a")
        and ev.training_code == "open"
        and has_report
    ):
        return 3
    if ev.data_pretrain in ("open", "partial") and (ev.training_code in ("open", "partial") or has_report):
        return 2
    if has_report:
        return 1
    return 0


def letter_for(rights: int, transparency: int) -> str:
    if rights == 3:
        return "A" if transparency == 3 else "B" if transparency == 2 else "C"
    return {2: "D", 1: "E"}.get(rights, "?")


def grade(ev: Evidence, provisional: bool = False) -> Grade:
    rights, origin = effective_rights(ev.licenses)
    t = transparency_level(ev)
    letter = letter_for(rights.level, t)
    flags = set(ev.flags)
    for source in ev.licenses:
        flags |= flags_of(source.key)
    if ev.gated:
        flags.add("gated")

    explanation = [f"Licence: {rights.reason} (from {origin})."]
    explanation += [_describe(c, getattr(ev, c)) for c in COMPONENTS]
    if ev.intermediate_ckpts == "true":
        explanation.append("Intermediate training checkpoints are published.")
    unverified = [c for c in COMPONENTS if getattr(ev, c) == "unknown"]
    if unverified:
        explanation.append("Not verified (counted as closed): " + ", ".join(unverified) + ".")
    return Grade(
        letter=letter,
        rights=rights,
        rights_origin=origin,
        transparency=t,
        provisional=provisional or not ev.curated or bool(ev.unverified_facts),
        flags=flags,
        explanation=explanation,
        raise_hints=_raise_hints(rights.level, t, ev),
        unverified=unverified,
    )


_NAMES = {
    "data_pretrain": "Pre-training data",
    "data_posttrain": "Post-training (fine-tuning) data",
    "training_code": "Training code",
    "report": "Report",
}


_SHORT = {"data_pretrain": "pre-training data", "data_posttrain": "fine-tuning data", "training_code": "training code"}


def in_one_line(ev: Evidence) -> str:
    """A grade's evidence in one line (a Start card): the licence that decides it, then which parts
    of the training are published ("apache-2.0 · open: pre-training data, training code")."""
    deciding = deciding_licence(ev.licenses)
    licence = deciding.key if deciding is not None else "no licence found"
    published = [name for c, name in _SHORT.items() if getattr(ev, c) == "open"]
    partial = [name for c, name in _SHORT.items() if getattr(ev, c) == "partial"]
    parts = [str(licence)]
    if published:
        parts.append("open: " + ", ".join(published))
    if partial:
        parts.append("partly open: " + ", ".join(partial))
    if not published and not partial:
        parts.append("training data and code not published")
    return " · ".join(parts)


def _describe(component: str, value: str) -> str:
    name = _NAMES[component]
    if component == "report":
        return {
            "peer_reviewed": "Report: a peer-reviewed paper.",
            "preprint": "Report: a preprint.",
            "tech_report": "Report: a technical report.",
            "none": "Report: none published.",
        }.get(value, "Report: not verified.")
    if value == "n/a":
        return f"{name}: not applicable (base model)."
    return f"{name}: {value if value != 'unknown' else 'not verified'}."


def _raise_hints(r: int, t: int, ev: Evidence) -> list[str]:
    hints: list[str] = []
    if r == 0:
        hints.append("State a recognised licence on the model (or its base) to be graded at all.")
    elif r < 3:
        hints.append(
            "Release the weights under an OSI-approved licence (e.g. Apache-2.0 or MIT) "
            "to move above D; the letter is capped by the licence whatever the transparency."
        )
    if t < 3:
        missing = []
        if ev.data_pretrain != "open":
            missing.append("open pre-training data")
        if ev.data_posttrain not in ("open", "n/a"):
            missing.append("open post-training data")
        if ev.training_code != "open":
            missing.append("open training code")
        if ev.report not in REPORT_KINDS:
            missing.append("a published report")
        if missing:
            hints.append("For T3 (reproducible): " + ", ".join(missing) + ".")
    return hints


ARXIV_TEMPLATE_PAPER = "1910.09700"  # the model-card template's carbon paper; never evidence


def evidence_from_card(info: dict[str, Any], known_bases: dict[str, Evidence] | None = None) -> Evidence:
    """A provisional evidence record from Hub model-card data alone (model_info JSON).

    R comes from the card's licence and the licences of bases the catalog knows; T only
    from weak hints: datasets -> data partial; an arXiv tag -> preprint only when the same
    id is on the base model's record.
    """
    known_bases = known_bases or {}
    card = info.get("cardData") or info.get("card_data") or {}
    repo = info.get("id") or info.get("modelId") or "(unnamed)"
    ev = Evidence(gated=bool(info.get("gated")) and info.get("gated") != "false")
    ev.licenses.append(
        LicenseSource(
            card.get("license"),
            card.get("license_name"),
            "gguf-repo",
            repo,
            card.get("license_link") or f"https://huggingface.co/{repo}",
        )
    )
    bases = card.get("base_model") or []
    if isinstance(bases, str):
        bases = [bases]
    base_arxiv: set[str] = set()
    for base in bases:
        ev.lineage.append(base)
        known = known_bases.get(base)
        if known is None:
            continue
        # The catalog knows this base: inherit its licences one hop further down the chain.
        for source in known.licenses:
            hops = _hops(source.origin) + 1
            ev.licenses.append(
                LicenseSource(
                    source.license_id, source.license_name, f"base-model({hops})", source.repo or base, source.url
                )
            )
        ev.lineage.extend(r for r in known.lineage if r not in ev.lineage)
        base_arxiv |= {v.rsplit("/", 1)[-1] for k, v in known.sources.items() if "arxiv.org" in v}
    datasets = card.get("datasets") or []
    if datasets:
        ev.data_pretrain = "partial"
        ev.sources["data_pretrain"] = "cardData.datasets: " + ", ".join(map(str, datasets))[:200]
    tags = info.get("tags") or []
    arxiv = {t.split(":", 1)[1] for t in tags if isinstance(t, str) and t.startswith("arxiv:")}
    arxiv.discard(ARXIV_TEMPLATE_PAPER)
    confirmed = sorted(arxiv & base_arxiv)
    if confirmed:
        ev.report = "preprint"
        ev.sources["report"] = f"https://arxiv.org/abs/{confirmed[0]}"
    return ev


def _hops(origin: str) -> int:
    if origin.startswith("base-model(") and origin.endswith(")"):
        try:
            return int(origin[len("base-model(") : -1])
        except ValueError:
            return 1
    return 0


def evidence_from_header(metadata: dict[str, Any], known: dict[str, Evidence] | None = None) -> Evidence:
    """Provisional evidence from a GGUF file's own metadata (general.license, base models).

    A base model the catalog knows brings its licences along (the lineage rule).
    """
    known = known or {}
    ev = Evidence()
    lic = metadata.get("general.license")
    if lic:
        ev.licenses.append(
            LicenseSource(
                str(lic),
                metadata.get("general.license.name"),
                "gguf-header",
                None,
                metadata.get("general.license.link"),
            )
        )
    count = metadata.get("general.base_model.count")
    for i in range(count if isinstance(count, int) and 0 < count <= 16 else 0):
        url = str(metadata.get(f"general.base_model.{i}.repo_url") or "")
        org = metadata.get(f"general.base_model.{i}.organization")
        name = metadata.get(f"general.base_model.{i}.name")
        repo = (
            url.split("huggingface.co/", 1)[1].strip("/")
            if "huggingface.co/" in url
            else (f"{org}/{name}" if org and name else None)
        )
        if not repo:
            continue
        ev.lineage.append(repo)
        base = next((e for r, e in known.items() if r.lower() == repo.lower()), None)
        if base:
            ev.licenses += [
                LicenseSource(s.license_id, s.license_name, f"base-model({_hops(s.origin) + 1})", s.repo, s.url)
                for s in base.licenses
            ]
    return ev
