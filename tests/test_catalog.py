"""The curated catalog: size, coverage of grades, sources, and validation messages."""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest

from localopen.core.openness.catalog import CatalogError, load_catalog


def test_catalog_loads_with_every_grade() -> None:
    catalog = load_catalog()
    assert len(catalog.models) >= 58
    letters = Counter(m.grade.letter for m in catalog.models)
    assert set("ABCDE") <= set(letters)
    params = [m.raw["params_b"] for m in catalog.models]
    assert min(params) <= 0.2 and max(params) >= 13


def test_every_fact_has_a_source_url() -> None:
    for m in load_catalog().models:
        assert m.raw["license"]["source"].startswith("https://"), m.id
        for component, item in m.raw["evidence"].items():
            assert item["source"].startswith("https://"), (m.id, component)


@pytest.mark.parametrize(
    "model_id, letter",
    [
        ("pythia-1.4b-deduped", "A"),
        ("salamandra-2b-instruct", "B"),
        ("qwen2.5-7b-instruct", "C"),
        ("phi-4-mini-instruct", "C"),
        ("deepseek-r1-distill-llama-8b", "D"),
        ("gemma-3-270m-it", "D"),
        ("qwen2.5-3b-instruct", "E"),
        ("command-r7b-12-2024", "E"),
    ],
)
def test_known_grades(model_id: str, letter: str) -> None:
    assert load_catalog().get(model_id).grade.letter == letter


def test_lookup_by_repo_and_size_estimates() -> None:
    catalog = load_catalog()
    m = catalog.get("Qwen/Qwen2.5-7B-Instruct-GGUF")
    assert m is not None and m.id == "qwen2.5-7b-instruct"
    q = m.recommended
    assert q.size_is_estimate and 4e9 < q.size_bytes < 5.5e9


def _write(tmp_path: Path, models: list) -> Path:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"models": models}))
    return path


def test_malformed_entries_are_reported_with_position_and_reason(tmp_path: Path) -> None:
    good = json.loads(resources.files("localopen.resources").joinpath("catalog.json").read_text())["models"][0]
    broken_type = dict(good, id="broken-type", params_b="seven")
    missing = {k: v for k, v in good.items() if k != "license"} | {"id": "missing-licence"}
    bad_evidence = json.loads(json.dumps(good)) | {"id": "bad-evidence"}
    bad_evidence["evidence"]["report"]["value"] = "blog-post"
    with pytest.raises(CatalogError) as info:
        load_catalog(_write(tmp_path, [good, broken_type, missing, bad_evidence, good]))
    text = str(info.value)
    assert "entry #2 (broken-type): 'params_b' has the wrong type" in text
    assert "entry #3 (missing-licence): misses 'license'" in text
    assert "entry #4 (bad-evidence): evidence 'report' must be one of" in text
    assert "entry #5" in text and "repeats the id" in text
    assert "4 malformed entries" in text


def test_unreadable_catalog(tmp_path: Path) -> None:
    bad = tmp_path / "catalog.json"
    bad.write_text("{not json")
    with pytest.raises(CatalogError, match="not valid JSON"):
        load_catalog(bad)
    with pytest.raises(CatalogError, match="Cannot read"):
        load_catalog(tmp_path / "missing.json")


def test_a_quantization_pattern_matches_only_that_quantization() -> None:
    """*Q6_K*.gguf used to take Q6_K_L's size (listed first), and *F16* took BF16's."""
    from localopen.core.openness.catalog import load_catalog

    repo = "bartowski/OLMo-2-1124-13B-Instruct-GGUF"
    files = [
        ("OLMo-2-1124-13B-Instruct-Q6_K_L.gguf", 12_000_000_000, "aa" * 32),
        ("OLMo-2-1124-13B-Instruct-Q6_K.gguf", 11_000_000_000, "bb" * 32),
    ]
    entry = load_catalog(files_by_repo={repo: files}).get("olmo-2-1124-13b-instruct")
    q6 = next(q for q in entry.quants if q.type == "Q6_K")
    assert (q6.size_bytes, q6.sha256, q6.size_is_estimate) == (11_000_000_000, "bb" * 32, False)


def test_non_commercial_creative_commons_licences_carry_their_flags() -> None:
    from localopen.core.openness.catalog import load_catalog

    command_r = load_catalog().get("command-r7b-12-2024")
    assert command_r.grade.letter == "E" and "noncommercial" in command_r.grade.flags


