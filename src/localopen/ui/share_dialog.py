"""Compare's "Share…": what would be sent to the open usability index, shown whole before
anything leaves the machine; one click on Publish sends it (app/index/share) and says where."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from localopen.app.index import share
from localopen.core.errors import LocalopenError
from localopen.ui.background import run_in_background
from localopen.ui.services import Services


class ShareDialog(QDialog):
    """Shows a prepared submission; only its Publish button sends it."""

    def __init__(self, services: Services, submission: share.Submission, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.services, self.submission = services, submission
        self.setWindowTitle("Share results with the open usability index")
        layout = QVBoxLayout(self)
        if submission.empty:
            intro = " ".join(submission.nothing_lines())
        else:
            intro = (
                f"<b>{len(submission.records)} record(s)</b> of this machine's benchmarks would be sent, exactly as "
                "below, as a pull request to the index's Hub dataset in your name (your Hugging Face token). "
                "Nothing is sent until you click Publish."
            )
        self.intro = QLabel(intro)
        self.intro.setWordWrap(True)
        layout.addWidget(self.intro)
        self.records = QPlainTextEdit(submission.text() if not submission.empty else "")
        self.records.setReadOnly(True)
        self.records.setAccessibleName("The records that would be sent")
        self.records.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.records.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        layout.addWidget(self.records, 1)
        self.records.setVisible(not submission.empty)  # nothing to show: the words above say why
        self.outcome = QLabel("")
        self.outcome.setWordWrap(True)
        self.outcome.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)  # the address, to copy
        layout.addWidget(self.outcome)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.rejected.connect(self.reject)
        self.publish_button: QPushButton | None = None
        if not submission.empty:
            self.publish_button = self.buttons.addButton(
                "Publish as a pull request", QDialogButtonBox.ButtonRole.ActionRole
            )
            self.publish_button.setAccessibleName("Publish these records to the open usability index")
            self.publish_button.clicked.connect(self.publish)
        layout.addWidget(self.buttons)
        self.resize(860, 560 if not submission.empty else 160)

    def publish(self) -> None:
        """Send what is shown (the user clicked Publish)."""
        assert self.publish_button is not None
        self.publish_button.setEnabled(False)
        self.outcome.setText("Sending…")
        ctx, submission = self.services.ctx, self.submission
        run_in_background(lambda: share.publish(ctx, submission), self._sent, self._failed, name="share", owner=self)

    def _sent(self, published: share.Published) -> None:
        self.outcome.setText(published.words())
        self.buttons.clear()
        self.buttons.addButton(QDialogButtonBox.StandardButton.Close).clicked.connect(self.accept)

    def _failed(self, error: LocalopenError) -> None:
        self.outcome.setText(f"Not sent: {error}")
        if self.publish_button is not None:
            self.publish_button.setEnabled(True)
