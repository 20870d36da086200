"""Terminal commands that run models: chat, bench, results (the engine runs in its own process)."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localopen.app import engine_options
from localopen.app.chat import needs_template
from localopen.cli.flags import given, option_flags
from localopen.cli.output import table
from localopen.core.errors import LocalopenError
from localopen.core.estimate.memory import human_bytes
from localopen.core.options import AnswerOptions, BenchParams, LoadOptions, SamplingParams
from localopen.core.records import AnswerPiece, AnswerStats, BenchResult, LoadInfo, ToolCall

if TYPE_CHECKING:  # the engine client and sessions load only for the commands that run a model
    from localopen.app.chat import ChatSession
    from localopen.app.context import AppContext
    from localopen.app.mcp_tools import McpConnections
    from localopen.app.tool_loop import ToolRun


def _load_options(ctx: AppContext, args: argparse.Namespace, path: Path | str | None = None) -> LoadOptions:
    """The settings (app or `localopen settings`), the model's preset over them, the command's flags
    over both."""
    from localopen.app.presets import preset_for

    return engine_options.load_options(ctx.settings, preset=preset_for(ctx, path), **_load_overrides(ctx, args))


def _load_overrides(ctx: AppContext, args: argparse.Namespace) -> dict[str, Any]:
    """The load flags the person gave (None: not given), by option key; a draft model named by its
    library name is found."""
    from localopen.app import drafting

    flags = given(args)
    if "draft" in flags:
        flags["draft"] = drafting.resolve(ctx, flags["draft"])
    return flags


def _bench_options(ctx: AppContext, args: argparse.Namespace, path: Path) -> tuple[LoadOptions, BenchParams]:
    from localopen.app.presets import preset_for

    flags = given(args)
    return engine_options.bench_options(
        ctx.settings,
        BenchParams(n_prompt=args.n_prompt, n_gen=args.n_gen, reps=args.reps),
        preset=preset_for(ctx, path),
        n_threads=flags["n_threads"],
        n_gpu_layers=flags["n_gpu_layers"],
        kv_cache_type=flags["kv_cache_type"],
        flash_attn=flags["flash_attn"],
    )


def _sampling(args: argparse.Namespace) -> SamplingParams:
    return engine_options.sampling(
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        min_p=args.min_p,
        repeat_penalty=args.repeat_penalty,
        seed=args.seed,
        max_tokens=args.max_tokens,
        stop=args.stop or None,
    )


def _print_load(info: LoadInfo) -> None:
    err = info.estimate_error
    print(
        f"Loaded {info.name} ({info.quantization}) in {info.load_time_ms:.0f} ms on {info.backend}; "
        f"memory {human_bytes(info.memory_actual.total)} (estimated {human_bytes(info.memory_estimate.total)}"
        f"{f', {err:+.1%}' if err is not None else ''}).",
        file=sys.stderr,
    )
    if info.gpu_warning:
        print(f"Warning: {info.gpu_warning}", file=sys.stderr)
    if info.vision is not None:
        v = info.vision
        print(
            f"Sees images: {Path(v['projector']).name} ({v['type']} projector, about {v['image_tokens'] or '?'} "
            "tokens an image)",
            file=sys.stderr,
        )


@contextlib.contextmanager
def ctrl_c_stops(stop: Callable[[], None]) -> Iterator[None]:
    """While the engine works, Ctrl+C asks it to stop (the stream then ends cleanly) instead of
    raising KeyboardInterrupt into the event stream."""
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda *_: stop())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


DIM, RESET = "\033[2m", "\033[0m"


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
    from localopen.app.tool_loop import answer_with_tools

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
    from localopen.app.mcp_tools import McpConnections, read_config

    connections = McpConnections(read_config(Path(path)))
    connections.connect()
    for name, problem in connections.problems.items():
        print(f"localopen: MCP server {name} is not available: {problem}", file=sys.stderr)
    names = ", ".join(t.name for t in connections.tools()) or "none"
    print(f"Tools from MCP: {names}", file=sys.stderr)
    return connections


def cmd_chat(ctx: AppContext, args: argparse.Namespace) -> int:
    import dataclasses

    from localopen.app import vision
    from localopen.app.chat import ChatSession
    from localopen.app.library import resolve_model
    from localopen.engine.errors import EngineDied, EngineError

    path = resolve_model(ctx, args.model)
    images = [vision.read_image(f) for f in args.image or []]
    session = ChatSession(ctx)
    connections = _connect_mcp(args.mcp) if args.mcp else None
    try:
        options = _load_options(ctx, args, path)
        if args.mmproj:
            options = dataclasses.replace(options, mmproj=str(Path(args.mmproj).expanduser()))
        info = session.load(path, options)
        if not args.json:
            _print_load(info)
        if images and info.vision is None:
            raise LocalopenError(vision.no_vision(path))
        template = _choose_template(info, args)
        system = [{"role": "system", "content": args.system}] if args.system and args.system.strip() else []
        history: list[dict[str, Any]] = list(system)
        sampling = _sampling(args)
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
                _print_stats(stats)
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
                    session.load(path, _load_options(ctx, args, path))
                continue
            history = [*asked, *added]
            _print_stats(stats)
    finally:
        session.shutdown()
        if connections is not None:
            connections.close()


def _print_stats(stats: AnswerStats) -> None:
    print(f"[{', '.join(stats.describe())}]", file=sys.stderr)


def cmd_preset(ctx: AppContext, args: argparse.Namespace) -> int:
    """A model's preset, as `git config` shows and sets values: every face loads the model with it."""
    import dataclasses as dc

    from localopen.app import presets
    from localopen.app.library import resolve_model
    from localopen.core.store import presets as preset_store

    if args.model is None:  # every model's preset
        saved = preset_store.all_presets(ctx.db)
        if args.json:
            print(json.dumps({p.model: {**p.settings, "note": p.note} for p in saved}, indent=2))
        for p in [] if args.json else saved:
            print(f"{p.model}: " + ", ".join(f"{k} = {v}" for k, v in sorted(p.settings.items())) + f"  ({p.note})")
        if not saved and not args.json:
            print("No model has a preset: `localopen preset MODEL KEY VALUE` sets one (see --help).")
        return 0
    path = resolve_model(ctx, args.model)
    name = presets.name_of(path)
    if args.unset:
        presets.set_value(ctx, name, args.unset, None)
    elif args.key is not None:
        if args.value is None:
            raise LocalopenError(f"Give a value for {args.key} (or --unset {args.key}).")
        presets.set_value(ctx, name, args.key, args.value)
    mine = presets.preset_for(ctx, path)
    options = engine_options.load_options(ctx.settings, preset=mine)
    effective = {k: v for k, v in dc.asdict(options).items() if k != "type_v"}
    effective["kv_cache_type"] = effective.pop("type_k")
    if args.json:
        print(json.dumps({"model": name, "preset": mine, "loads_with": effective}, indent=2))
        return 0
    print(f"{name}: " + (", ".join(f"{k} = {v}" for k, v in sorted(mine.items())) if mine else "no preset"))
    print("loads with: " + ", ".join(f"{k} = {v}" for k, v in effective.items()))
    return 0


