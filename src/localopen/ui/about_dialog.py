"""About: the version, the sources the grades credit, where the log is, and "Copy diagnostics"."""

from __future__ import annotations

import html

from PySide6.QtCore import qVersion
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTextBrowser, QVBoxLayout, QWidget

from localopen import __version__
from localopen.app.diagnostics import diagnostics
from localopen.core.logs import log_path
from localopen.ui.services import Services

CREDITS = (
    "Openness data: Model Openness Tool (LF AI &amp; Data, MIT-licensed data), European Open Source AI Index "
    "(CC-BY-4.0, doi:10.5281/zenodo.15386042), Open Source Initiative (OSAID 1.0)."
)


class AboutDialog(QDialog):
    def __init__(self, services: Services, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About localopen")
        self.services = services
        log_file = log_path(services.ctx.paths)
        text = QTextBrowser()
        text.setAccessibleName("About localopen")
        text.setOpenExternalLinks(True)
        text.setHtml(
            f"<h2>localopen {__version__}</h2><p>Open language models: how open, whether they fit, how fast "
            f"they run here, and offline chat.</p><p>{CREDITS}</p>"
            f"<p><b>Log:</b> <a href='{log_file.parent.as_uri()}'>{html.escape(str(log_file))}</a><br>"
            "When something goes wrong, “Copy diagnostics” puts the versions, this machine and the log's last "
            "lines on the clipboard for a bug report (never your Hub token).</p>"
        )
        self.copied = QLabel("")
        self.copied.setAccessibleName("Diagnostics status")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        copy = buttons.addButton("Copy diagnostics", QDialogButtonBox.ButtonRole.ActionRole)
        copy.setAccessibleName("Copy diagnostics to the clipboard")
        copy.clicked.connect(lambda: self.copy_diagnostics())
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(self.copied)
        layout.addWidget(buttons)
        self.resize(640, 420)

    def copy_diagnostics(self) -> str:
        platform = QGuiApplication.platformName()
        report = diagnostics(self.services.ctx, [f"Qt {qVersion()} ({platform} platform)"])
        QGuiApplication.clipboard().setText(report)
        self.copied.setText("Diagnostics copied to the clipboard.")
        return report
