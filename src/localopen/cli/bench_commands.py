"""Terminal commands that measure: `bench` (as llama-bench does), `probe` (a Hub file before any
download), `calibrate`, `results`, `tune` and the `preset` a model loads with."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localopen.app import engine_options
from localopen.cli.flags import (
    bench_options_from,
    engine_flags,
    load_options_from,
    option_flags,
    output_flags,
)
from localopen.cli.output import table
from localopen.cli.terminal import ctrl_c_stops, print_progress
from localopen.core.errors import LocalopenError
from localopen.core.estimate.memory import human_bytes
from localopen.core.options import BenchParams, LoadOptions
from localopen.core.records import BenchResult, LoadInfo

if TYPE_CHECKING:  # the engine client and sessions load only for the commands that run a model
    from localopen.app.context import AppContext


def cmd_preset(ctx: AppContext, args: argparse.Namespace) -> int:
    """A model's preset, as `git config` shows and sets values: every face loads the model with it."""
    import dataclasses as dc

    from localopen.app import presets
    from localopen.app.models.library import resolve_model

    if args.model is None:  # every model's preset
        saved = presets.all_presets(ctx)
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

    from localopen.app.measure import tune
    from localopen.app.measure.benchmark import BenchmarkSession
    from localopen.app.models.library import resolve_model

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
    from localopen.app.measure.benchmark import BenchmarkSession, BenchRun
    from localopen.app.models.library import resolve_model

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
        runs: list[BenchRun] = session.run_all(paths, lambda path: bench_options_from(ctx, args, path), progress)
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
    from localopen.app.conversation import drafting
    from localopen.app.measure.benchmark import compare

    draft = drafting.resolve(ctx, args.draft)
    assert draft is not None
    runs = []
    with ctrl_c_stops(session.stop):
        for path in paths:
            runs.append(
                session.run_drafting(path, load_options_from(ctx, args, path), draft, args.n_gen, args.reps, progress)
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
            kept = f"{gain.kept:.0%}" if gain.kept is not None else "none drafted"
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


def cmd_probe(ctx: AppContext, args: argparse.Namespace) -> int:
    from localopen.app.measure.probe import ProbeSession

    session = ProbeSession(ctx)
    ctx.read_profile()
    with ctrl_c_stops(session.stop):
        report = session.run(args.repo, quant=args.quant, filename=args.file, on_progress=print_progress)
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
    from localopen.app.measure.benchmark import BenchmarkSession
    from localopen.app.measure.calibration import build_shift, calibrate, current

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
    from localopen.app.measure.benchmark import history

    if args.compare_builds:
        return _compare_builds(ctx, args)
    if args.share:
        return _share(ctx, args)
    if args.records:
        from localopen.app.measure.benchmark import records

        for record in records(ctx, args.model):
            print(json.dumps(record.to_dict()))
        return 0
    results = history(ctx, args.model, args.machine)
    if not results and not (args.json or args.csv):
        print("No saved results yet: run `localopen bench MODEL`.", file=sys.stderr)
        return 0
    _print_results(results, args)
    return 0


def _share(ctx: AppContext, args: argparse.Namespace) -> int:
    """Show exactly what would be sent to the open index, then send it only when the user says so
    (an answer at the terminal, or --yes); never from a script that did not ask."""
    from localopen.app.index import share

    submission = share.prepare(ctx, args.model)
    if submission.empty:
        print("\n".join(submission.nothing_lines()))
        return 0
    print(submission.text())
    if not args.yes:
        if not sys.stdin.isatty():
            print("\nNothing sent: add --yes to send what is shown above.", file=sys.stderr)
            return 1
        answer = input(f"\nSend these {len(submission.records)} record(s) to {submission.repo}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing sent.")
            return 0
    published = share.publish(ctx, submission)
    print(published.words())
    return 1 if published.waiting and not published.offline else 0


def _compare_builds(ctx: AppContext, args: argparse.Namespace) -> int:
    """Each model's speeds on the previous llama.cpp build and this one; --rerun first measures
    again (short protocol) the installed models only the previous build has measured."""
    from localopen.app.measure.benchmark import RERUN_PARAMS, BenchmarkSession, build_changes, stale
    from localopen.app.measure.calibration import build_shift, llama_cpp_version

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


def add_commands(sub: argparse._SubParsersAction) -> None:
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

    p = sub.add_parser("bench", help="measure throughput as llama-bench does; results are saved")
    p.add_argument("models", nargs="+")
    p.add_argument("-p", "--n-prompt", type=int, default=512)
    p.add_argument("-n", "--n-gen", type=int, default=128)
    p.add_argument("-r", "--reps", type=int, default=5)
    engine_flags(p, ctx=False)
    option_flags(p, ["draft"])
    output_flags(p)
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
    p.add_argument(
        "--share",
        action="store_true",
        help="show the records not shared yet, then (when you say so) send them to the open usability index "
        "as a pull request to its Hub dataset (the index_repo setting), with your Hugging Face token",
    )
    p.add_argument("--yes", action="store_true", help="with --share: send what is shown without asking")
    output_flags(p)
    p.set_defaults(func=cmd_results)