def cmd_tune(ctx: AppContext, args: argparse.Namespace) -> int:
    """Measure a model's load settings here and keep the measurably faster ones as its preset."""
    import dataclasses as dc

    from localopen.app import tune
    from localopen.app.benchmark import BenchmarkSession
    from localopen.app.library import resolve_model

    path = resolve_model(ctx, args.model)
    session = BenchmarkSession(ctx)
    params = dc.replace(tune.TUNE_PARAMS, reps=args.reps)
    with ctrl_c_stops(session.stop):
        choice = tune.tune(ctx, path, session, lambda message: print(message, file=sys.stderr), params)
    if not args.no_save:
        tune.save(ctx, path, choice)
    rows = [choice.baseline, *choice.measured]
    if args.json:
        out = {
            "model": path.name,
            "baseline": choice.baseline.to_dict(),
            "best": choice.best.to_dict(),
            "measured": [m.to_dict() for m in choice.measured],
            "changed": choice.changed,
            "tg_gain": round(choice.tg_gain, 4),
            "pp_gain": round(choice.pp_gain, 4),
            "why": choice.why,
            "saved": choice.changed and not args.no_save,
        }
        print(json.dumps(out, indent=2))
        return 0
    print(
        table(
            [
                [m.candidate.label, f"{m.pp_ts:.1f} ± {m.pp_sd:.1f}", f"{m.tg_ts:.1f} ± {m.tg_sd:.1f}"]
                + [human_bytes(m.memory)]
                for m in rows
            ],
            ["settings (the current ones first)", "pp t/s", "tg t/s", "memory"],
        )
    )
    if not choice.changed:
        print(f"No gain here: {choice.why}. The model's settings are unchanged.")
    elif args.no_save:
        print(f"Faster: {choice.best.candidate.label} ({choice.why}); not saved (--no-save).")
    else:
        print(f"Saved as the model's preset: {choice.best.candidate.label} ({choice.why}).")
    return 0


