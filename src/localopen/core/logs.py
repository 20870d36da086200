"""localopen's log: named loggers (localopen.*) into a rotating file in the platform's log folder.

The app, the CLI and each engine process log to files there; nothing is logged to the terminal
unless asked (`stderr_level`). Tracebacks of unexpected errors go to the file, never to the user.
"""

from __future__ import annotations

import logging
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path

from localopen.core.paths import AppPaths

FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
MAX_BYTES = 2 * 2**20
BACKUPS = 3


class _LogFile(RotatingFileHandler):
    """The log file, which may stop being writable (a full disk, a folder made read-only): said
    once in one plain line, then logging goes quiet. Never Python's "--- Logging error ---" with a
    traceback for every message."""

    told = False

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        if not self.told:
            self.told = True
            reason = sys.exc_info()[1]
            sys.stderr.write(
                f"localopen: cannot write its log at {self.baseFilename} ({reason}); going on without it.\n"
            )


def setup_logging(paths: AppPaths, filename: str = "localopen.log", stderr_level: int | None = None) -> Path | None:
    """Route the root logger to a rotating file (once per process and file); returns its path,
    or None when the log folder cannot be written (logging then stays off, never a crash)."""
    root = logging.getLogger()
    path = paths.logs / filename
    for handler in root.handlers:
        if isinstance(handler, RotatingFileHandler) and Path(handler.baseFilename) == path:
            return path
    root.handlers.clear()
    root.setLevel(logging.INFO)
    try:
        paths.logs.mkdir(parents=True, exist_ok=True)
        file_handler = _LogFile(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
    except OSError:
        root.addHandler(logging.NullHandler())
        return None
    file_handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(file_handler)
    if stderr_level is not None:
        console = logging.StreamHandler()
        console.setLevel(stderr_level)
        console.setFormatter(logging.Formatter("localopen: %(message)s"))
        root.addHandler(console)
    return path


def log_path(paths: AppPaths) -> Path:
    return paths.logs / "localopen.log"