def test_catalog_audit_guards() -> None:
    """The whole catalog, fact by fact: every fact has a source and was checked (no 'verified':
    false left), every recommended file is a sensible download (at most twice the Q4_K_M estimate;
    Gemma 2 2B once recommended 10.4 GB of F32), every MOF or OSAI figure names the family member
    it was read for, every lineage stays within OPENNESS.md's four hops with a licence on each (a hop called the
    root, trained from scratch, is the last and says where that was read),
    and every model has the architecture block the fit estimate needs."""
    import re

    from localopen.core.gguf.quant import estimate_file_bytes
    from localopen.core.openness.catalog import ARCH_FIELDS, load_catalog

    model_page = re.compile(r"https://huggingface\.co/[^/]+/[^/]+/?")
    problems = []
    for m in load_catalog().models:
        raw = m.raw
        for component, item in raw["evidence"].items():
            if item.get("verified") is False:
                problems.append(f"{m.id}: {component} not verified")
        q4 = estimate_file_bytes(m.n_params, "Q4_K_M")
        if (m.recommended.size_bytes or 0) > 2 * q4:
            problems.append(f"{m.id}: recommends {m.recommended.type}")
        for name, badge in (("mof", m.mof), ("osai", m.osai)):
            if badge is None:
                continue
            if not str(badge.get("source", "")).startswith("https://") or not badge.get("read"):
                problems.append(f"{m.id}: {name} figure without a source or a date read")
            if ":" not in str(badge.get("scope", "")):
                problems.append(f"{m.id}: {name} scope does not name the member it was read for")
        lineage = raw["lineage"]
        if len(lineage) > 4:
            problems.append(f"{m.id}: lineage longer than four hops")
        for hops, parent in enumerate(lineage, start=1):
            if not parent.get("license"):
                problems.append(f"{m.id}: lineage hop {hops} has no licence")
            if hops > 1 and not str(parent.get("source", "")).startswith("https://"):
                problems.append(f"{m.id}: lineage hop {hops} has no source")
            if "root" in parent and (hops != len(lineage) or not str(parent["root"]).startswith("https://")):
                problems.append(f"{m.id}: lineage hop {hops} is called a root without a source, or is not the last")
        if len(lineage) == 1 and "root" not in lineage[0]:
            problems.append(f"{m.id}: the lineage stops at the model itself: name its base, or say why it is the root")
        arch = m.arch
        if arch is None or any(not isinstance(arch.get(f), int) for f in ARCH_FIELDS):
            problems.append(f"{m.id}: no architecture block (the fit would fall back to defaults)")
        elif not str(arch.get("source", "")).startswith("https://"):
            problems.append(f"{m.id}: architecture without a source")
        if raw.get("gated_upstream") is None:
            problems.append(f"{m.id}: upstream gating not recorded")
        # From the audit of 2026-11: each kind of error it found fails here.
        if model_page.fullmatch(raw["license"].get("url") or ""):
            problems.append(f"{m.id}: the licence URL is a model page, not the licence's text")
        osi = raw.get("osi")
        if osi and osi.get("status") == "validated" and osi.get("source") != "https://opensource.org/ai":
            problems.append(f"{m.id}: an OSI validation cites something other than the OSI's list of validated systems")
        code = raw["evidence"].get("training_code", {})
        if code.get("value") in ("open", "partial") and model_page.fullmatch(code.get("source") or ""):
            problems.append(f"{m.id}: training code '{code['value']}' sourced to a model card, not its code or rater")
        report = str(raw["evidence"].get("report", {}).get("source", ""))
        if m.family.startswith("Llama 3.2") and "2407.21783" in report:
            problems.append(f"{m.id}: Llama 3.2 cites the Llama 3.1 paper as its report")
    assert problems == []


def test_gemma3_sliding_window_layers_follow_the_every_sixth_rule() -> None:
    """The catalog's count must agree with the rule the GGUF path applies to Gemma 3 headers."""
    from localopen.core.openness.catalog import load_catalog

    for m in load_catalog().models:
        arch = m.arch or {}
        if m.family == "Gemma 3" and arch.get("sliding_window"):
            assert arch["n_swa_layers"] == arch["n_layers"] - arch["n_layers"] // 6, m.id


NAMED_IN_THE_FIRST_FIVE_MINUTES = (
    "marin-8b-instruct",
    "moxin-7b-chat",
    "olmo-3-7b-think",
    "ministral-3-3b-instruct-2512",
    "ministral-3-8b-instruct-2512",
    "granite-4.0-1b",
    "qwen3-4b-instruct-2507",
    "nemotron-nano-9b-v2",
)


def test_the_open_models_people_look_for_now_are_there() -> None:
    catalog = load_catalog()
    missing = [i for i in NAMED_IN_THE_FIRST_FIVE_MINUTES if catalog.get(i) is None]
    assert missing == []
    assert any(m.kind == "embedding" for m in catalog.models)
    # Ministral 3 (Apache-2.0) grades above the research-only Ministral 8B 2410 it supersedes.
    assert catalog.get("ministral-3-8b-instruct-2512").grade.letter == "C"
    assert catalog.get("ministral-8b-instruct-2410").grade.letter == "E"
    assert catalog.get("nemotron-nano-9b-v2").grade.letter == "D"  # the NVIDIA Open Model License


