"""The main window: a sidebar of sections, the machine summary line, and app-wide shortcuts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QRect, QSettings, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QIcon, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QMainWindow,
    QPushButton,
    QStackedWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from localopen.app.measure.benchmark import stale
from localopen.app.measure.calibration import llama_cpp_version
from localopen.app.models import library, pull
from localopen.app.usable import summary
from localopen.app.usable.usable_here import MachineLine, MachineSnapshot, catalog_rows, machine_line
from localopen.core.estimate.memory import human_bytes
from localopen.core.machine.hardware import HardwareProfile
from localopen.ui.background import run_in_background
from localopen.ui.chat_attachments import pictures_in
from localopen.ui.explore_view import ExploreView
from localopen.ui.services import Services

SMALL_SCREEN = QSize(1440, 900)  # up to this free area, the window opens maximised
SECTIONS = ["Start", "Explore", "Library", "Chat", "Compare", "Local server", "This machine"]


def app_icon() -> QIcon:
    """localopen's icon (SVG, sharp at every size), from the package's resources."""
    from importlib import resources

    return QIcon(str(resources.files("localopen.resources") / "icons" / "localopen.svg"))


class MainWindow(QMainWindow):
    summary_shown = Signal(object)  # the SummaryDialog, once open

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.setWindowTitle("localopen — open models on this machine")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.services = services
        self.views: dict[str, QWidget] = {}

        self.sidebar = QListWidget()
        self.sidebar.setAccessibleName("Sections")
        self.sidebar.addItems(SECTIONS)
        self.sidebar.setFixedWidth(150)
        self.sidebar.setStyleSheet("QListWidget::item { padding: 8px 6px; }")
        self.stack = QStackedWidget()
        self._section_slots: dict[str, QVBoxLayout] = {}  # each section's layout, filled on first use
        for name in SECTIONS:
            holder = QWidget()
            slot = QVBoxLayout(holder)
            slot.setContentsMargins(0, 0, 0, 0)
            self._section_slots[name] = slot
            self.stack.addWidget(holder)
        self.summary = QLabel("Reading this machine…")
        self.summary.setAccessibleName("What this machine can run")
        self.summary.setWordWrap(True)
        # Offers made at start (unfinished downloads, a new llama.cpp to measure): one row each.
        self.offers = QVBoxLayout()
        self.offers.setContentsMargins(0, 0, 0, 0)
        self.offer_rows: dict[str, QWidget] = {}
        summary_button = QPushButton("Usable here: summary…")
        summary_button.setAccessibleName("Summary of usable open models on this machine")
        summary_button.clicked.connect(self.show_summary)
        about_button = QPushButton("About…")
        about_button.setAccessibleName("About localopen, the log and diagnostics")
        about_button.clicked.connect(self.open_about)
        settings_button = QPushButton("Settings…")
        settings_button.setAccessibleName("Settings (Ctrl+,)")
        settings_button.clicked.connect(self.open_settings)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(summary_button)
        top.addWidget(settings_button)
        top.addWidget(about_button)
        body = QWidget()
        layout = QHBoxLayout(body)
        layout.addWidget(self.sidebar)
        right = QVBoxLayout()
        right.addLayout(top)
        right.addLayout(self.offers)
        right.addWidget(self.stack, 1)
        layout.addLayout(right, 1)
        self.setCentralWidget(body)

        self.sidebar.currentRowChanged.connect(self.show_section)
        QShortcut(QKeySequence("Ctrl+N"), self, self.new_chat)
        QShortcut(QKeySequence("Ctrl+F"), self, self.focus_search)
        QShortcut(QKeySequence("Ctrl+,"), self, self.open_settings)
        services.profile_ready.connect(self._on_profile, Qt.ConnectionType.QueuedConnection)
        # The machine line's "should run comfortably" counts change when the calibration ends.
        services.calibration.calibrated.connect(self._on_calibrated)
        self._restore()
        services.read_profile_async()
        services.scan_library()
        QTimer.singleShot(0, self._offer_resume)
        QTimer.singleShot(0, self._offer_rerun)

    # -- sections (built on first use: start-up stays fast) ---------------------------------------
    def view(self, name: str) -> QWidget:
        if name not in self.views:
            self.views[name] = widget = self._build(name)
            self._section_slots[name].addWidget(widget)
            splitter_state = QSettings().value(f"splitter/{name}")
            splitter = getattr(widget, "splitter", None)
            if splitter is not None and splitter_state is not None:
                splitter.restoreState(splitter_state)
        return self.views[name]

    def _build(self, name: str) -> QWidget:
        s = self.services
        if name == "Start":
            from localopen.ui.start_view import StartView

            start = StartView(s)
            start.download_requested.connect(lambda repo, pattern: s.downloads.add(repo, pattern=pattern))
            start.chat_requested.connect(self.chat_with)
            start.explore_requested.connect(lambda: self.goto("Explore"))
            return start
        if name == "Explore":
            explore = ExploreView(s)
            explore.download_requested.connect(self.download)
            return explore
        if name == "Library":
            from localopen.ui.library_view import LibraryView

            library = LibraryView(s)
            library.chat_requested.connect(self.chat_with)
            library.bench_requested.connect(self.benchmark)
            return library
        if name == "Chat":
            from localopen.ui.chat.view import ChatView

            return ChatView(s)
        if name == "Compare":
            from localopen.ui.compare_view import CompareView

            return CompareView(s)
        if name == "Local server":
            from localopen.ui.server_view import ServerView

            return ServerView(s)
        from localopen.ui.machine_view import MachineView

        return MachineView(s)

    def show_section(self, index: int) -> None:
        if index < 0:
            return
        name = SECTIONS[index]
        self.view(name)
        self.stack.setCurrentIndex(index)
        if self.sidebar.currentRow() != index:
            self.sidebar.setCurrentRow(index)

    def goto(self, name: str) -> QWidget:
        self.show_section(SECTIONS.index(name))
        return self.views[name]

    # -- actions -------------------------------------------------------------------------------------
    def download(self, repo: str, pattern: str) -> None:
        self.services.downloads.add(repo, pattern=pattern)
        self.goto("Library")

    def chat_with(self, path: str) -> None:
        chat = self.goto("Chat")
        chat.new_chat(path)  # type: ignore[attr-defined]

    def open_file(self, path: Path) -> None:
        """A model file opened from outside (a double-click, `localopen FILE.gguf`): chat with it at once
        if the library has it, else add it to the library first (the Library view says so), then chat."""
        known = {str(m.path): m for m in library.installed(self.services.ctx)}
        if str(path.resolve()) in known or str(path) in known:
            self.chat_with(str(path.resolve() if str(path.resolve()) in known else path))
            return
        view = self.goto("Library")
        view.import_path(path, then=lambda model: self.chat_with(str(model.path)))  # type: ignore[attr-defined]

    def benchmark(self, path: str) -> None:
        compare = self.goto("Compare")
        compare.check(path)  # type: ignore[attr-defined]

    def new_chat(self) -> None:
        self.goto("Chat").new_chat()  # type: ignore[attr-defined]

    def focus_search(self) -> None:
        current = SECTIONS[self.stack.currentIndex()]
        view = self.views.get(current)
        target = getattr(view, "search", None) or getattr(view, "conv_search", None)
        if target is None:
            target = self.goto("Explore").search  # type: ignore[attr-defined]
        target.setFocus()
        target.selectAll()

    def open_about(self) -> None:
        from localopen.ui.about_dialog import AboutDialog

        AboutDialog(self.services, self).open()

    def open_settings(self) -> None:
        from localopen.ui.settings_dialog import SettingsDialog

        SettingsDialog(self.services, self).exec()

    def _on_profile(self, hw: HardwareProfile) -> None:
        self.services.calibration.start_if_needed()  # once per llama.cpp build, in the background
        ctx = self.services.ctx
        run_in_background(
            lambda: machine_line(catalog_rows(ctx, MachineSnapshot.read(ctx, hw))),
            lambda line: self._show_machine(hw, line),
            name="machine-line",
            owner=self,
        )

    def _on_calibrated(self, _calibration: object) -> None:
        if self.services.profile is not None:
            self._on_profile(self.services.profile)

    def _show_machine(self, hw: HardwareProfile, line: MachineLine) -> None:
        gpu = "; GPU offload possible" if hw.gpu_offload_possible else ""
        self.summary.setText(
            f"<b>This machine:</b> {hw.cpu_model}, {hw.cores_physical} cores, {human_bytes(hw.ram_total)} RAM, "
            f"{hw.bandwidth_gbs} GB/s memory{gpu}. {line.fitting} of {line.total} catalog models fit; "
            f"about {line.good} should run comfortably or better here."
        )

    def _offer_resume(self) -> None:
        """Downloads left unfinished by an earlier run (closed or killed) can be resumed."""
        models_dir = self.services.ctx.models_dir
        run_in_background(
            lambda: pull.unfinished(models_dir), self._show_resume, name="unfinished-downloads", owner=self
        )

    def _show_resume(self, pending: list[tuple[str, str]]) -> None:
        if not pending:
            return
        self.offer(
            "resume",
            f"{len(pending)} download(s) were not finished: " + ", ".join(f for _, f in pending[:3]),
            "Resume",
            "Resume unfinished downloads",
            lambda: self._resume(pending),
        )

    def _resume(self, pending: list[tuple[str, str]]) -> None:
        for repo, filename in pending:
            self.services.downloads.add(repo, filename=filename)
        self.goto("Library")

    def _offer_rerun(self) -> None:
        """After a llama.cpp update: the installed models benchmarked only on an earlier build, to
        measure again (the regression guard), unless this build's offer was declined."""
        ctx, build = self.services.ctx, llama_cpp_version()
        if QSettings().value("offers/rerun-declined") == build:
            return
        run_in_background(
            lambda: stale(ctx, build), lambda paths: self._show_rerun(build, paths), name="stale-results", owner=self
        )

    def _show_rerun(self, build: str, paths: list[Path]) -> None:
        if not paths:
            return
        self.offer(
            "rerun",
            f"llama.cpp is now {build}: {len(paths)} installed model(s) were benchmarked only with an earlier "
            "build. Measure them again (short protocol) to see whether this build is slower or faster here.",
            "Measure again",
            "Measure the models again with this llama.cpp build",
            lambda: self._rerun(paths),
            on_decline=lambda: QSettings().setValue("offers/rerun-declined", build),
        )

    def _rerun(self, paths: list[Path]) -> None:
        from localopen.ui.compare_view import CompareView  # QtCharts loads with Compare only

        compare = self.goto("Compare")
        assert isinstance(compare, CompareView)
        compare.measure_again(paths)

    def offer(
        self,
        key: str,
        text: str,
        action: str,
        accessible: str,
        on_accept: Callable[[], None],
        on_decline: Callable[[], None] | None = None,
    ) -> None:
        """A row above the sections: what is offered, its action and "Not now"; either closes it."""
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        label = QLabel(text)
        label.setWordWrap(True)
        accept, decline = QPushButton(action), QPushButton("Not now")
        accept.setAccessibleName(accessible)
        decline.setAccessibleName(f"Not now: {accessible.lower()}")
        layout.addWidget(label, 1)
        layout.addWidget(accept)
        layout.addWidget(decline)

        def close(then: Callable[[], None] | None) -> None:
            row.hide()
            self.offer_rows.pop(key, None)
            if then is not None:
                then()

        accept.clicked.connect(lambda: close(on_accept))
        decline.clicked.connect(lambda: close(on_decline))
        self.offer_rows[key] = row
        self.offers.addWidget(row)

    def show_summary(self) -> None:
        """The same page `localopen summary` prints, from the application layer (made in the
        background: it reads the headers of installed files it has not graded yet)."""
        ctx, profile = self.services.ctx, self.services.profile
        run_in_background(
            lambda: (summary.render(ctx, "html", profile), summary.render(ctx, "markdown", profile)),
            self._show_summary_dialog,
            name="summary",
            owner=self,
        )

    def _show_summary_dialog(self, pages: tuple[str, str]) -> None:
        dialog = SummaryDialog(*pages, parent=self)
        dialog.open()
        self.summary_shown.emit(dialog)

    # -- drag and drop -----------------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802
        urls = event.mimeData().urls()
        if urls and all(u.toLocalFile().lower().endswith(".gguf") for u in urls):
            event.acceptProposedAction()
        elif self._chat_shown() and pictures_in(event.mimeData()):
            event.acceptProposedAction()  # pictures dropped on the chat: attached to the message

    def dropEvent(self, event) -> None:  # noqa: N802
        urls = event.mimeData().urls()
        if not (urls and all(u.toLocalFile().lower().endswith(".gguf") for u in urls)):
            chat = self.views.get("Chat")
            if chat is not None and self._chat_shown():
                chat.attachments.add_all(pictures_in(event.mimeData()))  # type: ignore[attr-defined]
            return
        library = self.goto("Library")
        for url in urls:
            library.import_path(Path(url.toLocalFile()))  # type: ignore[attr-defined]

    def _chat_shown(self) -> bool:
        return SECTIONS[self.stack.currentIndex()] == "Chat" if self.stack.currentIndex() >= 0 else False

    # -- state ------------------------------------------------------------------------------------------
    def _restore(self) -> None:
        settings = QSettings()
        screen = self.screen() or QGuiApplication.primaryScreen()
        area = screen.availableGeometry()
        geometry = settings.value("window/geometry")
        # Qt's restore keeps a remembered geometry on the screen's free area (one from a larger screen shrinks).
        if geometry is None or not self.restoreGeometry(geometry):
            rect, maximised = first_geometry(area)  # never larger than the screen it opens on
            self.setGeometry(rect)
            if maximised:
                self.setWindowState(self.windowState() | Qt.WindowState.WindowMaximized)
        last = settings.value("window/section", "Start")
        self.show_section(SECTIONS.index(last) if last in SECTIONS else 0)

    def closeEvent(self, event) -> None:  # noqa: N802
        """Quit cleanly: stop generation and downloads (their .part files stay), end the engine."""
        settings = QSettings()
        settings.setValue("window/geometry", self.saveGeometry())
        settings.setValue("window/section", SECTIONS[self.stack.currentIndex()])
        for name, widget in self.views.items():
            splitter = getattr(widget, "splitter", None)
            if splitter is not None:
                settings.setValue(f"splitter/{name}", splitter.saveState())
        self.services.shutdown()
        for view in self.views.values():  # the chat's and the benchmark's engines end with their views
            shutdown = getattr(view, "shutdown", None)
            if shutdown is not None:
                shutdown()
        self.services.ctx.close_models()  # models still loaded for a keep-alive end with the app
        super().closeEvent(event)


