"""The curated catalog (resources/catalog.json): loading, validation, evidence, grades."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from localopen.core.errors import LocalopenError
from localopen.core.gguf.files import matches_quant, split_part
from localopen.core.gguf.quant import estimate_file_bytes
from localopen.core.openness.grade import Evidence, Grade, LicenseSource, grade

EVIDENCE_VALUES = {
    "data_pretrain": {"open", "partial", "closed", "unknown"},
    "data_posttrain": {"open", "partial", "closed", "n/a", "unknown"},
    "training_code": {"open", "partial", "closed", "unknown"},
    "report": {"peer_reviewed", "preprint", "tech_report", "none", "unknown"},
    "intermediate_ckpts": {"true", "false", "unknown"},
}
REQUIRED: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "gguf_repo": str,
    "base_model": str,
    "family": str,
    "params_b": (int, float),
    "context_length": int,
    "license": dict,
    "lineage": list,
    "evidence": dict,
    "quants": list,
    "recommended_quant": str,
}
ARCH_FIELDS = ("n_layers", "n_embd", "n_head", "n_head_kv", "head_dim", "n_vocab")
# What a model is for, said in words wherever it is shown: only chat models are recommended for chat.
KIND_WORDS = {
    "chat": None,
    "base": "A base model: it continues text and has no chat template; it does not follow instructions or chat.",
    "embedding": (
        "An embedding model, not a chat model: it turns text into vectors for search and document chat "
        "(the server's /v1/embeddings); it writes no text."
    ),
}


class CatalogError(LocalopenError):
    """The catalog file is malformed; the message names the entry and the reason."""


@dataclass(frozen=True)
class Quant:
    type: str
    pattern: str
    size_bytes: int | None  # exact when known from the Hub or recorded in the catalog, else an estimate
    size_is_estimate: bool
    sha256: str | None = None
    from_hub: bool = False  # the Hub's own figures (a recorded size still asks the Hub when online)


@dataclass
class CatalogModel:
    raw: dict[str, Any]
    quants: list[Quant] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.raw["id"]

    @property
    def gguf_repo(self) -> str:
        return self.raw["gguf_repo"]

    @property
    def base_model(self) -> str:
        return self.raw["base_model"]

    @property
    def family(self) -> str:
        return self.raw["family"]

    @property
    def params_b(self) -> float:
        return float(self.raw["params_b"])

    @property
    def n_params(self) -> int:
        return int(self.raw["params_b"] * 1e9)

    @property
    def active_fraction(self) -> float:
        """Mixture of experts: the share of weights read per token (1.0 for dense models)."""
        active = self.raw.get("active_params_b")
        return min(1.0, active / self.raw["params_b"]) if active else 1.0

    @property
    def kind(self) -> str:
        """chat, base (completion only) or embedding; entries before the field say chat: true/false."""
        return self.raw.get("kind") or ("chat" if self.raw.get("chat") else "base")

    @property
    def kind_words(self) -> str | None:
        """What the model is, in a sentence, when it is not a chat model (None for a chat model)."""
        return KIND_WORDS[self.kind]

    @property
    def vision(self) -> dict[str, Any] | None:
        """The GGUF repository's vision projector (its mmproj file, with the page that shows it):
        a download fetches it and the model sees images. None: a text model."""
        return self.raw.get("vision")

    @property
    def mof(self) -> dict[str, Any] | None:
        """The Model Openness Framework badge (class, scope, source), when known."""
        return self.raw.get("mof")

    @property
    def osai(self) -> dict[str, Any] | None:
        """The European Open Source AI Index badge (score, scope, source), when known."""
        return self.raw.get("osai")

    def badges(self) -> list[str]:
        """The frameworks' verdicts shown beside the grade: MOF class, OSAI score, OSI status."""
        out = []
        if self.mof:
            out.append(f"MOF: {self.mof['class']} ({self.mof['scope']})")
        if self.osai:
            out.append(f"OSAI: {self.osai['percent']} % ({self.osai['scope']})")
        if self.raw.get("osi"):
            out.append(f"OSI: {self.raw['osi']['status']}")
        return out

    @property
    def context_length(self) -> int:
        return self.raw["context_length"]

    @property
    def arch(self) -> dict[str, Any] | None:
        return self.raw.get("arch")

    @property
    def notes(self) -> str | None:
        return self.raw.get("notes")

    @property
    def recommended(self) -> Quant:
        want = self.raw["recommended_quant"]
        return next((q for q in self.quants if q.type == want), self.quants[0])

    @cached_property
    def evidence(self) -> Evidence:
        return evidence_of(self.raw)

    @cached_property
    def grade(self) -> Grade:
        return grade(self.evidence)

    @property
    def license_label(self) -> str:
        lic = self.raw["license"]
        if lic.get("id") == "other" and lic.get("name"):
            return lic["name"]
        return lic.get("id") or "none"

    def matches(self, text: str) -> bool:
        needle = text.lower()
        hay = " ".join([self.id, self.gguf_repo, self.base_model, self.family, self.license_label])
        return needle in hay.lower()


