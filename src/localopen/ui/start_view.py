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

from localopen.app.measure.calibration import CalibrationStep
from localopen.app.models import other_apps
from localopen.app.models.download_queue import QueuedDownload
from localopen.app.models.other_apps import OtherAppModels
from localopen.app.usable.recommend import Recommendation, recommend
from localopen.app.usable.usable_here import MachineSnapshot
from localopen.core.estimate.memory import human_bytes
from localopen.ui.background import run_in_background
from localopen.ui.services import Services
from localopen.ui.theme import grade_colour


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
        self.calibration_box.hide()

        self.grid = QGridLayout()
        self.grid.setColumnStretch(1, 1)
        self.grid.setHorizontalSpacing(16)
        self.grid.setVerticalSpacing(10)
        holder = QWidget()
        holder.setMaximumWidth(1100)  # on a wide screen each action stays beside its model
        holder_layout = QVBoxLayout(holder)
        holder_layout.addLayout(self.grid)
        holder_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(holder)
        scroll.setAlignment(Qt.AlignmentFlag.AlignLeft)
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
        calibration.failed.connect(lambda e: self._calibration_ended(f"Calibration failed: {e}"))
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
        run_in_background(
            lambda: recommend(ctx, MachineSnapshot.read(ctx, profile)), self._show, name="recommend", owner=self
        )

    def _show(self, found: list[Recommendation]) -> None:
        self.recommendations = found
        while self.grid.count():
            item = self.grid.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        self.buttons = {}
        if not found:
            self.empty.setText(
                "No catalog chat model is usable here yet: none fits this machine's memory, or each would "
                "be too slow. Explore every model to see why, or search the Hub for smaller files."
            )
            self.empty.show()
        else:
            self.empty.hide()
        for row, rec in enumerate(found):
            self._add_row(row, rec)
        self.shown.emit()

    def _add_row(self, row: int, rec: Recommendation) -> None:
        grade = QLabel(f"<b style='color:{grade_colour(rec.letter)}'>{html.escape(rec.grade)}</b>")
        grade.setToolTip("Openness grade (A most open) and transparency tier, from the catalog's evidence")
        name = QLabel(
            f"<b>{html.escape(rec.id)}</b><br>{html.escape(rec.summary)} — {html.escape(rec.basis_words)}"
            if rec.basis_words
            else f"<b>{html.escape(rec.id)}</b><br>{html.escape(rec.summary)}"
        )
        name.setWordWrap(True)
        name.setToolTip(rec.reason)
        action = QPushButton("Chat" if rec.installed_path else "Download and chat")
        action.setAccessibleName(f"{action.text()}: {rec.id}")
        action.setMinimumWidth(170)
        action.clicked.connect(lambda _=False, r=rec: self.act(r))
        if rec.repo in self._waiting:
            action.setEnabled(False)
            action.setText("Downloading…")
        self.buttons[rec.id] = action
        self.grid.addWidget(grade, row, 0, Qt.AlignmentFlag.AlignTop)
        self.grid.addWidget(name, row, 1)
        self.grid.addWidget(action, row, 2, Qt.AlignmentFlag.AlignTop)

    # -- actions -----------------------------------------------------------------------------------
    def act(self, rec: Recommendation) -> None:
        if rec.installed_path:
            self.chat_requested.emit(rec.installed_path)
            return
        self._waiting[rec.repo] = rec.id
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
            if button is not None:
                button.setEnabled(True)
                button.setText("Download and chat")
                button.setToolTip(job.message)

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

    def state(self) -> dict[str, Any]:
        """What is on screen, for tests and screenshots."""
        return {"ids": [r.id for r in self.recommendations], "calibrating": self.calibration_box.isVisible()}