def cmd_bench(ctx: AppContext, args: argparse.Namespace) -> int:
    from localopen.app.benchmark import BenchmarkSession, BenchRun
    from localopen.app.library import resolve_model

    ctx.read_profile()  # the bandwidth bound saved with each result needs this machine's profile
    paths = [resolve_model(ctx, name) for name in args.models]
    session = BenchmarkSession(ctx)

    def progress(event: LoadInfo | str) -> None:
        if isinstance(event, LoadInfo):
            print(f"{Path(event.path).name}: loaded in {event.load_time_ms:.0f} ms on {event.backend}", file=sys.stderr)
            if event.gpu_warning:
                print(f"Warning: {event.gpu_warning}", file=sys.stderr)
        else:
            print(f"  {event}", file=sys.stderr)

    if args.draft and args.draft != "off":
        return _bench_drafting(ctx, args, session, paths, progress)
    with ctrl_c_stops(session.stop):
        runs: list[BenchRun] = session.run_all(paths, lambda path: _bench_options(ctx, args, path), progress)
    if any(run.aborted for run in runs):
        print("localopen: benchmark stopped; finished tests are saved.", file=sys.stderr)
    _print_results([r for run in runs for r in run.results], args)
    for run in runs if not (args.json or args.csv) else []:
        seen = next((r for r in run.results if r.image_encode_ms is not None), None)
        if seen is not None:
            print(f"{run.path.name} sees images: one 896x896 picture encodes in {seen.image_encode_ms:.1f} ms "
                  f"({seen.image_tokens} tokens; median of {args.reps})")  # fmt: skip
    return 0


def _bench_drafting(ctx: AppContext, args: argparse.Namespace, session: Any, paths: list[Path], progress: Any) -> int:
    """`bench --draft`: each model's tasks plainly and drafted (app/draft_bench), the speed-ups."""
    from localopen.app import drafting
    from localopen.app.benchmark import compare

    draft = drafting.resolve(ctx, args.draft)
    assert draft is not None
    runs = []
    with ctrl_c_stops(session.stop):
        for path in paths:
            runs.append(
                session.run_drafting(path, _load_options(ctx, args, path), draft, args.n_gen, args.reps, progress)
            )
            if runs[-1].aborted:
                print("localopen: benchmark stopped; finished tests are saved.", file=sys.stderr)
                break
    results = [r for run in runs for r in run.results]
    if args.json or args.csv:
        _print_results(results, args)
        return 0
    rows = []
    for row in compare(results, ctx.thresholds):
        for gain in row.drafting:
            same = {True: "yes", False: "NO", None: "?"}[gain.same_text]
            kept = f"{gain.kept:.0%}" if gain.kept is not None else "?"
            rows.append([Path(row.model_filename).name, gain.task, gain.draft, f"{gain.plain_ts:.1f}",
                         f"{gain.drafted_ts:.1f}", f"{gain.speedup:.2f}x", kept, same])  # fmt: skip
    print(table(rows, ["model", "task", "draft", "plain t/s", "drafted t/s", "speed-up", "drafts kept", "same text"]))
    if any(row[-1] == "NO" for row in rows):
        print(
            "\nSame text NO: drafts are checked in batches, which llama.cpp computes with slightly different "
            "rounding than one token at a time; where two tokens were nearly tied the drafted answer took the "
            "other (llama.cpp's own speculative decoding does the same)."
        )
    return 0


