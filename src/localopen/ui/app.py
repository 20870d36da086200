"""Starting the desktop app: the log, a crash dialog for the unexpected, then the main window."""

from __future__ import annotations

import logging
import sqlite3
import sys
import threading
import types
from pathlib import Path
from typing import Any

from localopen.core.errors import LocalopenError
from localopen.core.paths import app_paths
from localopen.core.store.db import StorageError, storage_error

log = logging.getLogger("localopen.ui")


def _install_crash_handlers(log_file: Path | None) -> None:
    """An unexpected error anywhere is logged with its traceback and shown in plain words with the
    log's path; the app keeps running (a Qt slot's exception must not end it)."""
    from PySide6.QtWidgets import QApplication, QMessageBox

    where = f"\n\nDetails are in {log_file}." if log_file else ""

    def on_error(kind: type[BaseException], value: BaseException, tb: types.TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, value, tb)
            return
        log.error("Unexpected error", exc_info=(kind, value, tb))
        if QApplication.instance() is not None and threading.current_thread() is threading.main_thread():
            if isinstance(value, sqlite3.DatabaseError):  # a full disk, a damaged page: said as at start
                QMessageBox.critical(None, "localopen", f"{storage_error(app_paths().database, value, 'use')}{where}")
                return
            QMessageBox.critical(
                None,
                "localopen: unexpected error",
                f"Something went wrong: {kind.__name__}: {value}{where}\n\nYour conversations and downloads are kept.",
            )

    def on_thread_error(args: threading.ExceptHookArgs) -> None:
        log.error(
            "Unexpected error in thread %s",
            args.thread.name if args.thread else "?",
            exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
        )

    sys.excepthook = on_error
    threading.excepthook = on_thread_error


def _offer_repair(exc: StorageError) -> Any:
    """A damaged database: offer to keep it aside and start anew with what can be read (nothing is
    deleted); any other storage fault is said, and the app does not start."""
    from PySide6.QtWidgets import QMessageBox

    from localopen.core.store.db import salvage
    from localopen.ui.services import Services

    log.error("Cannot start: %s", exc)
    if not exc.damaged:
        QMessageBox.critical(None, "localopen", str(exc))
        return None
    answer = QMessageBox.question(
        None,
        "localopen",
        f"{exc}\n\nKeep the damaged file aside and start a new database with what can still be read?",
    )
    if answer != QMessageBox.StandardButton.Yes:
        return None
    kept, saved = salvage(app_paths().database)
    QMessageBox.information(
        None, "localopen", f"A new database was started with {saved} rows saved; the old one is kept as {kept}."
    )
    return Services()


def run_app(argv: list[str] | None = None, open_path: str | None = None) -> int:
    """The desktop app; `open_path`: a model file to open in it (added to the library, then chatted with)."""
    from localopen import __version__
    from localopen.core.logs import setup_logging
    from localopen.ui.platform_check import import_problem, platform_problem

    log_file = setup_logging(app_paths())
    log.info("localopen %s starting", __version__)
    problem = platform_problem()
    if problem is not None:  # Qt would abort without a word: say what is missing instead
        print(problem, file=sys.stderr)
        return 1
    try:
        from PySide6.QtWidgets import QApplication, QMessageBox
    except ImportError as exc:
        problem = import_problem(exc)
        if problem is None:
            raise
        log.error("Qt cannot be imported", exc_info=True)
        print(problem, file=sys.stderr)
        return 1

    from localopen.ui import qt_messages

    qt_messages.install()
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName("localopen")
    from localopen.ui import theme

    theme.follow_system(app)  # type: ignore[arg-type]
    app.setOrganizationName("localopen")
    QApplication.setDesktopFileName("localopen")
    _install_crash_handlers(log_file)

    from localopen.ui.main_window import MainWindow, app_icon
    from localopen.ui.services import Services

    QApplication.setWindowIcon(app_icon())  # dialogs and the task bar too
    try:
        services = Services()
    except StorageError as exc:
        services = _offer_repair(exc)
        if services is None:
            return 1
    except LocalopenError as exc:
        log.error("Cannot start: %s", exc)
        QMessageBox.critical(None, "localopen", str(exc))
        return 1
    window = MainWindow(services)
    window.show()
    if open_path is not None:
        window.open_file(Path(open_path).expanduser())
    return int(app.exec())
