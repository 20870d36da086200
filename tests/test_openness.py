"""The rubric of OPENNESS.md: its 16 test vectors, and provisional grades from model cards."""

from __future__ import annotations

import pytest

from localopen.core.openness.catalog import load_catalog
from localopen.core.openness.grade import Evidence, LicenseSource, evidence_from_card, grade

T3 = {"data_pretrain": "open", "data_posttrain": "open", "training_code": "open", "report": "preprint"}


def ev(licenses: list[tuple], **fields: str) -> Evidence:
    e = Evidence(curated=bool(fields))
    for i, lic in enumerate(licenses):
        lid, name = lic if isinstance(lic, tuple) else (lic, None)
        e.licenses.append(LicenseSource(lid, name, "gguf-repo" if i == 0 else f"base-model({i})"))
    for key, value in fields.items():
        setattr(e, key, value)
    return e


VECTORS = [
    (1, ev(["apache-2.0"], **T3), "A", 3),
    (
        2,
        ev(["apache-2.0"], data_pretrain="open", data_posttrain="n/a", training_code="open", report="peer_reviewed"),
        "A",
        3,
    ),
    (
        3,
        ev(["apache-2.0"], data_pretrain="open", data_posttrain="closed", training_code="open", report="preprint"),
        "B",
        2,
    ),
    (4, ev(["apache-2.0"], data_pretrain="partial", training_code="closed", report="preprint"), "B", 2),
    (5, ev(["mit"], data_pretrain="closed", training_code="closed", report="tech_report"), "C", 1),
    (6, ev(["apache-2.0"]), "C", 0),
    (7, ev([None, "mit"]), "C", 0),
    (8, ev(["mit", "llama3.1"]), "D", 0),
    (9, ev(["llama3.2"], **T3), "D", 3),
    (10, ev(["gemma"]), "D", 0),
    (11, ev([("other", "qwen-research")]), "E", 0),
    (12, ev([("other", "mrl")]), "E", 0),
    (13, ev(["cc-by-nc-4.0"]), "E", 0),
    (14, ev([("other", "acme-license")]), "?", 0),
    (15, ev([None]), "?", 0),
    (16, ev(["apache-2.0", "cc-by-nc-4.0"]), "E", 0),
]


@pytest.mark.parametrize("number, evidence, letter, transparency", VECTORS, ids=[f"vector{v[0]}" for v in VECTORS])
def test_rubric_vectors(number: int, evidence: Evidence, letter: str, transparency: int) -> None:
    g = grade(evidence)
    assert g.letter == letter
    assert g.transparency == transparency
    assert g.badge == f"{letter} · T{transparency}"


def test_vector7_licence_inherited_from_base() -> None:
    g = grade(ev([None, "mit"]))
    assert g.rights_origin == "base-model(1)"


def test_vector6_uncurated_is_not_verified_and_provisional() -> None:
    g = grade(ev(["apache-2.0"]))
    assert g.provisional
    assert set(g.unverified) == {"data_pretrain", "data_posttrain", "training_code", "report"}


def test_vector10_gated_flag() -> None:
    e = ev(["gemma"])
    e.gated = True
    g = grade(e)
    assert "gated" in g.flags and "aup" in g.flags


def test_vector14_reason_names_the_licence() -> None:
    assert "acme-license" in grade(ev([("other", "acme-license")])).rights.reason


def test_unknown_licences_never_grade_open() -> None:
    for lic in ("unknown", "cc", "", "other", "proprietary-thing"):
        assert grade(ev([lic], **T3)).letter == "?"


def test_raise_hints_name_what_is_missing() -> None:
    g = grade(ev(["llama3.2"], data_pretrain="closed", training_code="partial", report="tech_report"))
    joined = " ".join(g.raise_hints)
    assert "OSI-approved" in joined and "open pre-training data" in joined


# --- provisional grades from Hub model-card data ------------------------------------------------
def card(license=None, name=None, base=None, datasets=None, tags=None, gated=False, repo="someone/x-GGUF"):
    data = {"license": license, "license_name": name, "license_link": None, "datasets": datasets, "base_model": base}
    card_data = {k: v for k, v in data.items() if v is not None}
    return {"id": repo, "cardData": card_data, "tags": tags or [], "gated": gated}


def test_card_lineage_rule_uses_catalog_licences() -> None:
    known = load_catalog().evidence_by_repo()
    e = evidence_from_card(card("mit", base="deepseek-ai/DeepSeek-R1-Distill-Llama-8B"), known)
    g = grade(e, provisional=True)
    assert g.letter == "D"
    assert g.rights.license_key == "llama3.1"
    assert g.provisional


def test_card_without_licence_inherits_from_known_base() -> None:
    known = load_catalog().evidence_by_repo()
    g = grade(evidence_from_card(card(base="microsoft/Phi-4-mini-instruct"), known), provisional=True)
    assert g.letter == "C" and g.rights.license_key == "mit"


def test_card_weak_hints_cap_transparency() -> None:
    known = load_catalog().evidence_by_repo()
    # Template carbon paper and an arXiv id the base model does not cite: no report.
    e = evidence_from_card(card("apache-2.0", tags=["arxiv:1910.09700", "arxiv:9999.00001"], datasets=["a/b"]), known)
    assert e.report == "unknown" and e.data_pretrain == "partial"
    assert grade(e).letter == "C"
    # The base model's own paper id, repeated on the card: counts as a preprint.
    e = evidence_from_card(
        card(
            "apache-2.0",
            base="allenai/OLMo-2-1124-7B-Instruct",
            tags=["arxiv:2501.00656"],
            datasets=["allenai/tulu-3-sft-mixture"],
        ),
        known,
    )
    assert e.report == "preprint"
    g = grade(e, provisional=True)
    assert g.letter == "B" and g.transparency == 2 and g.provisional  # never A from hints alone


def test_card_unknown_licence_is_unrated() -> None:
    g = grade(evidence_from_card(card("other", name="acme-license")), provisional=True)
    assert g.letter == "?"


def test_creative_commons_nc_and_nd_flags() -> None:
    from localopen.core.openness.licences import flags_of

    assert flags_of("cc-by-nc-4.0") == {"noncommercial"}
    assert flags_of("cc-by-nc-nd-4.0") == {"noncommercial", "no_derivatives"}
    assert flags_of("cc-by-nd-4.0") == {"no_derivatives"}
    assert flags_of("cc-by-4.0") == set() and flags_of("cc-by-sa-4.0") == set()


def test_a_grades_evidence_in_one_line() -> None:
    """What a Start card says beside the grade: the licence that decides it, what of the training is out."""
    from localopen.core.openness.grade import Evidence, LicenseSource, in_one_line

    science = Evidence(
        licenses=[LicenseSource("apache-2.0")], data_pretrain="open", data_posttrain="open", training_code="open"
    )
    assert in_one_line(science) == "apache-2.0 · open: pre-training data, fine-tuning data, training code"
    # The most restrictive licence found decides, as it decides the grade.
    mixed = Evidence(licenses=[LicenseSource("apache-2.0"), LicenseSource("llama3.1", origin="base-model(1)")])
    mixed.training_code = "partial"
    assert in_one_line(mixed) == "llama3.1 · partly open: training code"
    assert in_one_line(Evidence()) == "no licence found · training data and code not published"
