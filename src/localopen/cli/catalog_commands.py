"""Terminal commands that read the catalog and this machine: catalog, info, grade, hw, summary,
diagnostics, settings."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localopen.cli.flags import given, option_flags
from localopen.cli.output import print_json, table
from localopen.core.errors import LocalopenError
from localopen.core.estimate.memory import human_bytes

if TYPE_CHECKING:
    from localopen.app.context import AppContext
    from localopen.core.estimate.verdict import Verdict


def _size(size: int | None, estimate: bool) -> str:
    return ("~" if estimate else "") + human_bytes(size)


# --- catalog --------------------------------------------------------------------------------
def cmd_catalog(ctx: AppContext, args: argparse.Namespace) -> int:
    from localopen.app.usable.usable_here import MachineSnapshot, catalog_rows

    rows, out = [], []
    for r in catalog_rows(ctx, MachineSnapshot.read(ctx, ctx.read_profile(), args.n_ctx)):
        m, g, q, fit = r.model, r.model.grade, r.quant, r.fit
        if args.grade and g.letter not in args.grade.upper():
            continue
        if args.search and not m.matches(args.search):
            continue
        if args.fits and not r.fits:
            continue
        assert fit is not None  # the profile was read above
        rows.append(
            [
                m.id,
                g.badge + (" (prov.)" if g.provisional else ""),
                g.rights.license_key or "none",
                f"{m.params_b}B",
                q.type,
                _size(q.size_bytes, q.size_is_estimate),
                fit.label,
                r.verdict.label if r.verdict else "?",
                _speeds(r.verdict),
            ]
        )
        out.append(
            {
                "id": m.id,
                "gguf_repo": m.gguf_repo,
                "base_model": m.base_model,
                "family": m.family,
                "params_b": m.params_b,
                **g.to_dict(),
                "quant": q.type,
                "size_bytes": q.size_bytes,
                "size_is_estimate": q.size_is_estimate,
                "fit": fit.to_dict(),
                "usable_here": r.verdict.to_dict() if r.verdict else None,
                "installed": str(r.installed.path) if r.installed else None,
            }
        )
    if args.json:
        print_json(out)
        return 0
    print(
        table(rows, ["model", "grade", "licence", "params", "quant", "size", "fit here", "usable here", "speed here"])
    )
    print(
        f"\n{len(rows)} of {len(ctx.catalog.models)} models. Grades: A open science … E non-commercial, ? unrated; "
        "T0–T3 = transparency. '~' sizes are estimates. Usable here: measured (a benchmark of the file here), "
        "probed (its Hub header, benchmarked here before any download) or predicted (this machine's calibration)."
    )
    if ctx.catalog.wanted and not (args.search or args.grade or args.fits):
        print("\nWanted, not listed yet:")
        for w in ctx.catalog.wanted:
            print(f"  {w.name} ({w.repo}): missing {w.missing}")
    _calibration_hint(ctx)
    return 0


def _speeds(verdict: Verdict | None) -> str:
    if verdict is not None and not verdict.tg_tps and verdict.pp_tps:
        return f"reads {verdict.pp_tps:.0f} t/s"  # an embedding model writes no text
    if verdict is None or not verdict.tg_tps:
        return "?"
    first = f", first token {verdict.ttft_s:.1f} s" if verdict.ttft_s is not None else ""
    return f"{verdict.tg_tps:.1f} t/s{first}"


def _calibration_hint(ctx: AppContext) -> None:
    from localopen.app.measure.calibration import current

    if current(ctx) is None:
        print(
            "\nThis machine is not calibrated yet, so predicted speeds are rough: run `localopen calibrate` "
            "(a minute or two on idle cores), or `localopen probe REPO` to measure one file before downloading it.",
            file=sys.stderr,
        )


def _say_unread(unread: str | None) -> None:
    """Why the open index could not be read now, when it could not (its cache answers then)."""
    if unread:
        print(f"The open index could not be read now ({unread}): its cached records are used.", file=sys.stderr)


# --- info -----------------------------------------------------------------------------------
def cmd_info(ctx: AppContext, args: argparse.Namespace) -> int:
    from localopen.app.conversation import capabilities, drafting, vision
    from localopen.app.index import read as index_reader
    from localopen.app.usable.usable_here import (
        MachineSnapshot,
        catalog_largest_contexts,
        catalog_row,
        file_row,
        quant_rows,
    )

    profile = ctx.read_profile()
    target = args.model
    entry = ctx.catalog.get(target)
    if entry is None and not Path(target).expanduser().exists():
        raise LocalopenError(
            f"'{target}' is neither a file nor a model in the catalog (try `localopen catalog --search WORD`)."
        )
    # The open index's records of this model's files (when online; else what is cached).
    unread = (
        index_reader.refresh_models(ctx, [entry], learn_hashes=True)
        if entry
        else index_reader.refresh_file(ctx, Path(target).expanduser())
    )
    _say_unread(unread)
    entry = ctx.catalog.get(target)  # with the Hub's exact sizes and sha256 once read
    # One reading of this machine for every row below, the fit for the context and cache asked.
    flags = given(args)
    here = MachineSnapshot.read(ctx, profile, flags["n_ctx"], flags["kv_cache_type"], flags["flash_attn"])
    if entry is not None:
        g = entry.grade
        quants = quant_rows(ctx, here, entry)
        row = catalog_row(ctx, here, entry)
        caps = capabilities.of_repo(ctx, here, entry.gguf_repo)
        largest = catalog_largest_contexts(here, entry)
        if args.json:
            print_json(
                {
                    "id": entry.id,
                    "gguf_repo": entry.gguf_repo,
                    "base_model": entry.base_model,
                    **g.to_dict(entry.evidence),
                    "mof": entry.mof,
                    "osai": entry.osai,
                    "usable_here": row.verdict.to_dict() if row.verdict else None,
                    "capabilities": caps.to_dict() if caps else None,
                    "vision": entry.vision,
                    "kind": entry.kind,
                    "fit_cache": here.cache,
                    "largest_context": largest,
                    "quants": [
                        {
                            "type": q.quant.type,
                            "pattern": q.quant.pattern,
                            "size_bytes": q.quant.size_bytes,
                            "size_is_estimate": q.quant.size_is_estimate,
                            "fit": q.fit.to_dict() if q.fit else None,
                            "usable_here": q.verdict.to_dict() if q.verdict else None,
                        }
                        for q in quants
                    ],
                }
            )
            return 0
        print(f"{entry.id} — {entry.family}, {entry.params_b}B parameters, context {entry.context_length}")
        print(f"GGUF repo: {entry.gguf_repo}    base model: {entry.base_model}")
        if entry.kind_words:
            print(f"What it is: {entry.kind_words}")
        if caps is not None:
            print(f"Capabilities ({caps.basis}): {caps.reasoning or 'no reasoning'}; {caps.tools_label}; "
                  f"{_vision_words(caps.vision)}")  # fmt: skip
        else:
            print("Capabilities: known once a file is installed or probed here (its chat template says)")
        if entry.vision is not None:
            name = entry.vision.get("projector") or "its mmproj file"
            print(f"Sees images: the GGUF repository publishes a vision projector ({name}); a download fetches it")
        print(f"Openness: {g.badge}  {g.label}{'  (provisional)' if g.provisional else ''}")
        for line in g.explanation:
            print(f"  - {line}")
        for component, url in entry.evidence.sources.items():
            print(f"    source ({component}): {url}")
        if g.flags:
            print("  Flags: " + ", ".join(sorted(g.flags)))
        for hint in g.raise_hints:
            print(f"  To raise: {hint}")
        if entry.notes:
            print(f"  Note: {entry.notes}")
        if row.verdict:
            print(f"Usable here: {row.verdict.label} — {row.verdict.reason}")
        print(_largest_line(largest, entry.recommended.type))
        print(f"\nFiles (sizes with ~ are estimates; the fit at context {here.n_ctx}, {_cache_words(here.cache)}):")
        print(
            table(
                [
                    [
                        q.quant.type,
                        q.quant.pattern,
                        _size(q.quant.size_bytes, q.quant.size_is_estimate),
                        q.fit.label if q.fit else "?",
                        human_bytes(q.fit.memory.total) if q.fit else "?",
                        q.verdict.label if q.verdict else "?",
                        _speeds(q.verdict),
                    ]
                    for q in quants
                ],
                ["quant", "file pattern", "size", "fit here", "memory needed", "usable here", "speed here"],
            )
        )
        _calibration_hint(ctx)
        return 0

    path = Path(target).expanduser()
    f = file_row(ctx, here, path)
    caps = capabilities.of_file(ctx, path, f.header.chat_template)
    drafts = drafting.candidates(ctx, path)
    paired = vision.pairing(path)
    s, g, fit = f.header.summary(), f.grade, f.fit
    assert fit is not None
    if args.json:
        print_json(
            {
                **s,
                **g.to_dict(f.evidence),
                "fit": fit.to_dict(),
                "fit_cache": f.cache,
                "largest_context": f.largest_context,
                "usable_here": f.verdict.to_dict() if f.verdict else None,
                "capabilities": caps.to_dict(),
                "catalog_match": (
                    {"id": f.match.model.id, "basis": f.match.basis, "exact": f.match.exact} if f.match else None
                ),
                "draft_models": [d.to_dict() for d in drafts],
                "projector": (
                    {"path": str(paired.projector), **paired.facts.to_dict()}
                    if paired.projector and paired.facts
                    else None
                ),
                "projector_problems": list(paired.problems),
            }
        )
        return 0
    print(f"{s['name']} ({s['architecture']}, {s['quantization']}, {s['n_params'] / 1e9:.2f}B parameters)")
    for key in (
        "path",
        "file_size",
        "context_length",
        "block_count",
        "embedding_length",
        "head_count",
        "head_count_kv",
        "key_length",
        "value_length",
        "sliding_window",
        "vocab_size",
        "has_chat_template",
        "license",
    ):
        print(f"  {key:18} {s[key]}")
    print(f"Capabilities: {caps.reasoning or 'no reasoning'}; {caps.tools_label}; {_vision_words(caps.vision)}")
    if paired.facts is not None and paired.projector is not None:
        v = paired.facts
        print(
            f"  vision projector {paired.projector.name}: {v.kind} ({v.family or 'family not known'}), encoder "
            f"{v.encoder_params / 1e6:.0f}M parameters, {human_bytes(v.file_size)} beside the model's weights, "
            f"about {v.image_tokens or '?'} tokens an image"
        )
    for problem in paired.problems:
        print(f"  not paired: {problem}")
    if f.match is not None:
        known = f.match.model.id
        print(f"Openness: {g.badge}, the catalog's {known} ({f.match.basis}): `localopen info {known}`")
    else:
        print(f"Openness: {g.badge} (provisional, from the file's own metadata)")
    for line in g.explanation[:1]:
        print(f"  - {line}")
    m = fit.memory
    print(f"Fit at context {m.n_ctx} ({_cache_words(f.cache)}): {fit.label} — {fit.detail}")
    print(
        f"  weights {human_bytes(m.weights)}, KV cache {human_bytes(m.kv_cache)}, "
        f"compute {human_bytes(m.compute)}, output {human_bytes(m.output)}"
    )
    if fit.decode_bound_tps and not f.header.embeds_only:  # an embedding model decodes nothing
        print(f"  decode speed bound from memory bandwidth: {fit.decode_bound_tps} tokens/s")
    print(_largest_line(f.largest_context, "this file"))
    if f.verdict:
        print(f"Usable here: {f.verdict.label} — {f.verdict.reason}")
    if drafts:
        best = drafts[0]
        print(
            f"Draft model here (the same vocabulary, {best.share:.0%} of its size): {best.name}. Speculative "
            f"decoding: --draft {best.name}; measure it with `localopen bench {path.name} --draft {best.name}`"
        )
    return 0


def _vision_words(projector: str | None) -> str:
    return f"sees images ({projector})" if projector else "text only"


def _cache_words(cache: dict) -> str:
    fa = "flash attention on" if cache.get("flash_attn") else "flash attention off"
    return f"{cache.get('type_k', 'f16')} KV cache, {fa}"


def _largest_line(largest: dict[str, int | None], what: str) -> str:
    if not largest:
        return "Largest context here: this machine is not read yet."
    said = ", ".join(f"{name} cache {n:,} tokens" if n else f"{name} cache: none" for name, n in largest.items())
    return f"Largest context that fits here ({what}): {said} (quantized caches with flash attention)."


# --- grade ----------------------------------------------------------------------------------
def cmd_grade(ctx: AppContext, args: argparse.Namespace) -> int:
    from localopen.app.models.grading import grade_card

    try:
        info = json.loads(Path(args.card).read_text(encoding="utf-8"))
    except OSError as exc:
        raise LocalopenError(f"Cannot read {args.card}: {exc.strerror or exc}.") from exc
    except json.JSONDecodeError as exc:
        raise LocalopenError(f"{args.card} is not valid JSON (line {exc.lineno}).") from exc
    if not isinstance(info, dict):
        raise LocalopenError(f"{args.card} must hold one JSON object, as model_info returns it.")
    ev, g = grade_card(ctx, info)
    if args.json:
        print_json({"id": info.get("id"), **g.to_dict(ev)})
        return 0
    print(f"{info.get('id', '(unnamed)')}: {g.badge}  {g.label} (provisional: from model-card data alone)")
    for line in g.explanation:
        print(f"  - {line}")
    if ev.lineage:
        print("  Lineage: " + " ← ".join(ev.lineage))
    for hint in g.raise_hints:
        print(f"  To raise: {hint}")
    return 0


# --- hw -------------------------------------------------------------------------------------
def cmd_hw(ctx: AppContext, args: argparse.Namespace) -> int:
    hw = ctx.read_profile()
    if args.json:
        print_json(hw.to_dict())
        return 0
    print(f"OS:         {hw.os} ({hw.arch})")
    print(f"CPU:        {hw.cpu_model}, {hw.cores_physical} physical / {hw.cores_logical} logical cores")
    print(f"SIMD:       {', '.join(hw.simd) or 'none detected'}")
    print(f"RAM:        {human_bytes(hw.ram_total)} total, {human_bytes(hw.ram_available)} available")
    print(f"Disk free:  {human_bytes(hw.disk_free)} in {hw.models_dir}")
    if hw.gpus:
        for g in hw.gpus:
            free = f", {human_bytes(g.memory_free)} free" if g.memory_free is not None else ""
            print(f"GPU:        {g.name} ({human_bytes(g.memory_total)}{free})")
    else:
        print("GPU:        none detected")
    print(
        f"llama.cpp:  backends {', '.join(hw.llama_backends) or 'not installed'}; "
        f"GPU offload {'possible' if hw.gpu_offload_possible else 'not possible'}"
    )
    if hw.gpus and not hw.gpu_offload_possible:
        print(
            "            this llama.cpp build cannot use the GPU: reinstall with "
            'CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir llama-cpp-python'
        )
    if hw.cpu_kernels:
        print(f"Kernels:    {hw.cpu_kernels}")
    print(f"Bandwidth:  {hw.bandwidth_words}")
    print(f"Machine id: {hw.fingerprint}")
    return 0


# --- summary --------------------------------------------------------------------------------
def cmd_recommend(ctx: AppContext, args: argparse.Namespace) -> int:
    from localopen.app.index import read as index_reader
    from localopen.app.usable.recommend import recommend
    from localopen.app.usable.usable_here import MachineSnapshot

    profile = ctx.read_profile()
    _say_unread(index_reader.refresh_models(ctx, ctx.catalog.models))  # the open index's records of known files
    here = MachineSnapshot.read(ctx, profile)
    found = recommend(ctx, here, args.limit)
    if args.json:
        print(json.dumps([r.to_dict() for r in found], indent=2))
        return 0
    if not found:
        print(
            "No catalog chat model is usable here yet (none fits, or each would be too slow): see `localopen catalog`."
        )
        return 0
    print("Open models that are usable systems here, the most open first:\n")
    for r in found:
        print(f"  {r.id:<32} {r.grade:<7} {r.summary}")
        if r.installed_path:
            print(f"  {'':<32} installed: localopen chat {r.id}")
        else:
            print(f"  {'':<32} localopen pull {r.repo} --quant {r.quant}")
    _calibration_hint(ctx)
    return 0


def cmd_summary(ctx: AppContext, args: argparse.Namespace) -> int:
    from localopen.app.usable.summary import render

    print(render(ctx, "html" if args.html else "markdown", ctx.read_profile()))
    return 0


# --- diagnostics ----------------------------------------------------------------------------
def cmd_diagnostics(ctx: AppContext, args: argparse.Namespace) -> int:
    from localopen.app.diagnostics import diagnostics

    print(diagnostics(ctx))
    return 0


# --- settings -------------------------------------------------------------------------------
def _setting_text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def cmd_settings(ctx: AppContext, args: argparse.Namespace) -> int:
    """Show or change the settings the app has, as `git config` does: every face reads the same file."""
    settings = ctx.settings
    if args.unset:
        ctx.save_settings(settings.with_value(args.unset, None))
        print(f"{args.unset} = {_setting_text(ctx.settings.values()[args.unset])} (the default)")
        return 0
    if args.key is not None and args.value is not None:
        ctx.save_settings(settings.with_value(args.key, args.value))
        print(f"{args.key} = {_setting_text(ctx.settings.values()[args.key])}")
        return 0
    values = settings.values()
    if args.key is not None:
        settings.with_value(args.key, _setting_text(values.get(args.key)))  # an unknown key says so
        print(json.dumps(values[args.key]) if args.json else _setting_text(values[args.key]))
        return 0
    if args.json:
        print_json(values)
        return 0
    for key, value in values.items():
        print(f"{key} = {_setting_text(value)}")
    return 0


def add_catalog_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("catalog", help="list the catalog with grades, sizes, fit and usable-here verdicts")
    p.add_argument("--grade", help="only these grades, e.g. AB")
    p.add_argument("--fits", action="store_true", help="only models that fit this machine")
    p.add_argument("--search", help="text to look for in names, repos, families and licences")
    option_flags(p, ["n_ctx"], {"n_ctx": "the n_ctx setting, 4096"})
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_catalog)

    p = sub.add_parser("info", help="one model (catalog id, repo or .gguf path): evidence, files, fit")
    p.add_argument("model")
    option_flags(
        p,
        ["n_ctx", "kv_cache_type", "flash_attn"],
        {k: f"the {k} setting" for k in ("n_ctx", "kv_cache_type", "flash_attn")},
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("grade", help="grade a model from its Hub model-card data (provisional)")
    p.add_argument("--card", required=True, help="JSON file as HfApi().model_info(...) returns it")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("hw", help="this machine: CPU, memory, GPU, llama.cpp backends, bandwidth")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_hw)

    p = sub.add_parser("recommend", help="open models that are usable systems here, the most open first")
    p.add_argument("--limit", type=int, default=6, help="how many (default 6)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_recommend)
    p = sub.add_parser("summary", help="one page: which open models are usable systems here, by grade")
    p.add_argument("--html", action="store_true", help="HTML instead of Markdown")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("diagnostics", help="versions, this machine and the log's last lines, for a bug report")
    p.set_defaults(func=cmd_diagnostics)

    p = sub.add_parser("settings", help="show or set the app's settings (as git config: KEY, KEY VALUE, --unset KEY)")
    p.add_argument("key", nargs="?", help="one setting, e.g. n_ctx or thresholds.readable_tps")
    p.add_argument("value", nargs="?", help="its new value (lists: comma-separated; empty: none)")
    p.add_argument("--unset", metavar="KEY", help="restore a setting's default")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_settings)
