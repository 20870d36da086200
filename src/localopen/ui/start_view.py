"""The first screen: open models that are usable systems here, the most open first, each with how
that is known and one action that downloads it and opens a chat when done. It renders what
app/recommend answers and refreshes as the calibration, downloads and benchmarks change the facts."""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from localopen.app.index import read as index_reader
from localopen.app.measure.calibration import CalibrationStep
from localopen.app.models import other_apps
from localopen.app.models.download_queue import QueuedDownload
from localopen.app.models.other_apps import OtherAppModels
from localopen.app.usable.recommend import Recommendation, recommend
from localopen.app.usable.usable_here import MachineSnapshot
from localopen.core.estimate.memory import human_bytes
from localopen.ui.background import run_in_background
from localopen.ui.services import Services
from localopen.ui.theme import band_colour, grade_colour

CARD_WIDTH = 640  # a card's width at least, for two columns of them
WHAT_TO_DO = "Check the network (or turn off offline mode in Settings), then try again; Library lists the download."


class StartView(QWidget):
    download_requested = Signal(str, str)  # repo, file pattern
    chat_requested = Signal(str)  # path
    explore_requested = Signal()
    shown = Signal()  # the recommendations on screen are current

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.recommendations: list[Recommendation] = []
        self.buttons: dict[str, QPushButton] = {}  # catalog id -> its action
        self._waiting: dict[str, str] = {}  # repo -> catalog id, downloads that open a chat when done
        self._failed: dict[str, str] = {}  # repo -> why its last download failed, said on its card
        self.messages: dict[str, QLabel] = {}  # catalog id -> its card's message

        title = QLabel("Open models that work on this machine")
        title.setStyleSheet("font-size: 18px; font-weight: bold;")
        title.setAccessibleName("Start")
        self.intro = QLabel(
            "The most open first (openness grade from inspectable evidence), then how well each runs "
            "here. One click downloads a model (resumable, verified) and opens a chat with it."
        )
        self.intro.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Calibration of this machine")
        self.progress_text = QLabel()
        self.progress_text.setWordWrap(True)
        self.calibration_box = QWidget()
        box = QVBoxLayout(self.calibration_box)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.progress_text)
        box.addWidget(self.progress)
        self.retry = QPushButton("Calibrate again")
        self.retry.setAccessibleName("Calibrate this machine again")
        self.retry.clicked.connect(self._retry)
        self.retry.hide()
        box.addWidget(self.retry, 0, Qt.AlignmentFlag.AlignLeft)
        self.calibration_box.hide()

        self.grid = QGridLayout()  # one card per model: two columns where the window is wide
        self.grid.setHorizontalSpacing(12)
        self.grid.setVerticalSpacing(10)
        self.cards: list[QFrame] = []
        self.columns = 1
        holder = QWidget()
        holder_layout = QVBoxLayout(holder)
        holder_layout.setContentsMargins(0, 0, 0, 0)
        holder_layout.addLayout(self.grid)
        holder_layout.addStretch(1)
        self.cards_area = scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(holder)
        self.other_apps = QLabel()  # models the user has from other apps, offered once found
        self.other_apps.setWordWrap(True)
        self.add_other_apps = QPushButton("Add them to the library")
        self.add_other_apps.setAccessibleName("Add the models of other apps to the library (by path, not copied)")
        self.add_other_apps.clicked.connect(self._add_other_apps)
        offer = QWidget()
        offer_layout = QHBoxLayout(offer)
        offer_layout.setContentsMargins(0, 0, 0, 0)
        offer_layout.addWidget(self.other_apps, 1)
        offer_layout.addWidget(self.add_other_apps)
        self.offer = offer
        offer.hide()
        self._found: list[OtherAppModels] = []
        self.empty = QLabel("Reading this machine…")
        self.empty.setWordWrap(True)

        explore = QPushButton("Explore every model…")
        explore.setAccessibleName("Explore every catalog model and search the Hub")
        explore.clicked.connect(self.explore_requested.emit)
        footer = QHBoxLayout()
        footer.addWidget(explore)
        footer.addStretch(1)

        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(self.intro)
        layout.addWidget(self.calibration_box)
        layout.addWidget(self.offer)
        layout.addWidget(self.empty)
        layout.addWidget(scroll, 1)
        layout.addLayout(footer)

        calibration = services.calibration
        calibration.step.connect(self._on_step)
        calibration.calibrated.connect(lambda _c: self._calibration_ended("This machine is calibrated."))
        calibration.failed.connect(self._calibration_failed)
        services.profile_ready.connect(lambda _hw: self.reload())
        services.library_changed.connect(self.reload)
        services.results_changed.connect(self.reload)
        services.job_changed.connect(self._on_job, Qt.ConnectionType.QueuedConnection)
        if services.profile is not None:
            self.reload()
        ctx = services.ctx
        run_in_background(
            lambda: other_apps.not_in_library(ctx, other_apps.find()), self._offer, name="other-apps", owner=self
        )

    # -- the model's answer ------------------------------------------------------------------------
    def reload(self) -> None:
        ctx, profile = self.services.ctx, self.services.profile
        if profile is None:
            return

        def work() -> list[Recommendation]:
            index_reader.refresh_models(ctx, ctx.catalog.models)  # the open index's records of known files
            return recommend(ctx, MachineSnapshot.read(ctx, profile))

        run_in_background(work, self._show, name="recommend", owner=self)

    def _show(self, found: list[Recommendation]) -> None:
        self.recommendations = found
        for card in self.cards:
            self.grid.removeWidget(card)
            card.deleteLater()
        self.cards, self.buttons, self.messages = [], {}, {}
        if not found:
            self.empty.setText(
                "No catalog chat model is usable here yet: none fits this machine's memory, or each would "
                "be too slow. Explore every model to see why, or search the Hub for smaller files."
            )
            self.empty.show()
        else:
            self.empty.hide()
        for rec in found:
            self.cards.append(self._card(rec))
        self._lay_out(force=True)
        self.shown.emit()

    def _card(self, rec: Recommendation) -> QFrame:
        """A model: its grade and name, how usable here and how that is known, what it can do and
        its size, the one action, and what went wrong with it (a download that failed)."""
        card = QFrame()
        card.setFrameShape(QFrame.Shape.StyledPanel)
        grade = QLabel(f"<b style='color:{grade_colour(rec.letter)}; font-size:15px'>{html.escape(rec.grade)}</b>")
        grade.setToolTip("Openness grade (A most open) and transparency tier, from the catalog's evidence")
        known = f"<br><small>{html.escape(rec.basis_words)}</small>" if rec.basis_words else ""
        evidence = f"<br><small>Openness: {html.escape(rec.openness)}</small>" if rec.openness else ""
        name = QLabel(f"<b>{html.escape(rec.id)}</b><br>{html.escape(rec.summary)}{known}{evidence}")
        name.setWordWrap(True)
        name.setToolTip(rec.reason)
        message = QLabel()
        message.setWordWrap(True)
        message.setStyleSheet(f"color: {band_colour('bad')}")  # readable on a light or dark window
        message.hide()
        action = QPushButton("Chat" if rec.installed_path else "Download and chat")
        action.setAccessibleName(f"{action.text()}: {rec.id}")
        action.setMinimumWidth(170)
        action.clicked.connect(lambda _=False, r=rec: self.act(r))
        if rec.repo in self._waiting:
            action.setEnabled(False)
            action.setText("Downloading…")
        failed = self._failed.get(rec.repo)
        if failed:
            message.setText(failed)
            message.show()
            action.setText("Try again")
        self.buttons[rec.id], self.messages[rec.id] = action, message
        layout = QGridLayout(card)
        layout.setColumnStretch(1, 1)
        layout.addWidget(grade, 0, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(name, 0, 1, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(action, 0, 2, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(message, 1, 1, 1, 2)
        layout.setRowStretch(2, 1)  # a card as tall as its neighbour keeps its text at the top
        return card

    def _lay_out(self, force: bool = False) -> None:
        """The cards in one column, or two where each still gets a laptop's width (LM Studio's grid)."""
        columns = 2 if self.cards_area.viewport().width() >= 2 * CARD_WIDTH else 1
        if columns == self.columns and not force:
            return
        self.columns = columns
        for card in self.cards:
            self.grid.removeWidget(card)
        for i, card in enumerate(self.cards):
            self.grid.addWidget(card, i // columns, i % columns)
        for column in range(2):
            self.grid.setColumnStretch(column, 1 if column < columns else 0)

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._lay_out()

    # -- actions -----------------------------------------------------------------------------------
    def act(self, rec: Recommendation) -> None:
        if rec.installed_path:
            self.chat_requested.emit(rec.installed_path)
            return
        self._waiting[rec.repo] = rec.id
        self._failed.pop(rec.repo, None)
        if rec.id in self.messages:
            self.messages[rec.id].hide()
        button = self.buttons.get(rec.id)
        if button is not None:
            button.setEnabled(False)
            button.setText("Queued…")
        self.download_requested.emit(rec.repo, rec.pattern)

    def _on_job(self, job: QueuedDownload) -> None:
        wanted = self._waiting.get(job.repo)
        if wanted is None:
            return
        button = self.buttons.get(wanted)
        if job.state == "running" and button is not None and job.total:
            button.setText(f"Downloading {job.done * 100 // job.total}% of {human_bytes(job.total)}")
        elif job.state == "done" and job.path is not None:
            del self._waiting[job.repo]
            self.chat_requested.emit(str(job.path))  # the library refresh makes this row say "Chat"
        elif job.state in ("failed", "cancelled"):
            del self._waiting[job.repo]
            if job.state == "failed":  # said on the model's card, with what to do (the Library lists it too)
                self._failed[job.repo] = f"The download did not start or stopped: {job.message} {WHAT_TO_DO}"
            message = self.messages.get(wanted)
            if message is not None and job.state == "failed":
                message.setText(self._failed[job.repo])
                message.show()
            if button is not None:
                button.setEnabled(True)
                button.setText("Try again" if job.state == "failed" else "Download and chat")

    # -- models from other apps --------------------------------------------------------------------
    def _offer(self, found: list[OtherAppModels]) -> None:
        self._found = found
        if not found:
            return
        count = sum(len(g.files) for g in found)
        apps = ", ".join(dict.fromkeys(g.app for g in found))
        self.other_apps.setText(
            f"You have {count} model(s) from {apps}. Add them to the library to chat with them here and see "
            "their openness (nothing is copied, moved or ever deleted)."
        )
        self.offer.show()

    def _add_other_apps(self) -> None:
        ctx, found = self.services.ctx, self._found
        self.add_other_apps.setEnabled(False)
        run_in_background(lambda: other_apps.add(ctx, found), self._added, name="other-apps-add", owner=self)

    def _added(self, outcome: tuple[int, list[str]]) -> None:
        added, problems = outcome
        skipped = f"; {len(problems)} could not be read (see the log)" if problems else ""
        self.other_apps.setText(f"Added {added} model(s) to the library{skipped}.")
        self.add_other_apps.hide()
        self.services.library_changed.emit()

    # -- the calibration ---------------------------------------------------------------------------
    def _on_step(self, step: CalibrationStep) -> None:
        self.calibration_box.show()
        self.progress.show()
        self.retry.hide()
        self.progress_text.setStyleSheet("")
        self.progress.setRange(0, step.total)
        self.progress.setValue(step.index - 1)
        left = self.services.calibration.remaining_s()
        eta = f", about {left:.0f} s left" if left is not None else ""
        self.progress_text.setText(
            f"{step}{eta}. The speeds below are rough until it ends; then they are this machine's own."
        )

    def _calibration_ended(self, said: str) -> None:
        self.progress_text.setText(said)
        self.calibration_box.hide()
        self.reload()

    def _calibration_failed(self, error: str) -> None:
        """Said where it was shown, and kept there with a way to try again."""
        self.progress.hide()
        self.progress_text.setStyleSheet(f"color: {band_colour('bad')}")
        self.progress_text.setText(
            f"The calibration of this machine did not finish: {error} Predicted speeds stay rough."
        )
        self.retry.show()
        self.calibration_box.show()
        self.reload()

    def _retry(self) -> None:
        if self.services.calibration.start_if_needed():
            self.retry.hide()
            self.progress_text.setStyleSheet("")
            self.progress_text.setText("Calibrating this machine again…")

    def state(self) -> dict[str, Any]:
        """What is on screen, for tests and screenshots."""
        return {"ids": [r.id for r in self.recommendations], "calibrating": self.calibration_box.isVisible()}
