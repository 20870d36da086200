"""Starting the desktop app."""

from __future__ import annotations

import sys

from localopen.core.errors import LocalopenError


def run_app(argv: list[str] | None = None) -> int:
    from PySide6.QtWidgets import QApplication, QMessageBox

    from localopen.ui import qt_messages
    from localopen.ui.main_window import MainWindow
    from localopen.ui.services import Services

    qt_messages.install()
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName("localopen")
    app.setOrganizationName("localopen")
    app.setDesktopFileName("localopen")
    try:
        services = Services()
    except LocalopenError as exc:
        QMessageBox.critical(None, "localopen", str(exc))
        return 1
    window = MainWindow(services)
    window.show()
    return app.exec()
