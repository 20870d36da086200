"""Speculative decoding with a draft model and prompt lookup: the model's own text at temperature 0,
what the drafts gained, which installed models could draft, and the refusal of a draft whose
vocabulary is another's. Real llama.cpp on scripted tiny models (never an assertion on speed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_helpers import run
from localopen.app.context import AppContext
from localopen.app.conversation import drafting
from localopen.app.measure.benchmark import compare
from localopen.core.gguf.header import read_header
from localopen.core.gguf.vocabulary import could_draft_for, same_tokenizer
from localopen.core.records import AnswerStats
from localopen.core.report.builds import compare_builds
from localopen.core.store.library_db import import_file
from test_builds import _result

from tiny_gguf import write_scripted_llama, write_tiny_llama

pytest.importorskip("llama_cpp")

WORDS = ["Alpha", " Beta", " Gamma", " Delta", " Epsilon", " Zeta", " Eta", " Theta", " Iota", " Kappa"]
# Both vocabularies hold every word (in one order), so the two models share their tokenizer.
SPECIAL = {"<|im_start|>": 3, "<|im_end|>": 3, **{w: 4 for w in [*WORDS, " Wrong"]}}


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """A model that says the Greek letters, and a draft that says them with ' Wrong' for ' Eta' (the
    drafter decodes a few tokens plainly first, to measure what drafting is held against)."""
    model = write_scripted_llama(tmp_path / "letters.gguf", [*WORDS, "<|im_end|>"], SPECIAL)
    wrong = [w if w != " Eta" else " Wrong" for w in WORDS]
    draft = write_scripted_llama(tmp_path / "letters-draft.gguf", [*wrong, "<|im_end|>"], SPECIAL)
    return model, draft


def _chat(model: Path, draft: str) -> dict:
    out = run("chat", str(model), "-p", "hi", "--temperature", "0", "--draft", draft, "--json", timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_draft_model_gives_the_models_own_text_and_counts_what_it_kept(pair: tuple[Path, Path]) -> None:
    model, draft = pair
    plain, drafted = _chat(model, "off"), _chat(model, str(draft))
    assert plain["content"] == "".join(WORDS)
    assert drafted["content"] == plain["content"]  # ' Wrong' was drafted and rejected
    # The draft's letters before and after its mistake were kept; its ' Wrong' was not.
    assert 0 < drafted["draft_accepted"] < drafted["draft_proposed"]
    assert plain["draft_proposed"] is None
    # Prompt lookup on the same model: the same text too.
    assert _chat(model, "lookup")["content"] == plain["content"]


def test_a_draft_is_named_as_a_library_model_and_one_with_another_vocabulary_is_refused(
    pair: tuple[Path, Path], tiny_gguf: Path
) -> None:
    model, draft = pair
    ctx = AppContext()
    import_file(ctx.db, draft)
    ctx.db.close()
    assert _chat(model, "letters-draft")["content"] == "".join(WORDS)
    # The byte-vocabulary tiny model ends its turns with another token: it cannot draft here.
    out = run("chat", str(model), "-p", "hi", "--draft", str(tiny_gguf), "--json", timeout=120)
    assert out.returncode != 0
    assert "cannot draft for letters.gguf" in out.stderr and "special tokens differ" in out.stderr
    assert "Traceback" not in out.stderr
    missing = run("chat", str(model), "-p", "hi", "--draft", "no-such-model", timeout=60)
    assert missing.returncode != 0 and "No draft model 'no-such-model'" in missing.stderr


def test_installed_models_that_could_draft_are_suggested_smallest_first(tmp_path: Path) -> None:
    big = write_tiny_llama(tmp_path / "big.gguf", n_embd=256, n_ff=512, n_layer=4)
    small = write_tiny_llama(tmp_path / "small.gguf")
    other = write_scripted_llama(tmp_path / "other.gguf", [*WORDS, "<|im_end|>"], SPECIAL)
    headers = {p.name: read_header(p) for p in (big, small, other)}
    assert same_tokenizer(headers["big.gguf"], headers["small.gguf"])
    assert not same_tokenizer(headers["big.gguf"], headers["other.gguf"])  # its own end-of-turn token
    size = {name: h.tensor_bytes for name, h in headers.items()}
    assert could_draft_for(headers["small.gguf"], size["small.gguf"], headers["big.gguf"], size["big.gguf"])
    # A draft as large as the model gains nothing: never suggested.
    assert not could_draft_for(headers["big.gguf"], size["big.gguf"], headers["small.gguf"], size["small.gguf"])
    ctx = AppContext()
    for path in (big, small, other):
        import_file(ctx.db, path)
    [suggested] = drafting.candidates(ctx, big)
    assert suggested.path == small.resolve() and suggested.share < 0.25
    assert drafting.candidates(ctx, small) == []
    info = run("info", str(big), "--json")
    assert [d["name"] for d in json.loads(info.stdout)["draft_models"]] == ["small"]
    assert "--draft small" in run("info", str(big)).stdout


def test_a_presets_draft_is_a_library_model_kept_by_its_path(pair: tuple[Path, Path]) -> None:
    model, draft = pair
    ctx = AppContext()
    import_file(ctx.db, draft)
    ctx.db.close()
    out = run("preset", str(model), "draft", "letters-draft")
    assert out.returncode == 0, out.stderr
    assert _chat(model, "off")["draft_proposed"] is None  # the flag wins over the preset
    out = run("chat", str(model), "-p", "hi", "--temperature", "0", "--json")
    assert json.loads(out.stdout)["draft_proposed"] > 0  # the preset's draft model drafts
    bad = run("preset", str(model), "draft", "/nowhere/x.bin")
    assert bad.returncode != 0 and "No draft model" in bad.stderr


def test_drafting_gains_are_compared_task_by_task_and_apart_from_llama_bench() -> None:
    plain = [_result("0.3.36", "tg128", [20.0, 20.0, 20.0], task=t, draft="") for t in ("quote", "chat")]
    drafted = [
        _result("0.3.36", "tg128", [36.0, 36.0, 36.0], task="quote", draft="lookup", same_text=True, draft_kept=0.7),
        _result("0.3.36", "tg128", [18.0, 18.0, 18.0], task="chat", draft="lookup", same_text=False),
    ]
    bench = [_result("0.3.36", "tg128", [25.0, 25.0, 25.0])]
    [row] = compare(bench + plain + drafted, thresholds=AppContext().thresholds)
    assert row.tg is not None and row.tg.avg_ts == 25.0  # llama-bench's tg, not a drafting task's
    gains = {g.task: g for g in row.drafting}
    assert round(gains["quote"].speedup, 2) == 1.8 and gains["quote"].kept == 0.7
    assert row.drafting_summary() == "lookup: quote 1.80x, chat 0.90x (text differed)"
    # A model measured only with drafts still has a row.
    [only] = compare(plain + drafted, thresholds=AppContext().thresholds)
    assert only.tg is None and only.base.task
    # A build comparison keeps a drafted test apart from the plain one.
    builds = [
        _result("0.3.35", "quote tg128", [20.0] * 3, task="quote", draft=""),
        _result("0.3.36", "quote tg128", [36.0] * 3, task="quote", draft="lookup"),
    ]
    assert compare_builds(builds) == []


def test_an_answers_line_says_how_many_drafts_were_kept() -> None:
    stats = AnswerStats("stop", completion_tokens=40, gen_tps=30.0, draft_proposed=50, draft_accepted=35)
    assert "35 of 50 drafted tokens kept" in stats.describe()
    assert not any("drafted" in part for part in AnswerStats("stop", completion_tokens=4).describe())


@pytest.mark.slow
def test_bench_with_drafting_measures_each_task_plainly_and_drafted(gemma_path: Path) -> None:
    """`bench --draft lookup` on the real Gemma 270M: every task's drafted text is the plain one."""
    out = run("bench", str(gemma_path), "--draft", "lookup", "-n", "24", "-r", "1", "--json", timeout=600)
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    tasks = {(r["task"], r["draft"]) for r in results}
    assert tasks == {(t, d) for t in ("quote", "code", "chat") for d in ("", "lookup")}
    # Copying a passage has no near-ties: the drafted text is the plain one. Elsewhere the drafts
    # are checked in batches, which llama.cpp's CPU kernels round differently from one token at a
    # time: a near-tie may go the other way, and the result says so.
    assert all(isinstance(r["same_text"], bool) for r in results if r["draft"])
    assert next(r for r in results if r["task"] == "quote" and r["draft"])["same_text"] is True
    assert all(r["avg_ts"] > 0 and r["n_gen"] == 24 for r in results)
    quote = next(r for r in results if r["task"] == "quote" and r["draft"])
    assert quote["draft_kept"] is not None and quote["draft_kept"] > 0  # the copy's drafts are taken
    table = run("bench", str(gemma_path), "--draft", "lookup", "-n", "16", "-r", "1", timeout=600)
    assert "speed-up" in table.stdout and "quote" in table.stdout
    listed = json.loads(run("results", "--json").stdout)
    assert any(r["task"] == "code" and r["draft"] == "lookup" for r in listed)