def _print_progress(event: LoadInfo | str) -> None:
    if isinstance(event, LoadInfo):
        print(f"  loaded in {event.load_time_ms:.0f} ms on {event.backend}", file=sys.stderr)
    else:
        print(f"  {event}", file=sys.stderr)


def cmd_probe(ctx: AppContext, args: argparse.Namespace) -> int:
    from localopen.app.probe import ProbeSession

    session = ProbeSession(ctx)
    ctx.read_profile()
    with ctrl_c_stops(session.stop):
        report = session.run(args.repo, quant=args.quant, filename=args.file, on_progress=_print_progress)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    pp, tg, mem = report.pp, report.tg, report.memory
    assert pp is not None and tg is not None
    print(f"{report.repo} / {report.file}: {report.verdict.band} (probed)")
    print(f"  generation   {tg.avg_ts:.1f} tokens/s (tg{tg.n_gen})")
    print(f"  prompt       {pp.avg_ts:.1f} tokens/s (pp{pp.n_prompt}); first token after {report.verdict.ttft_s} s"
          " for a 512-token prompt")  # fmt: skip
    print(
        f"  memory       {human_bytes(mem.total)} at {report.n_ctx} tokens of context (llama.cpp's report: weights "
        f"{human_bytes(mem.weights)}, KV cache {human_bytes(mem.kv_cache)}, compute {human_bytes(mem.compute)})"
    )
    print(
        f"  fetched      {human_bytes(report.bytes_fetched)} of {human_bytes(report.file_size)} "
        f"({report.bytes_fetched / report.file_size:.2%}) in {report.elapsed_s:.0f} s; measured on a zero-data "
        "replica, saved with your results as probed"
    )
    return 0


def cmd_calibrate(ctx: AppContext, args: argparse.Namespace) -> int:
    from localopen.app.benchmark import BenchmarkSession
    from localopen.app.calibration import build_shift, calibrate, current

    existing = current(ctx)
    if existing is not None and not args.force and not existing.busy:
        calibration = existing
        print(f"Already calibrated on {existing.created_at} (use --force to measure again).", file=sys.stderr)
    else:
        session = BenchmarkSession(ctx)
        with ctrl_c_stops(session.stop):
            calibration = calibrate(ctx, session, lambda message: print(message, file=sys.stderr))
    shift = build_shift(ctx)
    if args.json:
        since = {"previous_build": shift[0], "shift": [x.to_dict() for x in shift[1]]} if shift else {}
        print(json.dumps({**calibration.to_dict(), **since}, indent=2))
        return 0
    others = ", ".join(f"{family} {gbs:.1f}" for family, gbs in calibration.tg_gbs.items())
    print(
        f"Generation: {calibration.bandwidth_gbs:.1f} GB/s effective memory bandwidth for k-quants"
        + (f" ({others} GB/s)" if others else "")
        + ", "
        f"{calibration.tg_layer_s * 1e6:.0f} µs per layer and {calibration.tg_token_s * 1e3:.2f} ms per token"
    )
    flops = ", ".join(f"{family} {gflops:.0f}" for family, gflops in calibration.pp_gflops.items())
    print(f"Prompt: {flops} GFLOP/s by quantization family, attention {calibration.pp_attention_gflops:.0f} GFLOP/s")
    print(f"llama.cpp {calibration.llama_cpp_version}, {calibration.n_threads} threads, machine {calibration.machine}")
    if calibration.busy:
        print(
            f"Taken while the machine was busy ({calibration.busy}): these figures read low. "
            "Run `localopen calibrate` again when other programs are idle.",
            file=sys.stderr,
        )
    if shift:
        print(f"Since llama.cpp {shift[0]} on this machine:")
        for x in shift[1]:
            print(f"  {x.describe()}")
    return 0