def first_geometry(area: QRect) -> tuple[QRect, bool]:
    """Where the window opens the first time on a screen with this free area (without panels and
    docks), and whether maximised: a laptop's screen (up to 1440x900) is used whole, a larger one
    gets a large centred window (LM Studio's and Jan's way), never less than 1280x800 and never
    more than the screen with room for the window's frame."""
    if area.width() <= SMALL_SCREEN.width() or area.height() <= SMALL_SCREEN.height():
        return QRect(area), True
    frame = 40  # a title bar and borders, which the geometry does not include
    width = min(area.width() - frame, max(1280, int(area.width() * 0.8)))
    height = min(area.height() - frame, max(800, int(area.height() * 0.85)))
    rect = QRect(0, 0, width, height)
    rect.moveCenter(area.center())
    return rect, False


class SummaryDialog(QDialog):
    """Which open models are usable systems on this machine, grouped by grade; export HTML or Markdown."""

    def __init__(self, html_text: str, markdown_text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open models usable on this machine")
        self.resize(900, 700)
        self.html_text, self.markdown_text = html_text, markdown_text
        view = QTextBrowser()
        view.setAccessibleName("Summary")
        view.setHtml(html_text)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        for label, writer in (("Export HTML…", self._save_html), ("Export Markdown…", self._save_md)):
            b = buttons.addButton(label, QDialogButtonBox.ButtonRole.ActionRole)
            b.clicked.connect(writer)
        layout = QVBoxLayout(self)
        layout.addWidget(view)
        layout.addWidget(buttons)

    def _save(self, suffix: str, text: str) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export summary", f"usable-models.{suffix}")
        if path:
            Path(path).write_text(text, encoding="utf-8")

    def _save_html(self) -> None:
        self._save("html", self.html_text)

    def _save_md(self) -> None:
        self._save("md", self.markdown_text)
