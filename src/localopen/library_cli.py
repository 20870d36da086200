"""Terminal commands for getting and keeping models: pull, models, import, verify, rm, search."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

from localopen.core.errors import LocalopenError
from localopen.core.fit import human_bytes


def _context():
    from localopen.core.hub import Hub
    from localopen.core.paths import app_paths, load_settings
    from localopen.core.storage import connect

    paths = app_paths()
    settings = load_settings(paths)
    return paths, Hub(settings), connect(paths.database)


class _Bar:
    """One progress line on stderr: percent, bytes, speed, ETA."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, name: str, p: Any) -> None:
        now = time.monotonic()
        if now - self.last < 0.25 and p.done < p.total:
            return
        self.last = now
        pct = 100 * p.done / p.total if p.total else 0
        eta = f"{p.eta_seconds:.0f} s" if p.eta_seconds is not None else "?"
        width = 24
        filled = int(width * pct / 100)
        print(f"\r{name[:40]:40} [{'#' * filled}{'.' * (width - filled)}] {pct:5.1f}% "
              f"{human_bytes(p.done)}/{human_bytes(p.total)} {human_bytes(p.bytes_per_second)}/s ETA {eta}   ",
              end="", file=sys.stderr, flush=True)


def cmd_pull(args: argparse.Namespace) -> int:
    from localopen.core.catalog import load_catalog
    from localopen.core.downloader import Paused
    from localopen.core.pull import pull

    paths, hub, conn = _context()
    repo, pattern, quant = args.repo, None, args.quant
    entry = load_catalog().get(args.repo)
    if entry is not None:
        repo = entry.gguf_repo
        if not args.file:
            chosen = next((q for q in entry.quants if q.type == (quant or entry.recommended.type).upper()), None)
            if chosen is None:
                raise LocalopenError(f"{entry.id} offers {', '.join(q.type for q in entry.quants)}; "
                                     f"not {quant}.")
            pattern, quant = chosen.pattern, None
    stop = threading.Event()
    try:
        path = pull(hub, conn, paths.models_dir(), repo, quant=quant, filename=args.file, pattern=pattern,
                    on_progress=_Bar(), should_stop=stop.is_set)
    except KeyboardInterrupt:
        print("\nlocalopen: paused; run the same command again to resume.", file=sys.stderr)
        return 130
    except Paused:
        print("\nlocalopen: paused; run the same command again to resume.", file=sys.stderr)
        return 130
    print(file=sys.stderr)
    print(path)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from localopen.core.library import list_models

    paths, _, conn = _context()
    models = list_models(conn, paths.models_dir())
    if args.json:
        print(json.dumps([m.to_dict() for m in models], indent=2))
        return 0
    if not models:
        print("The library is empty: `localopen pull REPO` downloads a model, `localopen import PATH` adds one.")
        return 0
    for m in models:
        state = "MISSING (moved or deleted)" if m.missing else human_bytes(m.size)
        print(f"{m.filename:50} {m.quant or '?':8} {state:12} {m.source:10} {m.repo or m.path}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from localopen.core.library import import_file

    _, _, conn = _context()
    model = import_file(conn, Path(args.path))
    print(f"Imported {model.filename} ({model.quant}, {human_bytes(model.size)}); the file stays where it is.")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from localopen.core.library import find, verify

    paths, _, conn = _context()
    result = verify(conn, find(conn, paths.models_dir(), args.model))
    print(result.message)
    return 0 if result.ok is not False else 1


def cmd_rm(args: argparse.Namespace) -> int:
    from localopen.core.library import find, remove

    paths, _, conn = _context()
    model = find(conn, paths.models_dir(), args.model)
    if not args.yes and sys.stdin.isatty():
        answer = input(f"Delete {model.filename} ({human_bytes(model.size)})? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing deleted.")
            return 0
    print(remove(conn, model, paths.models_dir()))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from localopen.core.catalog import load_catalog
    from localopen.core.hub import quant_of
    from localopen.core.openness import evidence_from_card, grade

    _, hub, _ = _context()
    known = load_catalog().evidence_by_repo()
    rows = []
    for info in hub.search(args.query, sort=args.sort, limit=args.limit):
        g = grade(evidence_from_card(info, known), provisional=True)
        quants = sorted({q for f in info["files"] if f.endswith(".gguf") and (q := quant_of(f))})
        rows.append({"id": info["id"], "downloads": info.get("downloads"), "likes": info.get("likes"),
                     "last_modified": info.get("lastModified"), "quants": quants, **g.to_dict()})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("No GGUF repository matches.")
    for r in rows:
        print(f"{r['id']:55} {r['grade']} · {r['transparency']} (provisional)  {r['license']['effective'] or '-':14}"
              f" ↓{r['downloads'] or 0:<9} {' '.join(r['quants'][:8])}")
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    """Fill exact file sizes and sha256 of catalog models from the Hub (cached for offline use)."""
    from localopen.core.catalog import load_catalog
    from localopen.core.hub import HubError
    from localopen.core.library import record_hub_files

    _, hub, conn = _context()
    catalog = load_catalog()
    failed = 0
    for m in catalog.models:
        try:
            record_hub_files(conn, hub.files(m.gguf_repo))
            print(f"ok     {m.gguf_repo}", file=sys.stderr)
        except HubError as exc:
            failed += 1
            print(f"failed {m.gguf_repo}: {exc}", file=sys.stderr)
            if "offline" in str(exc).lower():
                return 1
    print(f"{len(catalog.models) - failed} of {len(catalog.models)} repositories refreshed.")
    return 0 if not failed else 1


def add_library_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pull", help="download a model from the Hub (resumable: run again to resume)")
    p.add_argument("repo", help="a Hub repo (owner/name) or a catalog id")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--quant", help="quantization, e.g. Q4_K_M (default: the catalog's choice, else Q4_K_M)")
    group.add_argument("--file", help="an exact file name in the repo")
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser("models", help="the local library")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("import", help="add a local .gguf by path (not copied)")
    p.add_argument("path")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("verify", help="check a model's sha256 against the Hub's")
    p.add_argument("model")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("rm", help="delete a downloaded model and its partial downloads")
    p.add_argument("model")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask")
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("search", help="search GGUF repositories on the Hub, with provisional grades")
    p.add_argument("query")
    p.add_argument("--sort", choices=["downloads", "likes", "recent"], default="downloads")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("refresh", help="fetch exact sizes and sha256 of catalog files from the Hub")
    p.set_defaults(func=cmd_refresh)
