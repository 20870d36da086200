"""Terminal commands for getting and keeping models: pull, models, import, verify, rm, search."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from localopen.core.errors import LocalopenError
from localopen.core.estimate.memory import human_bytes

if TYPE_CHECKING:
    from localopen.app.context import AppContext
    from localopen.core.hub.downloader import Progress


class _Bar:
    """One progress line on stderr: percent, bytes, speed, ETA."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, name: str, p: Progress) -> None:
        now = time.monotonic()
        if now - self.last < 0.25 and p.done < p.total:
            return
        self.last = now
        pct = 100 * p.done / p.total if p.total else 0
        eta = f"{p.eta_seconds:.0f} s" if p.eta_seconds is not None else "?"
        width = 24
        filled = int(width * pct / 100)
        print(
            f"\r{name[:40]:40} [{'#' * filled}{'.' * (width - filled)}] {pct:5.1f}% "
            f"{human_bytes(p.done)}/{human_bytes(p.total)} {human_bytes(p.bytes_per_second)}/s ETA {eta}   ",
            end="",
            file=sys.stderr,
            flush=True,
        )


def cmd_pull(ctx: AppContext, args: argparse.Namespace) -> int:
    from localopen.app.models.pull import pull
    from localopen.core.hub.downloader import Paused

    repo, pattern, quant = args.repo, None, args.quant
    entry = ctx.catalog.get(args.repo)
    if entry is not None:
        repo = entry.gguf_repo
        if not args.file:
            chosen = next((q for q in entry.quants if q.type == (quant or entry.recommended.type).upper()), None)
            if chosen is None:
                raise LocalopenError(f"{entry.id} offers {', '.join(q.type for q in entry.quants)}; not {quant}.")
            pattern, quant = chosen.pattern, None
    stop = threading.Event()
    try:
        path = pull(
            ctx.hub(),
            ctx.db,
            ctx.models_dir,
            repo,
            quant=quant,
            filename=args.file,
            pattern=pattern,
            on_progress=_Bar(),
            should_stop=stop.is_set,
        )
    except (KeyboardInterrupt, Paused):
        print("\nlocalopen: paused; run the same command again to resume.", file=sys.stderr)
        return 130
    print(file=sys.stderr)
    print(path)
    return 0


def cmd_models(ctx: AppContext, args: argparse.Namespace) -> int:
    from localopen.app.models import library, library_listing

    library.scan(ctx)
    entries = library_listing.entries(ctx, ctx.read_profile(measure=False))
    if args.json:
        print(
            json.dumps(
                [
                    {
                        **e.model.to_dict(),
                        "grade": e.badge,
                        "usable_here": e.verdict.to_dict() if e.verdict else None,
                        "capabilities": e.capabilities.to_dict() if e.capabilities else None,
                        "problem": e.problem,
                        "catalog_match": (
                            {"id": e.match.model.id, "basis": e.match.basis, "exact": e.match.exact}
                            if e.match
                            else None
                        ),
                    }
                    for e in entries
                ],
                indent=2,
            )
        )
        return 0
    if not entries:
        print("The library is empty: `localopen pull REPO` downloads a model, `localopen import PATH` adds one.")
        return 0
    for e in entries:
        m = e.model
        state = "MISSING (moved or deleted)" if m.missing else human_bytes(m.size)
        verdict = e.verdict.label if e.verdict else "not measured yet"
        print(f"{m.name:44} {m.quant or '?':8} {state:12} {e.badge:10} {verdict:22} {m.source:10} {m.repo or m.path}")
        if e.problem:
            print(f"    {e.problem}")
        if e.match:
            print(f"    is the catalog's {e.match.model.id}: {e.match.basis}")
    return 0


def cmd_import(ctx: AppContext, args: argparse.Namespace) -> int:
    from pathlib import Path

    from localopen.app.models import library

    if args.other_apps:
        return _import_other_apps(ctx)
    if not args.path:
        raise LocalopenError("Name a .gguf file to import, or --other-apps.")
    model = library.import_model(ctx, Path(args.path))
    print(f"Imported {model.filename} ({model.quant}, {human_bytes(model.size)}); the file stays where it is.")
    print("Recording its sha256, so that `localopen verify` notices if its bytes change later…", flush=True)
    library.record_sha256(ctx, model)
    return 0


def _import_other_apps(ctx: AppContext) -> int:
    from localopen.app.models import library_listing, other_apps

    found = other_apps.not_in_library(ctx, other_apps.find())
    if not found:
        print("No models of LM Studio, Jan, GPT4All, llama.cpp or Ollama were found that the library lacks.")
        return 0
    added, problems = other_apps.add(ctx, found)
    for group in found:
        print(f"{group.app} ({group.folder}): {len(group.files)} model(s)")
    for problem in problems:
        print(f"  skipped {problem}", file=sys.stderr)
    recognised = [e for e in library_listing.entries(ctx) if e.match is not None]
    print(
        f"Added {added} model(s) by path (nothing was copied or moved; `localopen rm` only forgets them); "
        f"{len(recognised)} in the library are recognised as catalog models (`localopen models`)."
    )
    return 0


def cmd_verify(ctx: AppContext, args: argparse.Namespace) -> int:
    from localopen.app.models.library import find_model, scan, verify

    scan(ctx)
    shown = [-1]

    def progress(part: str, done: int, size: int) -> None:
        percent = done * 100 // max(size, 1)
        if sys.stderr.isatty() and size > 256 * 2**20 and percent != shown[0]:
            shown[0] = percent
            print(f"\rReading {part}: {percent}%", end="" if percent < 100 else "\n", file=sys.stderr, flush=True)

    result = verify(ctx, find_model(ctx, args.model), progress)
    print(result.message)
    return 0 if result.ok is not False else 1


