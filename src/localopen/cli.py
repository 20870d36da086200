"""The terminal face of localopen: the same core as the app, no Qt.

Every expected failure is a LocalopenError and prints one plain line, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from localopen import __version__
from localopen.core.errors import LocalopenError
from localopen.core.fit import human_bytes

Handler = Callable[[argparse.Namespace], int]


def _paths():
    from localopen.core.paths import app_paths

    return app_paths()


def _profile(measure: bool = True):
    from localopen.core.hardware import read_profile

    paths = _paths()
    return read_profile(paths.models_dir(), paths.cache, measure=measure)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


# --- catalog --------------------------------------------------------------------------------
def _catalog():
    """The catalog with exact sizes wherever the Hub's file lists are cached (no network)."""
    from localopen.core.catalog import load_catalog
    from localopen.core.library import cached_files_by_repo
    from localopen.core.storage import connect

    return load_catalog(files_by_repo=cached_files_by_repo(connect(_paths().database)))


def cmd_catalog(args: argparse.Namespace) -> int:
    from localopen.core.model_fit import catalog_fit

    catalog = _catalog()
    hw = _profile()
    rows, out = [], []
    for m in catalog.models:
        g = m.grade
        if args.grade and g.letter not in args.grade.upper():
            continue
        if args.search and not m.matches(args.search):
            continue
        fit = catalog_fit(m, hw, n_ctx=args.ctx)
        if args.fits and fit.code not in ("fits_gpu", "fits_ram"):
            continue
        q = m.recommended
        size = ("~" if q.size_is_estimate else "") + human_bytes(q.size_bytes)
        rows.append([m.id, g.badge + (" (prov.)" if g.provisional else ""), g.rights.license_key or "none",
                     f"{m.raw['params_b']}B", q.type, size, fit.label,
                     f"≤{fit.decode_bound_tps:.0f} t/s" if fit.decode_bound_tps else "?"])
        out.append({"id": m.id, "gguf_repo": m.gguf_repo, "base_model": m.base_model, "family": m.family,
                    "params_b": m.raw["params_b"], **g.to_dict(), "quant": q.type, "size_bytes": q.size_bytes,
                    "size_is_estimate": q.size_is_estimate, "fit": fit.to_dict()})
    if args.json:
        _print_json(out)
        return 0
    print(_table(rows, ["model", "grade", "licence", "params", "quant", "size", "fit here", "decode bound"]))
    print(f"\n{len(rows)} of {len(catalog.models)} models. Grades: A open science … E non-commercial, ? unrated; "
          "T0–T3 = transparency. '~' sizes are estimates.")
    return 0


# --- info -----------------------------------------------------------------------------------
def cmd_info(args: argparse.Namespace) -> int:
    from localopen.core.gguf_header import read_header
    from localopen.core.model_fit import catalog_fit, file_fit
    from localopen.core.openness import evidence_from_header, grade

    catalog = _catalog()
    hw = _profile()
    target = args.model
    entry = catalog.get(target)
    if entry is None and not Path(target).expanduser().exists():
        raise LocalopenError(f"'{target}' is neither a file nor a model in the catalog "
                             "(try `localopen catalog --search WORD`).")
    if entry is not None:
        g = entry.grade
        fits = [(q, catalog_fit(entry, hw, q, args.ctx)) for q in entry.quants]
        if args.json:
            _print_json({"id": entry.id, "gguf_repo": entry.gguf_repo, "base_model": entry.base_model,
                         **g.to_dict(entry.evidence), "mof": entry.raw.get("mof"), "osai": entry.raw.get("osai"),
                         "quants": [{"type": q.type, "pattern": q.pattern, "size_bytes": q.size_bytes,
                                     "size_is_estimate": q.size_is_estimate, "fit": f.to_dict()} for q, f in fits]})
            return 0
        print(f"{entry.id} — {entry.family}, {entry.raw['params_b']}B parameters, context {entry.context_length}")
        print(f"GGUF repo: {entry.gguf_repo}    base model: {entry.base_model}")
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
        print("\nFiles (sizes with ~ are estimates):")
        print(_table([[q.type, q.pattern, ("~" if q.size_is_estimate else "") + human_bytes(q.size_bytes),
                       f.label, human_bytes(f.memory.total)] for q, f in fits],
                     ["quant", "file pattern", "size", "fit here", "memory needed"]))
        return 0

    header = read_header(Path(target).expanduser())
    ev = evidence_from_header(header.metadata, catalog.evidence_by_repo())
    g = grade(ev, provisional=True)
    fit = file_fit(header, hw, args.ctx)
    if args.json:
        _print_json({**header.summary(), **g.to_dict(ev), "fit": fit.to_dict()})
        return 0
    s = header.summary()
    print(f"{s['name']} ({s['architecture']}, {s['quantization']}, {s['n_params'] / 1e9:.2f}B parameters)")
    for key in ("path", "file_size", "context_length", "block_count", "embedding_length", "head_count",
                "head_count_kv", "key_length", "value_length", "sliding_window", "vocab_size",
                "has_chat_template", "license"):
        print(f"  {key:18} {s[key]}")
    print(f"Openness: {g.badge} (provisional, from the file's own metadata)")
    for line in g.explanation[:1]:
        print(f"  - {line}")
    m = fit.memory
    print(f"Fit at context {m.n_ctx}: {fit.label} — {fit.detail}")
    print(f"  weights {human_bytes(m.weights)}, KV cache {human_bytes(m.kv_cache)}, "
          f"compute {human_bytes(m.compute)}, output {human_bytes(m.output)}")
    if fit.decode_bound_tps:
        print(f"  decode speed bound from memory bandwidth: {fit.decode_bound_tps} tokens/s")
    return 0