def evidence_of(raw: dict[str, Any]) -> Evidence:
    """Build the OPENNESS.md evidence record from one catalog entry."""
    lic = raw["license"]
    ev = Evidence(curated=True, gated=bool(raw.get("gated_upstream")), flags=set(raw.get("flags", [])))
    repo_lic = raw.get("gguf_repo_license")
    if repo_lic:
        ev.licenses.append(
            LicenseSource(
                repo_lic, lic.get("name"), "gguf-repo", raw["gguf_repo"], f"https://huggingface.co/{raw['gguf_repo']}"
            )
        )
    for hops, parent in enumerate(raw["lineage"], start=1):
        ev.lineage.append(parent["repo"])
        ev.licenses.append(
            LicenseSource(
                parent.get("license"), parent.get("license_name"), f"base-model({hops})", parent["repo"], lic.get("url")
            )
        )
    for component in EVIDENCE_VALUES:
        item = raw["evidence"].get(component)
        if item:
            setattr(ev, component, item["value"])
            ev.sources[component] = item.get("source", "")
            if item.get("verified") is False and component != "intermediate_ckpts":
                ev.unverified_facts.append(component)
    ev.sources["license"] = lic.get("source", "")
    return ev


def _validate(index: int, raw: Any, seen: set[str]) -> list[str]:
    if not isinstance(raw, dict):
        return ["is not an object"]
    problems = []
    for key, kind in REQUIRED.items():
        if key not in raw:
            problems.append(f"misses '{key}'")
        elif not isinstance(raw[key], kind) or isinstance(raw[key], bool):
            problems.append(f"'{key}' has the wrong type ({type(raw[key]).__name__})")
    if problems:
        return problems
    if raw["id"] in seen:
        problems.append(f"repeats the id '{raw['id']}'")
    if "/" not in raw["gguf_repo"] or "/" not in raw["base_model"]:
        problems.append("'gguf_repo' and 'base_model' must be Hub ids of the form owner/name")
    if not 0 < raw["params_b"] < 2000:
        problems.append(f"'params_b' is {raw['params_b']}, not a parameter count in billions")
    if raw["context_length"] <= 0:
        problems.append("'context_length' must be positive")
    if not raw["license"].get("source"):
        problems.append("the licence has no source URL")
    if not raw["lineage"] or not all(isinstance(p, dict) and p.get("repo") for p in raw["lineage"]):
        problems.append("'lineage' must list at least the base model, each with a 'repo'")
    for component, allowed in EVIDENCE_VALUES.items():
        item = raw["evidence"].get(component)
        if item is None:
            continue
        if not isinstance(item, dict) or item.get("value") not in allowed:
            problems.append(f"evidence '{component}' must be one of {sorted(allowed)}")
        elif not item.get("source"):
            problems.append(f"evidence '{component}' has no source URL")
    if not raw["quants"]:
        problems.append("offers no quantization")
    for q in raw["quants"]:
        if not isinstance(q, dict) or not q.get("type") or not q.get("pattern"):
            problems.append("each quantization needs a 'type' and a file 'pattern'")
            break
    what = raw.get("kind")
    if what is not None and (what not in KIND_WORDS or (what == "chat") != bool(raw.get("chat"))):
        problems.append(f"'kind' must be one of {sorted(KIND_WORDS)} and agree with 'chat'")
    arch = raw.get("arch")
    if arch is not None:
        missing = [f for f in ARCH_FIELDS if not isinstance(arch.get(f), int) or arch.get(f) <= 0]
        if missing:
            problems.append("'arch' lacks positive integers for " + ", ".join(missing))
    return problems


@dataclass(frozen=True)
class Wanted:
    """An open model the catalog would list but cannot yet: what is missing, and where that was seen."""

    name: str
    repo: str
    missing: str
    source: str


@dataclass
class Catalog:
    models: list[CatalogModel]
    checked: str
    credits: list[dict[str, Any]]
    wanted: list[Wanted] = field(default_factory=list)

    def get(self, key: str) -> CatalogModel | None:
        """By catalog id, GGUF repo or base model repo (case-insensitive)."""
        key = key.lower()
        for m in self.models:
            if key in (m.id.lower(), m.gguf_repo.lower(), m.base_model.lower()):
                return m
        return None

    def evidence_by_repo(self) -> dict[str, Evidence]:
        """Evidence keyed by every repo the catalog knows (for the lineage rule on Hub cards)."""
        out: dict[str, Evidence] = {}
        for m in self.models:
            out[m.base_model] = m.evidence
            out[m.gguf_repo] = m.evidence
        return out