def test_every_recommended_file_was_seen_in_its_repository() -> None:
    """Each entry records the file names read from its repository (or from download addresses
    public code pins); the recommended quantization names one of them, and every other offered
    pattern either names one or is listed as not seen yet, so a pattern that matches nothing (Qwen's
    -fp16 under *F16*) cannot hide. Entries checked since this rule (2026-12-02) must record files."""
    from localopen.core.gguf.files import matches_quant

    problems = []
    for m in load_catalog().models:
        seen = m.raw.get("files_seen")
        if seen is None:
            if m.raw.get("checked", "") >= "2026-12-02":
                problems.append(f"{m.id}: checked since the files rule but no file names were recorded")
            continue
        if not str(seen.get("source", "")).startswith("https://") or not seen.get("read") or not seen.get("names"):
            problems.append(f"{m.id}: files seen without a source, a date or names")
            continue
        unseen = set(seen.get("unseen", []))
        for q in m.raw["quants"]:
            found = any(matches_quant(name, q["pattern"]) for name in seen["names"])
            if q["type"] == m.raw["recommended_quant"] and not found:
                problems.append(f"{m.id}: the recommended {q['type']} ({q['pattern']}) matches none of the files seen")
            elif not found and q["type"] not in unseen:
                problems.append(f"{m.id}: {q['type']} ({q['pattern']}) matches none of the files seen")
            elif found and q["type"] in unseen:
                problems.append(f"{m.id}: {q['type']} is listed as not seen but a seen file matches it")
    assert problems == []


def test_almost_every_entry_records_the_files_of_its_repository() -> None:
    """The audit of 2026-12 read file lists for all but one entry (Salamandra's repository list was
    not found); a new gap shows up here."""
    missing = [m.id for m in load_catalog().models if "files_seen" not in m.raw]
    assert missing == ["salamandra-2b-instruct"]


def test_a_model_that_does_not_chat_says_what_it_is_and_is_never_recommended_for_chat() -> None:
    catalog = load_catalog()
    embed = catalog.get("nomic-embed-text-v1.5")
    assert embed.kind == "embedding" and "not a chat model" in embed.kind_words
    pythia, think = catalog.get("pythia-1.4b-deduped"), catalog.get("olmo-3-7b-think")
    assert pythia.kind == "base" and "continues text" in pythia.kind_words
    assert think.kind == "chat" and think.kind_words is None


def test_a_kind_that_contradicts_chat_is_refused(tmp_path: Path) -> None:
    good = json.loads(resources.files("localopen.resources").joinpath("catalog.json").read_text())["models"][0]
    bad = dict(good, id="chatty-embedder", kind="embedding")  # chat: true
    with pytest.raises(CatalogError, match="'kind' must be one of"):
        load_catalog(_write(tmp_path, [bad]))


def test_real_qwen_coder_files_are_recognised_as_their_entries() -> None:
    """Qwen2.5-Coder's own files (the most used small coding models) are the catalog's entries,
    not an unrated '?': the 0.5B by its file name though its header calls it '… Instruct AWQ'."""
    from cli_helpers import run
    from conftest import real_model

    for size in ("0.5b", "1.5b"):
        out = run("info", str(real_model(f"qwen2.5-coder-{size}")), timeout=120)
        assert out.returncode == 0, out.stderr
        assert f"Openness: C · T1, the catalog's qwen2.5-coder-{size}-instruct" in out.stdout
    # The recorded size of the recommended file is the real file's: no estimate.
    model = load_catalog().get("qwen2.5-coder-1.5b-instruct")
    assert model is not None
    assert model.recommended.size_bytes == real_model("qwen2.5-coder-1.5b").stat().st_size
    assert not model.recommended.size_is_estimate


def test_models_wanted_but_not_listed_say_what_is_missing(tmp_path: Path) -> None:
    """Open models the catalog cannot list yet (no GGUF file seen) are kept as wanted, each with what
    is missing and where that was looked at; `localopen catalog` names them under the table."""
    from cli_helpers import run

    wanted = {w.repo: w for w in load_catalog().wanted}
    assert "almanach/Gaperon-1125-8B" in wanted and "utter-project/EuroLLM-22B-Instruct-2512" in wanted
    assert all(w.missing and w.source.startswith("https://") for w in wanted.values())
    out = run("catalog", timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Wanted, not listed yet:" in out.stdout and "Gaperon 1125" in out.stdout
    assert "missing a GGUF file" in out.stdout
    assert "Wanted" not in run("catalog", "--search", "qwen", timeout=120).stdout  # a search shows its matches only
    # A wanted entry without what is missing is refused, as a malformed model entry is.
    data = json.loads(resources.files("localopen.resources").joinpath("catalog.json").read_text(encoding="utf-8"))
    data["wanted"] = [{"name": "X", "repo": "org/x", "source": "https://example.org"}]
    bad = tmp_path / "catalog.json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CatalogError, match="wanted #1: needs a name, repo, what is missing and a source"):
        load_catalog(bad)