def _print_results(results: list[BenchResult], args: argparse.Namespace) -> None:
    from localopen.core.report import bench_format

    fmt = "json" if args.json else "csv" if args.csv else "table" if args.table else "md"
    print(bench_format.FORMATS[fmt](results), end="" if fmt == "csv" else "\n")


def cmd_results(ctx: AppContext, args: argparse.Namespace) -> int:
    from localopen.app.benchmark import history

    if args.compare_builds:
        return _compare_builds(ctx, args)
    if args.records:
        from localopen.app.benchmark import records

        for record in records(ctx, args.model):
            print(json.dumps(record.to_dict()))
        return 0
    results = history(ctx, args.model, args.machine)
    if not results and not (args.json or args.csv):
        print("No saved results yet: run `localopen bench MODEL`.", file=sys.stderr)
        return 0
    _print_results(results, args)
    return 0


def _compare_builds(ctx: AppContext, args: argparse.Namespace) -> int:
    """Each model's speeds on the previous llama.cpp build and this one; --rerun first measures
    again (short protocol) the installed models only the previous build has measured."""
    from localopen.app.benchmark import RERUN_PARAMS, BenchmarkSession, build_changes, stale
    from localopen.app.calibration import build_shift, llama_cpp_version

    current = llama_cpp_version()
    waiting = stale(ctx, current)
    if args.rerun and waiting:
        ctx.read_profile()
        session = BenchmarkSession(ctx)
        print(f"Measuring {len(waiting)} model(s) again with llama.cpp {current}…", file=sys.stderr)

        def how(path: Path) -> tuple[LoadOptions, BenchParams]:
            return engine_options.bench_options(ctx.settings, RERUN_PARAMS)

        with ctrl_c_stops(session.stop):
            session.run_all(waiting, how, lambda event: None)
        waiting = stale(ctx, current)
    changes = build_changes(ctx)
    if args.json:
        print(json.dumps([c.to_dict() for c in changes], indent=2))
        return 0
    if waiting:
        names = ", ".join(p.name for p in waiting[:5])
        print(
            f"{len(waiting)} installed model(s) were measured only with an earlier llama.cpp ({names}): "
            "`localopen results --compare-builds --rerun` measures them with this one.",
            file=sys.stderr,
        )
    shift = build_shift(ctx)
    if shift:
        print(f"The calibration since llama.cpp {shift[0]}: " + "; ".join(x.describe() for x in shift[1]))
    if not changes:
        print("No model has results on two llama.cpp builds on this machine yet.")
        return 0
    rows = [
        [
            c.model,
            c.test,
            f"{c.old_ts:.1f} ({c.old_build})",
            f"{c.new_ts:.1f} ({c.new_build})",
            f"{c.change:+.1%}",
            ("SLOWER" if c.change < 0 else "faster") if c.flagged else "within noise",
        ]
        for c in changes
    ]
    print(table(rows, ["model", "test", "t/s before", "t/s now", "change", "verdict"]))
    slower = [c for c in changes if c.slower]
    if slower:
        print(f"\nSlower beyond the noise on {len(slower)} test(s). To go back: {slower[0].pin_command}")
    return 0


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
    from localopen.app.chat import ChatSession
    from localopen.app.library import resolve_model
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
            session.load(path, _load_options(ctx, args, path))
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


