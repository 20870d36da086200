"""Qt's own warnings go to Python logging, not to the user's terminal."""

from __future__ import annotations

import logging

from PySide6.QtCore import QtMsgType, qInstallMessageHandler

log = logging.getLogger("localopen.qt")
_LEVELS = {QtMsgType.QtDebugMsg: logging.DEBUG, QtMsgType.QtInfoMsg: logging.INFO,
           QtMsgType.QtWarningMsg: logging.WARNING, QtMsgType.QtCriticalMsg: logging.ERROR,
           QtMsgType.QtFatalMsg: logging.CRITICAL}


def _handler(kind: QtMsgType, _context: object, message: str) -> None:
    log.log(_LEVELS.get(kind, logging.WARNING), "%s", message)


def install() -> None:
    qInstallMessageHandler(_handler)
    log.propagate = False  # kept off the terminal unless someone attaches a handler
    log.addHandler(logging.NullHandler())
