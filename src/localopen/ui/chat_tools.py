"""The Chat view's tools: MCP servers switched on and off, their configuration (the mcpServers JSON
people already have from Claude Desktop, LM Studio or Jan), and the question asked before each call
runs (once, always for this tool, or not). The connections and the calls are app/mcp_tools'; the
tool loop is app/tool_loop's; this only renders and asks."""

from __future__ import annotations

import html
import threading
from dataclasses import dataclass, field

from PySide6.QtCore import QSettings, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from localopen.app.conversation.mcp_tools import (
    EXAMPLE_CONFIG,
    McpConnections,
    McpError,
    load_app_config,
    parse_config,
    save_app_config,
)
from localopen.core.errors import LocalopenError
from localopen.core.records import ToolCall
from localopen.ui.background import run_in_background
from localopen.ui.services import Services
from localopen.ui.widgets import button


@dataclass
class _Question:
    """A call waiting for the person's answer (asked from the engine's thread, answered on the UI's)."""

    call: ToolCall
    answered: threading.Event = field(default_factory=threading.Event)
    allowed: bool = False


REMEMBERED = "chat/use-mcp-tools"  # the switch, as the person left it


class McpDialog(QDialog):
    """Edit the MCP servers as JSON; saved only when it is valid."""

    def __init__(self, services: Services, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("MCP servers")
        self.services = services
        self.editor = QPlainTextEdit()
        self.editor.setAccessibleName("MCP servers as JSON")
        self.editor.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        problem = ""
        try:
            text = load_app_config(services.ctx.paths.config)
        except McpError as exc:
            text, problem = "", str(exc)
        self.editor.setPlainText(text or EXAMPLE_CONFIG)
        self.help = QLabel(
            "Paste the <code>mcpServers</code> JSON of Claude Desktop, LM Studio or Jan: a server is a "
            "<code>command</code> with <code>args</code> (stdio) or a <code>url</code> (Streamable HTTP). "
            "Each call a model makes is shown and runs only once you allow it."
        )
        self.help.setWordWrap(True)
        self.problem = QLabel(problem)
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color:#c62828")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.help)
        layout.addWidget(self.editor, 1)
        layout.addWidget(self.problem)
        layout.addWidget(buttons)
        self.resize(640, 420)

    def save(self) -> None:
        try:
            save_app_config(self.services.ctx.paths.config, self.editor.toPlainText())
        except McpError as exc:
            self.problem.setText(str(exc))
            return
        self.accept()


class ChatTools(QWidget):
    """The switch, its status, and the approval bar (placed by the Chat view above its input)."""

    asked = Signal(object)  # a _Question, from the engine's thread

    def __init__(self, services: Services) -> None:
        super().__init__()
        self.services = services
        self.connections: McpConnections | None = None
        self.always: set[str] = set()  # tools the person allowed for this session of the app
        self._question: _Question | None = None
        self.enabled = QCheckBox("Use MCP tools")
        self.enabled.setAccessibleName("Use MCP tools")
        self.enabled.setToolTip("Offer the MCP servers' tools to the model (asks before each call)")
        self.enabled.toggled.connect(self._on_toggled)
        # The person's choice is remembered (clicked: not a switch-off after servers failed to start).
        self.enabled.clicked.connect(lambda on: QSettings().setValue(REMEMBERED, on))
        self.configure = button("MCP servers…", "Edit the MCP servers (Claude Desktop's JSON)", self.edit_config)
        self.status = QLabel("")
        self.status.setAccessibleName("Tools status")
        self.status.setWordWrap(True)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.enabled)
        row.addWidget(self.configure)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.status)

        self.approval = QFrame()
        self.approval.setFrameShape(QFrame.Shape.StyledPanel)
        self.question_text = QLabel("")
        self.question_text.setWordWrap(True)
        self.question_text.setAccessibleName("Tool call waiting for your permission")
        self.allow_once = button("Allow once", "Run this call", lambda: self.answer(True))
        self.allow_always = button("Always allow this tool", "Run this tool's calls without asking", self._always)
        self.deny = button("Don't allow", "Do not run this call (the model is told)", lambda: self.answer(False))
        bar = QHBoxLayout(self.approval)
        bar.addWidget(self.question_text, 1)
        for b in (self.allow_once, self.allow_always, self.deny):
            bar.addWidget(b)
        self.approval.hide()
        self.asked.connect(self._show_question)

    def restore(self) -> None:
        """Tools on again if they were on when the app last closed (their servers connect now)."""
        if QSettings().value(REMEMBERED, False, type=bool):
            self.enabled.setChecked(True)

    # -- servers ---------------------------------------------------------------------------------
    def active(self) -> McpConnections | None:
        """The connected servers, when the person switched tools on and at least one tool is there."""
        if self.enabled.isChecked() and self.connections is not None and self.connections.tools():
            return self.connections
        return None

    def edit_config(self) -> None:
        if McpDialog(self.services, self).exec() == QDialog.DialogCode.Accepted and self.enabled.isChecked():
            self._disconnect()
            self._connect()

    def _on_toggled(self, on: bool) -> None:
        if on:
            self._connect()
        else:
            self._disconnect()
            self.status.setText("")

    def _connect(self) -> None:
        config = self.services.ctx.paths.config
        self.status.setText("Connecting to the MCP servers…")
        self.enabled.setEnabled(False)

        def work() -> McpConnections:
            text = load_app_config(config)
            if not text.strip():
                raise McpError("No MCP servers yet: add them with “MCP servers…”.")
            try:
                import json

                servers = parse_config(json.loads(text))
            except ValueError as exc:
                raise McpError(f"The MCP configuration is not valid JSON ({exc}).") from exc
            connections = McpConnections(servers)
            connections.connect()
            return connections

        run_in_background(work, self._on_connected, self._on_connect_failed, name="mcp-connect", owner=self)

    def _on_connected(self, connections: McpConnections) -> None:
        self.enabled.setEnabled(True)
        if not self.enabled.isChecked():  # switched off while connecting
            connections.close()
            return
        self.connections = connections
        names = ", ".join(t.name for t in connections.tools()) or "none"
        problems = "".join(
            f"<br><span style='color:#c62828'>{html.escape(name)}: {html.escape(why)}</span>"
            for name, why in connections.problems.items()
        )
        self.status.setText(f"Tools: {html.escape(names)}{problems}")

    def _on_connect_failed(self, error: LocalopenError) -> None:
        self.enabled.setEnabled(True)
        self.enabled.setChecked(False)
        self.status.setText(f"<span style='color:#c62828'>{html.escape(str(error))}</span>")

    def _disconnect(self) -> None:
        connections, self.connections = self.connections, None
        if connections is not None:
            threading.Thread(target=connections.close, daemon=True, name="mcp-close").start()

    def shutdown(self) -> None:
        self.cancel()
        if self.connections is not None:
            self.connections.close()
            self.connections = None

    # -- the question before a call ---------------------------------------------------------------
    def allow(self, call: ToolCall) -> bool:
        """Called on the engine's thread: waits for the person's answer on the UI's."""
        if call.name in self.always:
            return True
        question = _Question(call)
        self.asked.emit(question)
        question.answered.wait()
        return question.allowed

    def _show_question(self, question: _Question) -> None:
        self._question = question
        args = question.call.arguments if len(question.call.arguments) <= 300 else question.call.arguments[:300] + "…"
        self.question_text.setText(
            f"The model wants to call <b>{html.escape(question.call.name)}</b> with "
            f"<code>{html.escape(args)}</code>. Allow it?"
        )
        self.approval.show()
        self.allow_once.setFocus()

    def answer(self, allowed: bool) -> None:
        question, self._question = self._question, None
        self.approval.hide()
        if question is not None:
            question.allowed = allowed
            question.answered.set()

    def _always(self) -> None:
        if self._question is not None:
            self.always.add(self._question.call.name)
        self.answer(True)

    def cancel(self) -> None:
        """Stop pressed, or the app quits: a waiting call is not allowed."""
        self.answer(False)