def cmd_ps(ctx: AppContext, args: argparse.Namespace) -> int:
    """What a running local server has loaded: who uses each model, its memory, when it unloads."""
    import urllib.error
    import urllib.request

    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{args.port}/api/ps"
    request = urllib.request.Request(url)
    if args.api_key:
        request.add_header("Authorization", f"Bearer {args.api_key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            models = json.loads(response.read())["models"]
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LocalopenError(
            f"No localopen server answers at {host}:{args.port} ({reason}). Start one with `localopen serve`, "
            "or name its address with --host and --port."
        ) from exc
    if args.json:
        print(json.dumps(models, indent=2))
        return 0
    if not models:
        print("No model is loaded.")
        return 0
    rows = [
        [
            m["model"],
            ", ".join(m.get("held_by") or []) or ("answering" if m.get("busy") else "idle"),
            human_bytes(m["size"]),
            str(m.get("context_length", "")),
            m["expires_at"] or "when memory is needed",
        ]
        for m in models
    ]
    print(table(rows, ["model", "held by", "memory", "context", "unloads at"]))
    return 0


def cmd_check_tools(ctx: AppContext, args: argparse.Namespace) -> int:
    """Usable as an agent here: five canned tasks through the model's own call format, scored and saved."""
    from localopen.app import agent_check
    from localopen.app.library import resolve_model

    path = resolve_model(ctx, args.model)
    with_progress = None if args.json else (lambda message: print(f"  {message}", file=sys.stderr))
    result = agent_check.check(ctx, path, _load_options(ctx, args, path), with_progress)
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


def cmd_serve(ctx: AppContext, args: argparse.Namespace) -> int:
    """The local server (OpenAI, Anthropic and Ollama APIs) on this machine, until Ctrl+C."""
    from localopen.api.server import ApiApp, ServerConfig, serve_forever
    from localopen.app.serving import ModelServer

    port = args.port if args.port is not None else 11434 if args.ollama else 8080
    config = ServerConfig(
        args.host,
        port,
        args.api_key or None,
        tuple(args.cors or ()),
        tuple(ctx.settings.allowed_hosts) + tuple(args.allow_host or ()),
    )
    config.check()
    config.check_port_free()
    server = ModelServer(ctx, _load_options(ctx, args), default_model=None, template=args.template)
    server.overrides = _load_overrides(ctx, args)  # each model loads with its preset, these flags over it
    try:
        if args.model:
            model = server.resolve_name(args.model)
            server.default_model = model.id
            print(f"Loading {model.id}…", file=sys.stderr)
            server.preload()
        api = ApiApp(server, config)
        models = ", ".join(m.id for m in server.models()) or "none yet: download one with `localopen pull`"
        root = config.base_url.removesuffix("/v1")
        print(
            f"Serving the OpenAI and Anthropic APIs at {config.base_url} and the Ollama API at {root} "
            f"(models: {models}). Models load on demand and stay loaded as memory allows "
            f"({ctx.models.budget.percent}% of the free memory, {human_bytes(ctx.models.room())} now); "
            "an idle one unloads after "
            f"{ctx.settings.keep_alive_s} s."
            f"{' Clients must send the API key.' if config.api_key else ''} Ctrl+C stops.",
            file=sys.stderr,
        )
        serve_forever(api)
    finally:
        server.close()
        ctx.close_models()
    return 0


def _output_flags(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="llama-bench JSON field names, plus localopen's")
    group.add_argument("--csv", action="store_true")
    group.add_argument("--md", action="store_true", help="markdown table (the default)")
    group.add_argument("--table", action="store_true", help="plain aligned columns")


def _engine_flags(p: argparse.ArgumentParser, ctx: bool = True) -> None:
    """Load flags; each defaults to the model's preset, else the setting (`localopen settings`)."""
    keys = ["n_ctx"] if ctx else []
    bench = {} if ctx else {"kv_cache_type": "f16, as llama-bench", "flash_attn": "auto, as llama-bench"}
    option_flags(p, [*keys, "n_threads", "n_gpu_layers", "kv_cache_type", "flash_attn"], bench)


def add_engine_commands(sub: argparse._SubParsersAction) -> None:
    from localopen.core.chat.template import template_options

    p = sub.add_parser(
        "preset",
        help="a model's own load settings over the global ones (context, KV cache, flash attention, threads…)",
    )
    p.add_argument("model", nargs="?", help="a model in the library (none: list every preset)")
    p.add_argument("key", nargs="?", help="n_ctx, kv_cache_type, flash_attn, n_threads, n_gpu_layers, n_batch…")
    p.add_argument("value", nargs="?")
    p.add_argument("--unset", metavar="KEY", help="remove KEY from the preset (the global setting applies)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_preset)

    p = sub.add_parser(
        "tune", help="measure a model's threads, batch, flash attention and KV cache here; keep what is faster"
    )
    p.add_argument("model")
    p.add_argument("--reps", type=int, default=3, help="repetitions per setting (default 3)")
    p.add_argument("--no-save", action="store_true", help="report only; leave the model's preset as it is")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tune)

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
    _engine_flags(p)
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
    _engine_flags(p)
    p.set_defaults(func=cmd_template)

    p = sub.add_parser("check-tools", help="measure whether a model works as an agent here (5 tool-call tasks)")
    p.add_argument("model", help="an installed model (name or .gguf path)")
    p.add_argument("--json", action="store_true")
    _engine_flags(p)
    p.set_defaults(func=cmd_check_tools)

    p = sub.add_parser(
        "serve", help="serve the library's models over the OpenAI, Anthropic and Ollama APIs (Ctrl+C stops)"
    )
    p.add_argument("model", nargs="?", help="load this model now (others load on demand, as memory allows)")
    option_flags(p, ["draft"])
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (beyond 127.0.0.1 needs --api-key)")
    p.add_argument("--port", type=int, help="default 8080 (11434 with --ollama)")
    p.add_argument("--ollama", action="store_true", help="listen on Ollama's port, 11434, for tools that assume it")
    p.add_argument("--api-key", help="clients must send it (Authorization: Bearer KEY, or x-api-key)")
    p.add_argument("--cors", action="append", help="allow browser pages from this origin (repeatable)")
    p.add_argument(
        "--allow-host",
        action="append",
        help="also answer requests that name this server by this host name (repeatable; loopback names always)",
    )
    p.add_argument(
        "--template",
        choices=template_options(),
        help="chat template for models whose file has none (never guessed; without it they answer "
        "/v1/completions only)",
    )
    _engine_flags(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("ps", help="what a running local server has loaded: users, memory, when it unloads")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--api-key", help="the server's key, if it has one")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ps)

    p = sub.add_parser("bench", help="measure throughput as llama-bench does; results are saved")
    p.add_argument("models", nargs="+")
    p.add_argument("-p", "--n-prompt", type=int, default=512)
    p.add_argument("-n", "--n-gen", type=int, default=128)
    p.add_argument("-r", "--reps", type=int, default=5)
    _engine_flags(p, ctx=False)
    option_flags(p, ["draft"])
    _output_flags(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("probe", help="measure a Hub file here before downloading it (fetches only its header)")
    p.add_argument("repo", help="Hub repository, e.g. bartowski/SmolLM2-135M-Instruct-GGUF")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--quant", help="quantization to probe (default Q4_K_M)")
    which.add_argument("--file", help="exact file name in the repository")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("calibrate", help="measure this machine once, for the predicted speed of every model")
    p.add_argument("--force", action="store_true", help="measure again")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("results", help="saved benchmark results")
    p.add_argument("--model", help="name, path or sha256 prefix")
    p.add_argument("--machine", help="machine id prefix (see `localopen hw`)")
    p.add_argument(
        "--compare-builds",
        action="store_true",
        help="each model's speeds on the previous llama.cpp build and this one, changes beyond the noise flagged",
    )
    p.add_argument("--rerun", action="store_true", help="with --compare-builds: first measure again what only "
                   "an earlier build measured (short protocol)")  # fmt: skip
    p.add_argument(
        "--records",
        action="store_true",
        help="this machine's results as versioned records, one JSON object a line (what a shared index reads)",
    )
    _output_flags(p)
    p.set_defaults(func=cmd_results)
