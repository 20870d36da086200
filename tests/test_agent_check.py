"""Usable as an agent here, measured: the five tasks run through real llama.cpp, scored, saved with
the build and shown as a capability (info --json), for scripted models whose scores are known."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localopen.app.context import AppContext
from localopen.app.conversation import agent_check, capabilities
from localopen.core.options import LoadOptions
from localopen.core.store.library_db import import_file
from localopen.engine.errors import ToolsUnsupportedError
from test_tool_use import QWEN, SPECIAL, caller  # noqa: F401 - the model that always calls get_weather(Paris)

from tiny_gguf import write_scripted_llama, write_tiny_llama

pytest.importorskip("llama_cpp")
LOAD = LoadOptions(n_ctx=2048)


def test_a_model_that_always_calls_the_same_tool_scores_nothing(caller: Path) -> None:  # noqa: F811
    ctx = AppContext()
    result = agent_check.check(ctx, caller, LOAD)
    assert (result.passed, result.total, result.tool_format) == (0, 5, "hermes")
    assert result.llama_cpp_version and result.model_sha256 and result.created_at
    # What it did is said per task: it called get_weather where another tool, two calls or words were wanted.
    assert all("get_weather" in o.detail for o in result.outcomes)
    saved = agent_check.latest(ctx, caller)
    assert saved is not None and saved.label.startswith("0/5 (measured")


def test_a_model_that_answers_in_words_passes_only_the_no_call_task(tmp_path: Path) -> None:
    talker = write_scripted_llama(
        tmp_path / "talker.gguf", ["The answer is 4.", "<|im_end|>"], SPECIAL, chat_template=QWEN, context_length=4096
    )
    ctx = AppContext()
    result = agent_check.check(ctx, talker, LOAD)
    assert [o.passed for o in result.outcomes] == [False, False, False, False, True]
    import_file(ctx.db, talker)
    caps = capabilities.of_file(ctx, talker, QWEN)
    assert caps.tools and caps.tools_measured is not None and caps.tools_measured.passed == 1
    assert caps.tools_label.startswith("tools (hermes, 1/5 (measured")


def test_a_model_whose_template_offers_no_tools_is_not_measured(tmp_path: Path) -> None:
    with pytest.raises(ToolsUnsupportedError, match="offers no tools"):
        agent_check.check(AppContext(), write_tiny_llama(tmp_path / "plain.gguf"), LOAD)


def test_info_json_shows_the_capabilities(caller: Path) -> None:  # noqa: F811
    from cli_helpers import run

    out = run("info", str(caller), "--json")
    assert out.returncode == 0, out.stderr
    caps = json.loads(out.stdout)["capabilities"]
    assert caps["tools"]["template"] is True and caps["tools"]["format"] == "hermes"
    assert caps["reasoning"] is None
    checked = run("check-tools", str(caller), "--ctx", "2048", "--json")
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["passed"] == 0
    measured = json.loads(run("info", str(caller), "--json").stdout)["capabilities"]["tools"]["measured"]
    assert measured["passed"] == 0 and measured["total"] == 5