# --- grade ----------------------------------------------------------------------------------
def cmd_grade(args: argparse.Namespace) -> int:
    from localopen.core.catalog import load_catalog
    from localopen.core.openness import evidence_from_card, grade

    try:
        info = json.loads(Path(args.card).read_text(encoding="utf-8"))
    except OSError as exc:
        raise LocalopenError(f"Cannot read {args.card}: {exc.strerror or exc}.") from exc
    except json.JSONDecodeError as exc:
        raise LocalopenError(f"{args.card} is not valid JSON (line {exc.lineno}).") from exc
    if not isinstance(info, dict):
        raise LocalopenError(f"{args.card} must hold one JSON object, as model_info returns it.")
    ev = evidence_from_card(info, load_catalog().evidence_by_repo())
    g = grade(ev, provisional=True)
    if args.json:
        _print_json({"id": info.get("id"), **g.to_dict(ev)})
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
def cmd_hw(args: argparse.Namespace) -> int:
    hw = _profile()
    if args.json:
        _print_json(hw.to_dict())
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
    print(f"llama.cpp:  backends {', '.join(hw.llama_backends) or 'not installed'}; "
          f"GPU offload {'possible' if hw.gpu_offload_possible else 'not possible'}")
    if hw.gpus and not hw.gpu_offload_possible:
        print("            this llama.cpp build cannot use the GPU: reinstall with "
              'CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir llama-cpp-python')
    cached = " (measured earlier)" if hw.bandwidth_cached else ""
    print(f"Bandwidth:  {hw.bandwidth_gbs} GB/s memory copy{cached}")
    print(f"Machine id: {hw.fingerprint}")
    return 0


def build_parser(extra: Callable[[argparse._SubParsersAction], None] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="localopen", description="Open language models: how open, "
                                     "whether they fit, how fast they run here. No arguments opens the app.")
    parser.add_argument("--version", action="version", version=f"localopen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("catalog", help="list the catalog with grades, sizes and fit on this machine")
    p.add_argument("--grade", help="only these grades, e.g. AB")
    p.add_argument("--fits", action="store_true", help="only models that fit this machine")
    p.add_argument("--search", help="text to look for in names, repos, families and licences")
    p.add_argument("--ctx", type=int, default=None, help="context size for the fit (default 4096)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_catalog)

    p = sub.add_parser("info", help="one model (catalog id, repo or .gguf path): evidence, files, fit")
    p.add_argument("model")
    p.add_argument("--ctx", type=int, default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("grade", help="grade a model from its Hub model-card data (provisional)")
    p.add_argument("--card", required=True, help="JSON file as HfApi().model_info(...) returns it")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("hw", help="this machine: CPU, memory, GPU, llama.cpp backends, bandwidth")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_hw)
    if extra:
        extra(sub)
    return parser


def run_cli(argv: list[str]) -> int:
    from localopen.engine_cli import add_engine_commands
    from localopen.library_cli import add_library_commands

    def extra(sub: argparse._SubParsersAction) -> None:
        add_engine_commands(sub)
        add_library_commands(sub)

    args = build_parser(extra).parse_args(argv)
    try:
        return args.func(args)
    except LocalopenError as exc:
        print(f"localopen: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nlocalopen: interrupted.", file=sys.stderr)
        return 130
