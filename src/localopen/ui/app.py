"""Starting the desktop app."""

from __future__ import annotations

import sys

from localopen.core.errors import LocalopenError


def run_app(argv: list[str] | None = None) -> int:
    from PySide6.QtWidgets import QApplication, QMessageBox

    from localopen.core.catalog import load_catalog
    from localopen.core.paths import app_paths
    from localopen.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName("localopen")
    app.setOrganizationName("localopen")
    try:
        catalog = load_catalog()
    except LocalopenError as exc:
        QMessageBox.critical(None, "localopen", str(exc))
        return 1
    window = MainWindow(catalog, app_paths())
    window.show()
    return app.exec()
