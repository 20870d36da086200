"""The terminal face of localopen: it formats what the application layer returns, no Qt.

Every expected failure is a LocalopenError and prints one plain line; an unexpected one prints
one line with the log's path, and its traceback goes to the log. Never a traceback on screen.
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
from pathlib import Path

from localopen import __version__
from localopen.core.errors import LocalopenError
from localopen.core.store.db import storage_error

log = logging.getLogger("localopen.cli")


def build_parser() -> argparse.ArgumentParser:
    from localopen.cli import bench_commands, chat_commands, serve_commands, tools_commands
    from localopen.cli.catalog_commands import add_catalog_commands
    from localopen.cli.library_commands import add_library_commands

    parser = argparse.ArgumentParser(
        prog="localopen",
        description="Open language models: how open, "
        "whether they fit, how fast they run here. No arguments opens the app.",
    )
    parser.add_argument("--version", action="version", version=f"localopen {__version__}")
    # Handled before this parser (__main__.py), listed here so --help shows it.
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="check this install: the engine, the local server and a window, offscreen; prints a report",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    add_catalog_commands(sub)
    for commands in (chat_commands, tools_commands, serve_commands, bench_commands):
        commands.add_commands(sub)
    add_library_commands(sub)
    sub.add_parser(
        "repair-db",
        help="a damaged database: keep it aside, start a new one with what can still be read",
    )
    return parser


def repair_db(path: Path) -> int:
    """Keep a damaged database aside and start a new one with what can be read."""
    from localopen.core.store.db import check_integrity, connect, salvage

    try:
        conn = connect(path)
        check_integrity(conn, path)
        conn.close()
        print(f"The database {path} opens fine: nothing to repair.")
        return 0
    except LocalopenError as exc:
        if not getattr(exc, "damaged", False):
            raise
    kept, saved = salvage(path)
    print(f"Started a new database at {path} with {saved} rows saved from the damaged one, kept as {kept}.")
    return 0


def run_cli(argv: list[str]) -> int:
    from localopen.app.context import AppContext
    from localopen.core.logs import setup_logging
    from localopen.core.paths import app_paths

    args = build_parser().parse_args(argv)
    paths = app_paths()
    log_file = setup_logging(paths)
    log.info("localopen %s: %s", __version__, args.command)
    try:
        if args.command == "repair-db":  # before anything opens the damaged database
            return repair_db(paths.database)
        code = int(args.func(AppContext(paths), args))
        sys.stdout.flush()  # a reader that stopped early is met here, not in the interpreter's flush at exit
        return code
    except LocalopenError as exc:
        log.info("Failed: %s", exc)
        print(f"localopen: {exc}", file=sys.stderr)
        return 1
    except sqlite3.DatabaseError as exc:  # a fault met in the middle of a task: said as at start
        log.exception("Database fault in `localopen %s`", args.command)
        print(f"localopen: {storage_error(paths.database, exc, 'use')}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nlocalopen: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader stopped early (`localopen catalog | head`): end quietly, as Unix tools do. Point
        # stdout at /dev/null so the interpreter's own flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # noqa: BLE001 - the last line of defence: a message and the log, no traceback
        log.exception("Unexpected error in `localopen %s`", args.command)
        where = f" Details are in {log_file}." if log_file else ""
        print(f"localopen: unexpected error ({type(exc).__name__}: {exc}).{where}", file=sys.stderr)
        return 1
