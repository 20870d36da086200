"""The catalog checked against the Hub: what one entry says of its GGUF repository (the offered
quantizations' file patterns, the files recorded as seen with their sizes and sha256, the licence
tag) against what the repository holds now. Pure: the Hub's answer comes in as RepoFacts (core/hub/client)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from localopen.core.gguf.files import is_first_part, is_projector_name, matches_quant
from localopen.core.hub.client import RemoteFile, RepoFacts

# The kinds of drift, in the order they are printed.
KINDS = ("unreachable", "gated", "licence", "pattern", "gone", "changed", "new quantization")


@dataclass(frozen=True)
class Drift:
    """One difference between an entry and its repository, in words."""

    model_id: str
    kind: str
    words: str


@dataclass
class Audit:
    drifts: list[Drift] = field(default_factory=list)
    checked: int = 0  # entries whose repository answered

    def of_kind(self, kind: str) -> list[Drift]:
        return [d for d in self.drifts if d.kind == kind]


def _model_files(facts: RepoFacts) -> list[RemoteFile]:
    """The repository's GGUF model files (a vision projector is no model file)."""
    return [f for f in facts.files if f.filename.lower().endswith(".gguf") and not is_projector_name(f.filename)]


def audit_entry(raw: dict[str, Any], facts: RepoFacts) -> list[Drift]:
    """Every way the entry `raw` (a catalog.json model) differs from its repository's `facts`."""
    model_id = raw["id"]
    out: list[Drift] = []

    def say(kind: str, words: str) -> None:
        out.append(Drift(model_id, kind, words))

    if facts.gated:
        say("gated", f"{facts.repo} is gated ({facts.gated}): a download needs a Hugging Face token and accepted terms")
    recorded = raw.get("gguf_repo_license")
    if facts.license != recorded:
        said = f"'{recorded}'" if recorded else "none recorded"
        now = f"'{facts.license}'" if facts.license else "no licence tag"
        say("licence", f"{facts.repo} has {now} on the Hub; the catalog says {said}")
    files = _model_files(facts)
    by_name = {f.filename: f for f in files}
    for q in raw["quants"]:
        if not any(matches_quant(f.filename, q["pattern"]) for f in files):
            say("pattern", f"{q['type']}: the pattern {q['pattern']} matches no file of {facts.repo}")
    seen = raw.get("files_seen") or {}
    sizes, hashes = seen.get("sizes") or {}, seen.get("sha256") or {}
    for name in seen.get("names") or []:
        hub = by_name.get(name)
        if hub is None:
            say("gone", f"{name} is no longer in {facts.repo}")
            continue
        if name in sizes and hub.size is not None and sizes[name] != hub.size:
            say("changed", f"{name} is {hub.size:,} bytes now; the catalog recorded {sizes[name]:,}")
        elif name in hashes and hub.sha256 and hashes[name] != hub.sha256:
            say("changed", f"{name}'s sha256 is {hub.sha256[:12]}… now; the catalog recorded {hashes[name][:12]}…")
    offered = {q["type"].upper() for q in raw["quants"]}
    new: dict[str, list[str]] = {}
    for f in files:
        quant = f.quant
        if quant is not None and quant.upper() not in offered and is_first_part(f.filename):
            new.setdefault(quant, []).append(f.filename)
    for quant, names in sorted(new.items()):
        say("new quantization", f"{quant} is offered in {facts.repo} ({names[0]}) but not by the catalog")
    return out


def seen_record(raw: dict[str, Any], facts: RepoFacts, today: str) -> dict[str, Any]:
    """The entry's files_seen as the Hub shows it today: the names, sizes and sha256 of the files
    its quantizations' patterns match, and the offered quantizations no file matches."""
    files = _model_files(facts)
    names: list[str] = []
    unseen: list[str] = []
    for q in raw["quants"]:
        hits = [f.filename for f in files if matches_quant(f.filename, q["pattern"])]
        names.extend(n for n in hits if n not in names)
        if not hits:
            unseen.append(q["type"])
    by_name = {f.filename: f for f in files}
    record: dict[str, Any] = {
        "names": names,
        "sizes": {n: by_name[n].size for n in names if by_name[n].size is not None},
        "sha256": {n: by_name[n].sha256 for n in names if by_name[n].sha256},
        "source": f"https://huggingface.co/api/models/{facts.repo}?blobs=true (revision {facts.revision})",
        "read": today,
        "note": "read from the Hub's file list by `localopen refresh --audit --write-seen`",
    }
    if unseen:
        record["unseen"] = unseen
    return record
