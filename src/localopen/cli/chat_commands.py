"""Terminal commands that talk to a model: `chat` (tools and MCP servers included) and `template`
(the exact prompt a model makes). The engine runs in its own process."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localopen.app.conversation.chat import needs_template
from localopen.cli.flags import (
    engine_flags,
    load_options_from,
    option_flags,
    sampling_from,
)
from localopen.cli.terminal import ctrl_c_stops, print_load, print_stats
from localopen.core.errors import LocalopenError
from localopen.core.options import AnswerOptions, SamplingParams
from localopen.core.records import AnswerPiece, AnswerStats, LoadInfo, ToolCall

if TYPE_CHECKING:  # the engine client and sessions load only for the commands that run a model
    from localopen.app.context import AppContext
    from localopen.app.conversation.chat import ChatSession
    from localopen.app.conversation.mcp_tools import McpConnections
    from localopen.app.conversation.tool_loop import ToolRun


DIM, RESET = "\033[2m", "\033[0m"  # reasoning printed dim on a terminal


def _answer(
    session: ChatSession,
    messages: list[dict[str, Any]],
    sampling: SamplingParams,
    template: str | None,
    quiet: bool,
    thinking: bool | None,
) -> tuple[str, str, AnswerStats]:
    """Stream one answer: the answer to stdout; the reasoning dimmed on a terminal, else to stderr
    (so a pipe gets the answer alone), and not at all with --no-thinking (thinking=False)."""
    printer = _Printer(quiet, thinking)
    with ctrl_c_stops(session.stop):
        stats = session.answer(messages, sampling, template, printer, AnswerOptions(thinking=thinking))
    if not quiet:
        print()
    return "".join(printer.answer), "".join(printer.reasoning), stats


class _Printer:
    """Prints an answer as it streams: the answer to stdout; the reasoning dimmed on a terminal, else
    to stderr (so a pipe gets the answer alone), and not at all with --no-thinking."""

    def __init__(self, quiet: bool, thinking: bool | None) -> None:
        self.quiet, self.thinking = quiet, thinking
        self.answer: list[str] = []
        self.reasoning: list[str] = []
        self.tty = sys.stdout.isatty()

    def __call__(self, piece: AnswerPiece) -> None:
        if piece.tool_call is not None:
            return  # shown with its result, once it has run
        (self.reasoning if piece.reasoning else self.answer).append(piece.text)
        if self.quiet or (piece.reasoning and self.thinking is False):
            return
        reasoning_out = sys.stdout if self.tty else sys.stderr
        if piece.reasoning:
            print(f"{DIM}{piece.text}{RESET}" if self.tty else piece.text, end="", file=reasoning_out, flush=True)
            return
        if self.reasoning and self.thinking is not False and len(self.answer) == 1:
            print(file=reasoning_out)  # a line between the thinking and the answer
        print(piece.text, end="", flush=True)


def _choose_template(info: LoadInfo, args: argparse.Namespace) -> str | None:
    """The model's own template, the one asked for, or the user's choice: never a silent guess."""
    if not needs_template(info, args.template):
        return args.template
    if args.prompt is not None or not sys.stdin.isatty():
        raise LocalopenError(
            "This model has no chat template, so localopen will not guess one. Pass --template with one "
            f"of: {', '.join(info.template_options)} (suggested: {info.template_suggestion}, because "
            f"{info.template_suggestion_reason})."
        )
    print(
        f"This model has no chat template. Choose one of {', '.join(info.template_options)} "
        f"[{info.template_suggestion}]: ",
        end="",
        file=sys.stderr,
        flush=True,
    )
    return input().strip() or info.template_suggestion


class _TerminalApproval:
    """Asks on the terminal before each tool call runs (yes / no / always for this tool)."""

    def __init__(self, allow_all: bool) -> None:
        self.allow_all = allow_all
        self.always: set[str] = set()

    def __call__(self, call: ToolCall) -> bool:
        if self.allow_all or call.name in self.always:
            return True
        if not sys.stdin.isatty():
            print(
                f"localopen: the model asked to call {call.name}; not run (no terminal to ask: pass --allow-tools).",
                file=sys.stderr,
            )
            return False
        print(f"Allow {call.name}({call.arguments})? [y]es, [n]o, [a]lways for this tool: ", end="", file=sys.stderr)
        answer = input().strip().lower()
        if answer in ("a", "always"):
            self.always.add(call.name)
        return answer in ("y", "yes", "a", "always")


def _print_run(run: ToolRun) -> None:
    status = "error" if run.result.is_error else "result"
    shown = run.result.text if len(run.result.text) <= 400 else run.result.text[:400] + "…"
    print(
        f"\n[tool {run.call.name}({run.call.arguments}) {status} in {run.result.ms:.0f} ms: {shown}]", file=sys.stderr
    )


def _turn(
    session: ChatSession,
    history: list[dict[str, Any]],
    sampling: SamplingParams,
    template: str | None,
    quiet: bool,
    thinking: bool | None,
    tools: tuple[McpConnections, _TerminalApproval, str, int] | None,
) -> tuple[list[dict[str, Any]], str, str, AnswerStats, list[ToolRun]]:
    """One turn: the messages it added, its answer and reasoning, its stats, and the tools it ran."""
    if tools is None:
        content, reasoning, stats = _answer(session, history, sampling, template, quiet, thinking)
        added: dict[str, Any] = {"role": "assistant", "content": content}
        if reasoning:
            added["reasoning_content"] = reasoning
        return [added], content, reasoning, stats, []
    from localopen.app.conversation.tool_loop import answer_with_tools

    connections, approve, choice, rounds = tools
    printer = _Printer(quiet, thinking)
    with ctrl_c_stops(session.stop):
        outcome = answer_with_tools(
            session,
            history,
            sampling,
            template,
            connections,
            approve,
            printer,
            None if quiet else _print_run,
            tool_choice=choice,
            thinking=thinking,
            max_rounds=rounds,
        )
    if not quiet:
        print()
    return outcome.messages, outcome.content, outcome.reasoning, outcome.stats, outcome.runs


def _connect_mcp(path: str) -> McpConnections:
    from localopen.app.conversation.mcp_tools import McpConnections, read_config

    connections = McpConnections(read_config(Path(path)))
    connections.connect()
    for name, problem in connections.problems.items():
        print(f"localopen: MCP server {name} is not available: {problem}", file=sys.stderr)
    names = ", ".join(t.name for t in connections.tools()) or "none"
    print(f"Tools from MCP: {names}", file=sys.stderr)
    return connections


def cmd_chat(ctx: AppContext, args: argparse.Namespace) -> int:
    import dataclasses

    from localopen.app.conversation import vision
    from localopen.app.conversation.chat import ChatSession
    from localopen.app.models.library import resolve_model
    from localopen.engine.errors import EngineDied, EngineError

    path = resolve_model(ctx, args.model)
    images = [vision.read_image(f) for f in args.image or []]
    session = ChatSession(ctx)
    connections = _connect_mcp(args.mcp) if args.mcp else None
    try:
        options = load_options_from(ctx, args, path)
        if args.mmproj:
            options = dataclasses.replace(options, mmproj=str(Path(args.mmproj).expanduser()))
        info = session.load(path, options)
        if not args.json:
            print_load(info)
        if images and info.vision is None:
            raise LocalopenError(vision.no_vision(path))
        template = _choose_template(info, args)
        system = [{"role": "system", "content": args.system}] if args.system and args.system.strip() else []
        history: list[dict[str, Any]] = list(system)
        sampling = sampling_from(args)
        thinking = False if args.no_thinking else None
        approval = _TerminalApproval(args.allow_tools)
        tools = (connections, approval, args.tool_choice, args.max_tool_rounds) if connections else None
        if args.prompt is not None:
            history.append(vision.user_message(args.prompt, images))
            _, content, reasoning, stats, runs = _turn(session, history, sampling, template, args.json, thinking, tools)
            if args.json:
                out = {"content": content, "reasoning": reasoning, **stats.to_dict()}
                if connections is not None:
                    out["tool_calls"] = [r.to_dict() for r in runs]
                print(json.dumps(out, indent=2, ensure_ascii=False))
            else:
                print_stats(stats)
            return 0
        print("Type a message; Ctrl+C stops an answer, /exit or Ctrl+D quits, /reset starts over.", file=sys.stderr)
        while True:
            try:
                line = input("> ")
            except (EOFError, KeyboardInterrupt):
                print()
                return 0
            if line.strip() in ("/exit", "/quit"):
                return 0
            if line.strip() == "/reset":
                history = list(system)
                continue
            if not line.strip():
                continue
            asked = [*history, vision.user_message(line, images)]
            images = []  # the pictures go with the first message
            try:
                added, _, _, stats, _ = _turn(session, asked, sampling, template, False, thinking, tools)
            except EngineError as exc:
                print(f"localopen: {exc}", file=sys.stderr)
                if isinstance(exc, EngineDied):
                    session.load(path, load_options_from(ctx, args, path))
                continue
            history = [*asked, *added]
            print_stats(stats)
    finally:
        session.shutdown()
        if connections is not None:
            connections.close()


def _json_file(path: str, what: str, kind: type) -> Any:
    try:
        value = json.loads(Path(path).expanduser().read_text(encoding="utf-8"))
    except OSError as exc:
        raise LocalopenError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    except ValueError as exc:
        raise LocalopenError(f"{path} is not valid JSON ({exc}).") from exc
    if isinstance(value, dict) and kind is list and isinstance(value.get(what), list):
        value = value[what]  # {"messages": [...]}, as a request body has it
    if not isinstance(value, kind):
        raise LocalopenError(f"{path} must hold a JSON {'list' if kind is list else 'object'} of {what}.")
    return value


def cmd_template(ctx: AppContext, args: argparse.Namespace) -> int:
    """Print exactly the prompt the engine would feed: a model's own template (through the engine,
    with its special tokens), or a .jinja file rendered as transformers would."""
    from localopen.app.conversation.chat import ChatSession
    from localopen.app.models.library import resolve_model
    from localopen.core.chat import template as chat_template
    from localopen.core.gguf.files import is_gguf

    messages = _json_file(args.messages, "messages", list)
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise LocalopenError(f"{args.messages}: each message must be a JSON object with a 'role'.")
    tools = _json_file(args.tools, "tools", list) if args.tools else None
    thinking = False if args.no_thinking else None
    target = Path(args.model).expanduser()
    if target.is_file() and not is_gguf(target.name):
        special = {"bos_token": args.bos or "", "eos_token": args.eos or ""}
        choice = chat_template.TemplateChoice("model", target.read_text(encoding="utf-8"))
        traits = chat_template.traits(choice.source)
        switches = {traits.thinking_switch: thinking} if traits.thinking_switch and thinking is not None else {}
        prompt = chat_template.render(choice, messages, special, not args.no_generation_prompt, switches, tools)
        tokens = None
    else:
        session = ChatSession(ctx)
        try:
            path = resolve_model(ctx, args.model)
            session.load(path, load_options_from(ctx, args, path))
            options = AnswerOptions(thinking=thinking, tools=tools)
            prompt, tokens = session.render(messages, args.template, options, not args.no_generation_prompt)
        finally:
            session.shutdown()
    if args.json:
        print(json.dumps({"prompt": prompt, "tokens": tokens}, ensure_ascii=False, indent=2))
    else:
        sys.stdout.write(prompt)
        sys.stdout.flush()
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    from localopen.core.chat.template import template_options

    p = sub.add_parser("chat", help="chat with a model in the terminal (Ctrl+C stops an answer)")
    p.add_argument("model", help="a .gguf path or a model in the models folder")
    p.add_argument("-p", "--prompt", help="answer this once and exit")
    p.add_argument("--system", help="system prompt")
    p.add_argument(
        "--image", action="append", metavar="FILE", help="a picture for a vision model to see (repeatable; with -p, "
        "or with the first message)",
    )  # fmt: skip
    p.add_argument("--mmproj", metavar="FILE", help="the vision projector to load (default: the one beside the model)")
    option_flags(p, ["draft"])
    p.add_argument(
        "--template",
        choices=["model", *template_options()],
        help="chat template: the model's own (default) or a known one",
    )
    d = SamplingParams()
    p.add_argument("--temperature", type=float, help=f"default {d.temperature}")
    p.add_argument("--top-p", type=float, help=f"default {d.top_p}")
    p.add_argument("--top-k", type=int, help=f"default {d.top_k}")
    p.add_argument("--min-p", type=float, help=f"default {d.min_p}")
    p.add_argument("--repeat-penalty", type=float, help=f"default {d.repeat_penalty}")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--max-tokens", type=int, help=f"default {d.max_tokens}")
    p.add_argument("--stop", action="append", help="stop string (repeatable)")
    engine_flags(p)
    p.add_argument(
        "--no-thinking",
        action="store_true",
        help="turn a reasoning model's thinking off where its template allows, and never print reasoning",
    )
    p.add_argument("--json", action="store_true", help="the answer, its reasoning and statistics as JSON")
    p.add_argument(
        "--mcp", metavar="FILE", help='MCP servers the model may call, as {"mcpServers": {…}} (Claude Desktop\'s shape)'
    )
    p.add_argument(
        "--tool-choice",
        default="auto",
        help="auto (the model decides), none, required (a call first), or a tool's name",
    )
    p.add_argument("--allow-tools", action="store_true", help="run the model's tool calls without asking")
    p.add_argument("--max-tool-rounds", type=int, default=5, help="answers with tool calls in one turn (default 5)")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("template", help="print exactly the prompt a model (or a .jinja template) makes of messages")
    p.add_argument("model", help="a model (name or .gguf path), or a .jinja chat template file")
    p.add_argument("--messages", required=True, help='JSON file: a list of messages (or {"messages": [...]})')
    p.add_argument("--tools", help='JSON file: a list of OpenAI function schemas (or {"tools": [...]})')
    p.add_argument("--template", choices=["model", *template_options()], help="for a model: another template")
    p.add_argument("--bos", help="for a .jinja file: the bos_token text")
    p.add_argument("--eos", help="for a .jinja file: the eos_token text")
    p.add_argument("--no-generation-prompt", action="store_true", help="leave out the assistant's opening")
    p.add_argument("--no-thinking", action="store_true", help="the template's thinking switch off")
    p.add_argument("--json", action="store_true", help="the prompt and its token count as JSON")
    engine_flags(p)
    p.set_defaults(func=cmd_template)
