"""Terminal commands that run models: chat, bench, results (the engine runs in its own process)."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from localopen.core.errors import LocalopenError


def resolve_model(name: str) -> Path:
    """A path, or a model in the library (by file name or part of its name or repo)."""
    path = Path(name).expanduser()
    if path.exists():
        return path
    from localopen.core.library import find, touch
    from localopen.core.paths import app_paths
    from localopen.core.storage import connect

    paths = app_paths()
    conn = connect(paths.database)
    model = find(conn, paths.models_dir(), name)
    if model.missing:
        raise LocalopenError(f"{model.filename} was in the library but {model.path} is gone (moved or deleted). "
                             "Import it again from its new place, or `localopen rm` it.")
    touch(conn, model.path)
    return model.path


def _load_options(args: argparse.Namespace):
    from localopen.engine.protocol import LoadOptions

    return LoadOptions(n_ctx=args.ctx, n_threads=args.threads, n_gpu_layers=args.ngl)


def _sampling(args: argparse.Namespace):
    from localopen.engine.protocol import SamplingParams

    return SamplingParams(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, min_p=args.min_p,
                          repeat_penalty=args.repeat_penalty, seed=args.seed, max_tokens=args.max_tokens,
                          stop=args.stop or [])


def _print_load(info: dict[str, Any]) -> None:
    from localopen.core.fit import human_bytes

    actual, estimate = info["memory_actual"]["total"], info["memory_estimate"]["total"]
    err = info.get("estimate_error")
    print(f"Loaded {info['name']} ({info['quantization']}) in {info['load_time_ms']:.0f} ms on {info['backend']}; "
          f"memory {human_bytes(actual)} (estimated {human_bytes(estimate)}"
          f"{f', {err:+.1%}' if err is not None else ''}).", file=sys.stderr)
    if info.get("gpu_warning"):
        print(f"Warning: {info['gpu_warning']}", file=sys.stderr)


@contextlib.contextmanager
def ctrl_c_stops(engine) -> Iterator[None]:
    """While the engine works, Ctrl+C asks it to stop (the stream then ends cleanly) instead of
    raising KeyboardInterrupt into the event stream."""
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda *_: engine.stop())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _answer(engine, messages, sampling, template, quiet: bool) -> tuple[str, dict[str, Any]]:
    from localopen.engine.protocol import Done, Token

    parts: list[str] = []
    stats: dict[str, Any] = {}
    with ctrl_c_stops(engine):
        for event in engine.chat(messages, sampling, template):
            if isinstance(event, Token):
                parts.append(event.text)
                if not quiet:
                    print(event.text, end="", flush=True)
            elif isinstance(event, Done):
                stats = event.stats
    if not quiet:
        print()
    return "".join(parts), stats


def cmd_chat(args: argparse.Namespace) -> int:
    from localopen.engine.client import Engine, EngineError

    path = resolve_model(args.model)
    engine = Engine()
    try:
        info = engine.load(str(path), _load_options(args))
        if not args.json:
            _print_load(info)
        template = args.template
        if not info["has_chat_template"] and template is None:
            if args.prompt is not None or not sys.stdin.isatty():
                raise LocalopenError(
                    "This model has no chat template, so localopen will not guess one. Pass --template with one "
                    f"of: {', '.join(info['template_options'])} (suggested: {info['template_suggestion']}).")
            print(f"This model has no chat template. Choose one of {', '.join(info['template_options'])} "
                  f"[{info['template_suggestion']}]: ", end="", file=sys.stderr, flush=True)
            template = input().strip() or info["template_suggestion"]
        messages: list[dict[str, str]] = [{"role": "system", "content": args.system}] if args.system else []
        sampling = _sampling(args)
        if args.prompt is not None:
            messages.append({"role": "user", "content": args.prompt})
            content, stats = _answer(engine, messages, sampling, template, quiet=args.json)
            if args.json:
                print(json.dumps({"content": content, **stats}, indent=2))
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
                messages = messages[:1] if args.system else []
                continue
            if not line.strip():
                continue
            messages.append({"role": "user", "content": line})
            try:
                content, stats = _answer(engine, messages, sampling, template, quiet=False)
            except EngineError as exc:
                print(f"localopen: {exc}", file=sys.stderr)
                messages.pop()
                if exc.kind == "died":
                    engine.start()
                    engine.load(str(path), _load_options(args))
                continue
            messages.append({"role": "assistant", "content": content})
            _print_stats(stats)
    finally:
        engine.shutdown()


def _print_stats(stats: dict[str, Any]) -> None:
    from localopen.core.conversations import describe_stats

    if stats:
        print(f"[{', '.join(describe_stats(stats))}]", file=sys.stderr)


def cmd_bench(args: argparse.Namespace) -> int:
    from localopen.core import results
    from localopen.core.catalog import load_catalog
    from localopen.core.hardware import read_profile
    from localopen.core.paths import app_paths
    from localopen.core.storage import connect
    from localopen.engine.client import Engine
    from localopen.engine.protocol import BenchParams, LoadOptions

    paths = app_paths()
    hw = read_profile(paths.models_dir(), paths.cache, measure=False)
    known = load_catalog().evidence_by_repo()
    conn = connect(paths.database)
    params = BenchParams(n_prompt=args.n_prompt, n_gen=args.n_gen, reps=args.reps, n_threads=args.threads)
    saved: list[dict[str, Any]] = []
    stopped = False
    for name in args.models:
        if stopped:
            break
        path = resolve_model(name)
        facts = results.file_facts(conn, path, known)
        engine = Engine()  # a fresh process per model: clean peak-memory figures, crashes isolated
        try:
            info = engine.load(str(path), LoadOptions(n_ctx=256, n_threads=args.threads, n_gpu_layers=args.ngl))
            print(f"{path.name}: loaded in {info['load_time_ms']:.0f} ms on {info['backend']}", file=sys.stderr)
            if info.get("gpu_warning"):
                print(f"Warning: {info['gpu_warning']}", file=sys.stderr)
            with ctrl_c_stops(engine):
                for event in engine.bench(params):
                    facts_here = {**facts, **results.run_facts(hw, info["llama_cpp_version"])}
                    stopped = _on_bench_event(event, conn, saved, facts_here) or stopped
        finally:
            engine.shutdown()
    _print_results(saved, args)
    return 0


def _on_bench_event(event, conn, saved, facts) -> bool:
    """Print progress; enrich, save and collect results. True when the user stopped the run."""
    from localopen.core import results
    from localopen.engine.protocol import BenchDone, BenchProgress

    if isinstance(event, BenchProgress):
        print(f"  {event.message}", file=sys.stderr)
        return False
    if not isinstance(event, BenchDone):
        return False
    if event.aborted:
        print("localopen: benchmark stopped; finished tests are saved.", file=sys.stderr)
    for r in event.results:
        r.update(facts)
        r["id"] = results.save(conn, r)
        saved.append(r)
    return event.aborted


def _print_results(records: list[dict[str, Any]], args: argparse.Namespace) -> None:
    from localopen.core import results

    if args.json:
        print(results.to_json(records))
    elif args.csv:
        print(results.to_csv(records), end="")
    else:
        print(results.markdown(records))


def cmd_results(args: argparse.Namespace) -> int:
    from localopen.core import results
    from localopen.core.paths import app_paths
    from localopen.core.storage import connect

    records = results.query(connect(app_paths().database), args.model, args.machine)
    if not records and not (args.json or args.csv):
        print("No saved results yet: run `localopen bench MODEL`.", file=sys.stderr)
        return 0
    _print_results(records, args)
    return 0


def _output_flags(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="llama-bench JSON field names, plus localopen's")
    group.add_argument("--csv", action="store_true")
    group.add_argument("--md", action="store_true", help="markdown table (the default)")


def add_engine_commands(sub: argparse._SubParsersAction) -> None:
    from localopen.core.chat_template import template_options

    p = sub.add_parser("chat", help="chat with a model in the terminal (Ctrl+C stops an answer)")
    p.add_argument("model", help="a .gguf path or a model in the models folder")
    p.add_argument("-p", "--prompt", help="answer this once and exit")
    p.add_argument("--system", help="system prompt")
    p.add_argument("--template", choices=["model", *template_options()],
                   help="chat template: the model's own (default) or a known one")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--min-p", type=float, default=0.05)
    p.add_argument("--repeat-penalty", type=float, default=1.1)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--stop", action="append", help="stop string (repeatable)")
    p.add_argument("--ctx", type=int, default=4096, help="context size in tokens")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--ngl", type=int, default=0, help="layers to offload to the GPU (-1: all)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("bench", help="measure throughput as llama-bench does; results are saved")
    p.add_argument("models", nargs="+")
    p.add_argument("-p", "--n-prompt", type=int, default=512)
    p.add_argument("-n", "--n-gen", type=int, default=128)
    p.add_argument("-r", "--reps", type=int, default=5)
    p.add_argument("-t", "--threads", type=int, default=None)
    p.add_argument("--ngl", type=int, default=0)
    _output_flags(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("results", help="saved benchmark results")
    p.add_argument("--model", help="name, path or sha256 prefix")
    p.add_argument("--machine", help="machine id prefix (see `localopen hw`)")
    _output_flags(p)
    p.set_defaults(func=cmd_results)
