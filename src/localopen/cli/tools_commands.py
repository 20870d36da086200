"""Terminal commands about tools: `check-tools` (whether a model works as an agent here)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from localopen.cli.flags import (
    engine_flags,
    load_options_from,
)

if TYPE_CHECKING:  # the engine client and sessions load only for the commands that run a model
    from localopen.app.context import AppContext


def cmd_check_tools(ctx: AppContext, args: argparse.Namespace) -> int:
    """Usable as an agent here: five canned tasks through the model's own call format, scored and saved."""
    from localopen.app.conversation import agent_check
    from localopen.app.models.library import resolve_model

    path = resolve_model(ctx, args.model)
    with_progress = None if args.json else (lambda message: print(f"  {message}", file=sys.stderr))
    result = agent_check.check(ctx, path, load_options_from(ctx, args, path), with_progress)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return 0
    print(
        f"{path.name}: {result.passed}/{result.total} agent tasks ({result.tool_format} calls, llama.cpp "
        f"{result.llama_cpp_version})"
    )
    for outcome in result.outcomes:
        print(f"  {'pass' if outcome.passed else 'FAIL'}  {outcome.task}: {outcome.detail}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check-tools", help="measure whether a model works as an agent here (5 tool-call tasks)")
    p.add_argument("model", help="an installed model (name or .gguf path)")
    p.add_argument("--json", action="store_true")
    engine_flags(p)
    p.set_defaults(func=cmd_check_tools)