def load_catalog(
    path: str | Path | None = None,
    exact: dict[str, dict] | None = None,
    files_by_repo: dict[str, list[tuple[str, int, str | None]]] | None = None,
) -> Catalog:
    """Load and validate; raise CatalogError naming every bad entry (never skip silently).

    `exact` maps "repo/filename-pattern" style keys to exact Hub sizes when known (the download
    layer fills it); otherwise sizes are estimates from parameters × bits per weight.
    """
    data, where = read_catalog_data(path)
    return catalog_from_data(data, where, exact, files_by_repo)


def read_catalog_data(path: str | Path | None = None) -> tuple[dict[str, Any], str]:
    """The catalog's JSON as written (the built-in one without a path) and how to name it in words;
    CatalogError when it cannot be read or is no catalog."""
    if path is None:
        text = resources.files("localopen.resources").joinpath("catalog.json").read_text(encoding="utf-8")
        where = "the built-in catalog"
    else:
        where = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise CatalogError(f"Cannot read the catalog {where}: {exc.strerror or exc}.") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{where} is not valid JSON (line {exc.lineno}, column {exc.colno}).") from exc
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise CatalogError(f"{where} must be an object with a 'models' list.")
    return data, where


def catalog_from_data(
    data: dict[str, Any],
    where: str,
    exact: dict[str, dict] | None = None,
    files_by_repo: dict[str, list[tuple[str, int, str | None]]] | None = None,
) -> Catalog:
    """The catalog `data` holds, every entry validated (CatalogError naming each bad one)."""
    if exact is None and files_by_repo:
        exact = exact_from_hub([m for m in data["models"] if isinstance(m, dict) and "quants" in m], files_by_repo)
    exact = exact or {}
    errors: list[str] = []
    models: list[CatalogModel] = []
    seen: set[str] = set()
    for index, raw in enumerate(data["models"]):
        problems = _validate(index, raw, seen)
        if problems:
            name = raw.get("id", "?") if isinstance(raw, dict) else "?"
            errors.append(f"entry #{index + 1} ({name}): " + "; ".join(problems))
            continue
        seen.add(raw["id"])
        models.append(_build(raw, exact))
    if errors:
        raise CatalogError(
            f"{where} has {len(errors)} malformed entr{'y' if len(errors) == 1 else 'ies'}:\n"
            + "\n".join(f"  - {e}" for e in errors)
        )
    wanted: list[Wanted] = []
    for index, raw in enumerate(data.get("wanted") or []):
        fields = ("name", "repo", "missing", "source")
        if not isinstance(raw, dict) or not all(isinstance(raw.get(f), str) and raw[f] for f in fields):
            errors.append(f"wanted #{index + 1}: needs a name, repo, what is missing and a source")
            continue
        wanted.append(Wanted(*(raw[f] for f in fields)))
    if errors:
        raise CatalogError(f"{where}: " + "; ".join(errors))
    return Catalog(models, str(data.get("checked", "")), data.get("credits", []), wanted)


def exact_from_hub(
    models: list[dict[str, Any]], files_by_repo: dict[str, list[tuple[str, int, str | None]]]
) -> dict[str, dict]:
    """Exact sizes for catalog quantizations from cached Hub file lists (split parts summed)."""
    out: dict[str, dict] = {}
    for raw in models:
        files = files_by_repo.get(raw["gguf_repo"])
        if not files:
            continue
        for q in raw["quants"]:
            hits = [f for f in files if matches_quant(f[0], q["pattern"])]
            if not hits:
                continue
            split = [f for f in hits if split_part(f[0]) is not None]
            chosen = split if split and len(split) == len(hits) else hits[:1]
            out[f"{raw['gguf_repo']}:{q['type']}"] = {
                "size": sum(f[1] or 0 for f in chosen),
                "sha256": chosen[0][2] if len(chosen) == 1 else None,
            }
    return out


def seen_sizes(raw: dict[str, Any]) -> dict[str, dict]:
    """Exact sizes (and sha256) of the files the entry records as seen in its repository, keyed as
    `exact` is: the Hub's own figures (after `localopen refresh`) take precedence."""
    seen = raw.get("files_seen") or {}
    sizes, hashes = seen.get("sizes") or {}, seen.get("sha256") or {}
    out: dict[str, dict] = {}
    for q in raw["quants"]:
        hit = next((n for n in sizes if matches_quant(n, q["pattern"])), None)
        if hit is not None:
            out[f"{raw['gguf_repo']}:{q['type']}"] = {"size": sizes[hit], "sha256": hashes.get(hit)}
    return out


def _build(raw: dict[str, Any], exact: dict[str, dict]) -> CatalogModel:
    model = CatalogModel(raw=raw)
    n_params = raw["params_b"] * 1e9
    recorded = seen_sizes(raw)
    for q in raw["quants"]:
        key = f"{raw['gguf_repo']}:{q['type']}"
        known = exact.get(key) or recorded.get(key)
        if known:
            model.quants.append(Quant(q["type"], q["pattern"], known["size"], False, known.get("sha256"), key in exact))
        else:
            model.quants.append(Quant(q["type"], q["pattern"], estimate_file_bytes(n_params, q["type"]), True))
    return model
