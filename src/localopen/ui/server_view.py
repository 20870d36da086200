"""Local server: the OpenAI, Anthropic and Ollama APIs switched on and off, its address, the model it serves,
and a live log of requests. The serving itself is app/serving.ModelServer behind api/server.py (the
same as `localopen serve`); this view only starts, stops and renders it."""

from __future__ import annotations

import html
import time
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from localopen.app import engine_options
from localopen.app.models import library
from localopen.app.serving import ModelServer, RequestRecord
from localopen.core.chat.template import template_options
from localopen.core.errors import LocalopenError
from localopen.ui.background import run_in_background
from localopen.ui.services import Services
from localopen.ui.widgets import button, spin

LOG_COLUMNS = ["Time", "API", "Request", "Model", "Status", "Prompt tokens", "Answer tokens", "Tokens/s", "Time (ms)"]
ON_DEMAND = ""  # the model combo's "load on demand" entry


class ServerView(QWidget):
    record_seen = Signal(object)  # a RequestRecord, from the server's thread
    state_changed = Signal(bool)  # running or not

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.server: ModelServer | None = None
        self.http: Any = None  # api.server.ServerThread while running
        self._rows: dict[int, int] = {}  # request id -> table row

        s = services.ctx.settings
        self.host = QLineEdit("127.0.0.1")
        self.host.setAccessibleName("Address to listen on")
        self.port = spin(1, 65535, 8080, "Port")
        self.api_key = QLineEdit()
        self.api_key.setAccessibleName("API key clients must send")
        self.api_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.api_key.setPlaceholderText("optional on 127.0.0.1; required on any other address")
        self.model_box = QComboBox()
        self.model_box.setAccessibleName("Model to load at start")
        self.template_box = QComboBox()
        self.template_box.setAccessibleName("Chat template for models without one")
        self.template_box.addItem("none: such models answer /v1/completions only", None)
        for name in template_options():
            self.template_box.addItem(name, name)
        self.n_ctx = spin(256, 1 << 20, s.n_ctx, "Context size")
        self.gpu_layers = spin(-1, 999, s.n_gpu_layers, "GPU layers (-1 = all)")
        form = QFormLayout()
        form.addRow("Address", self.host)
        form.addRow("Port", self.port)
        form.addRow("API key", self.api_key)
        form.addRow("Load at start", self.model_box)
        form.addRow("Template if none", self.template_box)
        form.addRow("Context", self.n_ctx)
        form.addRow("GPU layers", self.gpu_layers)

        self.toggle_button = button("Start server", "Start or stop the local server", self.toggle)
        self.status = QLabel(
            "Off. When on, programs that speak the OpenAI, Anthropic or Ollama API (editors, agents, "
            "scripts) can use this machine's models; nothing leaves this machine."
        )
        self.status.setAccessibleName("Server status")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.loaded_label = QLabel("")
        self.loaded_label.setAccessibleName("Models loaded now")
        self.loaded_label.setWordWrap(True)
        self._loaded_timer = QTimer(self)  # keep-alives run out without a request: look again now and then
        self._loaded_timer.setInterval(2000)
        self._loaded_timer.timeout.connect(self._show_loaded)
        self.log_table = QTableWidget(0, len(LOG_COLUMNS))
        self.log_table.setAccessibleName("Requests")
        self.log_table.setHorizontalHeaderLabels(LOG_COLUMNS)
        self.log_table.verticalHeader().setVisible(False)
        self.log_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.log_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.log_table.horizontalHeader().setStretchLastSection(True)

        settings = QWidget()
        settings.setLayout(form)
        settings.setMaximumWidth(640)  # short fields; the log below takes the width
        side = QVBoxLayout()
        side.addWidget(self.toggle_button)
        side.addStretch(1)
        top = QHBoxLayout()
        top.addWidget(settings, 1)
        top.addLayout(side)
        top.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(self.loaded_label)
        layout.addWidget(QLabel("Requests (no prompt or answer text is kept)"))
        layout.addWidget(self.log_table, 1)

        self.record_seen.connect(self._show_record, Qt.ConnectionType.QueuedConnection)
        services.library_changed.connect(self.reload_models)
        self.reload_models()

    @property
    def running(self) -> bool:
        return self.http is not None

    def reload_models(self) -> None:
        current = self.model_box.currentData()
        self.model_box.clear()
        self.model_box.addItem("none: the first request's model loads on demand", ON_DEMAND)
        for m in library.installed(self.services.ctx):
            self.model_box.addItem(m.name, m.name)
        index = self.model_box.findData(current)
        self.model_box.setCurrentIndex(max(0, index))

    # -- on and off ---------------------------------------------------------------------------
    def toggle(self) -> None:
        if self.running:
            self.stop()
        else:
            self.start()

    def start(self) -> None:
        from localopen.api.server import ApiApp, ServerConfig, ServerThread

        settings = self.services.ctx.settings
        config = ServerConfig(
            self.host.text().strip() or "127.0.0.1",
            self.port.value(),
            self.api_key.text() or None,
            allowed_hosts=tuple(settings.allowed_hosts),
        )
        options = engine_options.load_options(settings, n_ctx=self.n_ctx.value(), n_gpu_layers=self.gpu_layers.value())
        default = self.model_box.currentData() or None
        try:
            config.check()
            server = ModelServer(
                self.services.ctx,
                options,
                default,
                on_record=self.record_seen.emit,
                template=self.template_box.currentData(),
            )
            # Each model with its preset; a context or GPU-layer count changed here wins over it.
            server.overrides = {
                "n_ctx": self.n_ctx.value() if self.n_ctx.value() != settings.n_ctx else None,
                "n_gpu_layers": self.gpu_layers.value() if self.gpu_layers.value() != settings.n_gpu_layers else None,
            }
            http = ServerThread(ApiApp(server, config))
            try:
                http.start()
            except LocalopenError:
                server.close()
                raise
        except LocalopenError as exc:
            self.status.setText(f"<span style='color:#c62828'>{html.escape(str(exc))}</span>")
            return
        self.server, self.http = server, http
        self._set_controls(running=True)
        self._loaded_timer.start()
        key_note = " Clients must send the API key." if config.api_key else ""
        loaded = (
            f" Loading {html.escape(default)}…"
            if default
            else " Models load on demand and stay loaded as memory allows."
        )
        self.status.setText(
            f"<b>On</b> at <code>{html.escape(config.base_url)}</code> (OpenAI API: /chat/completions, "
            f"/completions, /responses, /embeddings; Anthropic: /messages; Ollama: "
            f"<code>{html.escape(config.base_url.removesuffix('/v1'))}</code>).{key_note}{loaded}"
        )
        if default:
            run_in_background(server.preload, self._on_preloaded, self._on_preload_failed, "server-load", self)
        self.state_changed.emit(True)

    def _on_preloaded(self, model: Any) -> None:
        if self.running:
            self._show_loaded()
            self.status.setText(
                self.status.text().replace(f"Loading {html.escape(model.id)}…", f"Serving {html.escape(model.id)}.")
            )

    def _on_preload_failed(self, error: LocalopenError) -> None:
        if self.running:
            self.status.setText(self.status.text() + f" <span style='color:#c62828'>{html.escape(str(error))}</span>")

    def stop(self) -> None:
        """Stop listening, stop the answer in progress, end the engine process."""
        if self.http is not None:
            self.http.stop()
        if self.server is not None:
            self.server.close()
        self.server, self.http = None, None
        self._set_controls(running=False)
        self._loaded_timer.stop()
        self.status.setText("Off.")
        self.loaded_label.setText("")
        self.state_changed.emit(False)

    def shutdown(self) -> None:
        self.stop()

    def _set_controls(self, running: bool) -> None:
        self.toggle_button.setText("Stop server" if running else "Start server")
        for w in (self.host, self.port, self.api_key, self.model_box, self.template_box, self.n_ctx, self.gpu_layers):
            w.setEnabled(not running)

    # -- the log -------------------------------------------------------------------------------
    def _show_loaded(self) -> None:
        """The models loaded now: who uses them (the server, a chat), their memory, when they unload."""
        if self.server is None:
            return
        lines = [
            f"<b>{html.escape(model.id)}</b> ({html.escape(view.label)})" for model, view in self.server.resident()
        ]
        self.loaded_label.setText("Loaded now: " + ("; ".join(lines) if lines else "none"))

    def _show_record(self, record: RequestRecord) -> None:
        self._show_loaded()
        row = self._rows.get(record.id)
        if row is None:
            row = self.log_table.rowCount()
            self.log_table.insertRow(row)
            self._rows[record.id] = row
        status = {0: "waiting", 200: "200 ok", 499: "client left"}.get(record.status, str(record.status))
        cells = [
            time.strftime("%H:%M:%S", time.localtime(record.received)),
            record.api,
            record.endpoint.removeprefix("/v1/"),
            record.model,
            status,
            str(record.prompt_tokens or ""),
            str(record.completion_tokens or ""),
            f"{record.tokens_per_s:.1f}" if record.tokens_per_s else "",
            f"{record.duration_ms:.0f}" if record.status else "",
        ]
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            if record.error:
                item.setToolTip(record.error)
            self.log_table.setItem(row, column, item)
        self.log_table.scrollToBottom()
