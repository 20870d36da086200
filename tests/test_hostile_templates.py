"""Templates come from model files: one that loops without end, folds a huge constant or builds a
huge text is stopped with a message naming the template, never a hang or an exhausted engine; and
the engine answers the next request."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from localopen.core.options import LoadOptions, SamplingParams
from localopen.engine.client import Engine
from localopen.engine.errors import TemplateError

from tiny_gguf import write_tiny_llama

pytest.importorskip("llama_cpp")
USER = [{"role": "user", "content": "hi"}]


def _engine_with(tmp_path: Path, template: str) -> tuple[Engine, float]:
    path = write_tiny_llama(tmp_path / "hostile.gguf", chat_template=template)
    engine = Engine()
    started = time.monotonic()
    engine.load(str(path), LoadOptions(n_ctx=256), timeout=60)
    return engine, time.monotonic() - started


@pytest.mark.parametrize(
    ("template", "said"),
    [
        ("{{ 7 ** 100000000 }}{% for m in messages %}{{ m.content }}{% endfor %}", "power of 100000000"),
        ("{{ 'x' * 10**9 }}", "beyond what a template may build"),
        (
            "{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
            "longer than",
        ),
        (
            "{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "longer than",
        ),
        ("{{ " + "(" * 20000 + "1" + ")" * 20000 + " }}", "nests expressions or calls too deeply"),
    ],
    ids=["huge constant", "huge text", "doubling text", "doubling by ~", "20000 parentheses"],
)
def test_a_template_that_builds_too_much_is_stopped_in_words(tmp_path: Path, template: str, said: str) -> None:
    engine, load_s = _engine_with(tmp_path, template)
    try:
        assert load_s < 30  # the load compiles nothing it would not render safely
        with pytest.raises(TemplateError, match=said):
            engine.answer(USER, SamplingParams(max_tokens=2))
    finally:
        engine.shutdown()


def test_a_template_that_loops_without_end_is_stopped_within_its_limit(tmp_path: Path) -> None:
    loop = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    engine, _ = _engine_with(tmp_path, loop)
    try:
        started = time.monotonic()
        with pytest.raises(TemplateError, match="ran for more than 10 s"):
            engine.answer(USER, SamplingParams(max_tokens=2))
        assert time.monotonic() - started < 20
        assert engine.alive  # stopped, not killed: the engine still answers
    finally:
        engine.shutdown()