def cmd_rm(ctx: AppContext, args: argparse.Namespace) -> int:
    from localopen.app.models.library import find_model, owns, remove_model, scan

    scan(ctx)
    model = find_model(ctx, args.model)
    owned = owns(ctx, model)
    delete_file = owned or args.delete_file
    if not owned and not args.delete_file and not args.yes and sys.stdin.isatty():
        # A file localopen did not download (found in a shared folder, or imported): ask.
        answer = input(
            f"{model.filename} was {model.source} here, not downloaded by localopen; it may be another program's. "
            "Delete the file itself too? [y/N] "
        )
        delete_file = answer.strip().lower() in ("y", "yes")
    elif owned and not args.yes and sys.stdin.isatty():
        answer = input(f"Delete {model.filename} ({human_bytes(model.size)})? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing deleted.")
            return 0
    print(remove_model(ctx, model, delete_file))
    return 0


def cmd_search(ctx: AppContext, args: argparse.Namespace) -> int:
    from localopen.app.models.hub_search import search_hub

    rows = [r.to_dict() for r in search_hub(ctx, args.query, sort=args.sort, limit=args.limit)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("No GGUF repository matches.")
    for r in rows:
        here = r["usable_here"]
        usable = f"{here['band']} ({here['basis']}, {r['quant']})" if here else "usable here: not known"
        print(
            f"{r['id']:55} {r['grade']} · {r['transparency']} (provisional)  {r['license']['effective'] or '-':14}"
            f" ↓{r['downloads'] or 0:<9} {usable:34} {' '.join(r['quants'][:8])}"
            + ("  · sees images (mmproj)" if r["vision"] else "")
        )
    return 0


def cmd_refresh(ctx: AppContext, args: argparse.Namespace) -> int:
    """Fill exact file sizes and sha256 of catalog models from the Hub (cached for offline use);
    with --audit, check every entry against its repository instead."""
    if args.audit:
        return _audit(ctx, args)
    if args.write_seen or args.catalog:
        print("localopen: --catalog and --write-seen go with --audit.", file=sys.stderr)
        return 2
    from localopen.app.models import library
    from localopen.core.hub.client import HubError, OfflineError

    catalog = ctx.catalog
    failed = 0
    for m in catalog.models:
        try:
            library.remember_hub_files(ctx, m.gguf_repo)
            print(f"ok     {m.gguf_repo}", file=sys.stderr)
        except OfflineError:
            raise  # no point asking for the others
        except HubError as exc:
            failed += 1
            print(f"failed {m.gguf_repo}: {exc}", file=sys.stderr)
    print(f"{len(catalog.models) - failed} of {len(catalog.models)} repositories refreshed.")
    return 0 if not failed else 1


def _audit(ctx: AppContext, args: argparse.Namespace) -> int:
    """`refresh --audit`: each entry's drifts from its repository, grouped by entry; status 1 when any."""
    from localopen.app.models import catalog_audit
    from localopen.core.openness.audit import KINDS

    catalog_path = Path(args.catalog) if args.catalog else None
    data = catalog_audit.read_catalog(catalog_path)

    def show(model_id: str, drifts: list) -> None:
        if not drifts:
            print(f"ok     {model_id}", file=sys.stderr)
        for d in sorted(drifts, key=lambda d: KINDS.index(d.kind)):
            print(f"{d.kind:17}  {model_id}: {d.words}")

    audit, facts = catalog_audit.audit(ctx, data, show)
    where = args.catalog or "the built-in catalog"
    counts = ", ".join(f"{len(audit.of_kind(k))} {k}" for k in KINDS if audit.of_kind(k))
    print(
        f"\n{len(data['models'])} entries of {where}, {audit.checked} checked against the Hub: "
        + (counts if counts else "no drift")
        + "."
    )
    if args.write_seen:
        n = catalog_audit.write_seen(data, facts, Path(args.write_seen))
        print(f"files_seen of {n} entries written to {args.write_seen}.")
    return 1 if audit.drifts else 0


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

    p = sub.add_parser("import", help="add a local .gguf by path (not copied), or other apps' models")
    p.add_argument("path", nargs="?")
    p.add_argument(
        "--other-apps", action="store_true", help="add the models of LM Studio, Jan, GPT4All, llama.cpp and Ollama"
    )
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("verify", help="check a model's sha256 against the Hub's")
    p.add_argument("model")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "rm", help="delete a downloaded model and its partial downloads (an imported or found one is forgotten)"
    )
    p.add_argument("model")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask")
    p.add_argument(
        "--delete-file", action="store_true", help="also delete the file of a model localopen did not download"
    )
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("search", help="search GGUF repositories on the Hub, with provisional grades")
    p.add_argument("query")
    p.add_argument("--sort", choices=["downloads", "likes", "recent"], default="downloads")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("refresh", help="fetch exact sizes and sha256 of catalog files from the Hub")
    p.add_argument(
        "--audit",
        action="store_true",
        help="check every catalog entry against its Hub repository: patterns matching no file, files gone or "
        "changed, new quantizations, licence tags, gated repositories (status 1 when anything differs)",
    )
    p.add_argument("--catalog", metavar="FILE", help="audit this catalog.json instead of the built-in one")
    p.add_argument(
        "--write-seen", metavar="FILE", help="with --audit: write the catalog with files_seen as the Hub shows them"
    )
    p.set_defaults(func=cmd_refresh)
