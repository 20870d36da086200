"""Qt's own messages go to localopen's log; critical and fatal ones also reach stderr, so a Qt
failure at start-up (a platform plugin that cannot load) is never silent."""

from __future__ import annotations

import logging
import sys

from PySide6.QtCore import QMessageLogContext, QtMsgType, qInstallMessageHandler

log = logging.getLogger("localopen.qt")
_LEVELS = {
    QtMsgType.QtDebugMsg: logging.DEBUG,
    QtMsgType.QtInfoMsg: logging.INFO,
    QtMsgType.QtWarningMsg: logging.WARNING,
    QtMsgType.QtCriticalMsg: logging.ERROR,
    QtMsgType.QtFatalMsg: logging.CRITICAL,
}


def _handler(kind: QtMsgType, _context: QMessageLogContext, message: str) -> None:
    level = _LEVELS.get(kind, logging.WARNING)
    log.log(level, "%s", message)
    if level >= logging.ERROR:
        print(f"localopen (Qt): {message}", file=sys.stderr, flush=True)


def install() -> None:
    qInstallMessageHandler(_handler)
