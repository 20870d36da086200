"""The transcript: a conversation rendered once (never per token), the answer being streamed
appended to it (its Thinking section open while the model thinks, one line once the answer
starts), tool calls with their results, pictures as thumbnails, and the links on each message
(copy, edit and resend, open or close its Thinking)."""

from __future__ import annotations

import html
import time
from collections.abc import Callable

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QColor, QTextBlockFormat, QTextCharFormat, QTextCursor, QTextDocument
from PySide6.QtWidgets import QTextBrowser

from localopen.app.conversation.tool_loop import ToolRun
from localopen.core.chat.conversations import Message
from localopen.core.records import AnswerPiece
from localopen.ui import theme
from localopen.ui.chat_attachments import thumbnail

PICTURE_SIDE = 160  # a message's pictures in the transcript, at most this many pixels a side


class Transcript(QTextBrowser):
    message_action = Signal(str, int)  # "copy" or "edit", and the message's position

    def __init__(self, picture: Callable[[str], bytes | None]) -> None:
        """`picture`: a stored picture's bytes by its name (None: no longer on this computer)."""
        super().__init__()
        self.picture = picture
        self.setAccessibleName("Conversation")
        self.setOpenLinks(False)
        self.anchorClicked.connect(self._on_anchor)
        self.expanded: set[int] = set()  # positions of answers whose Thinking section is open
        self._messages: list[Message] = []
        self._hint = ""
        self._live = _LiveThinking()
        self.answer = ""  # the streamed answer so far
        self.reasoning = ""  # its reasoning so far

    # -- a whole conversation -----------------------------------------------------------------
    def show_conversation(self, messages: list[Message], empty_hint: str) -> None:
        """Render the whole conversation once (on load and after each answer, never per token)."""
        self._messages, self._hint = messages, empty_hint
        self.clear()
        if not messages:  # an empty chat says what to do next
            self.setHtml(f"<p style='color:{theme.muted_colour()}'>{empty_hint}</p>")
            return
        cursor = QTextCursor(self.document())
        calls = {c.get("id"): c.get("function", {}) for m in messages for c in m.tool_calls}
        for m in messages:
            if m.role == "tool":  # a call's result, shown with the call it answers
                function = calls.get(m.tool_call_id, {})
                cursor.insertHtml(
                    tool_run_html(function.get("name", "tool"), str(function.get("arguments", "")), m.content)
                )
                cursor.insertBlock()
                continue
            who = "You" if m.role == "user" else "Assistant"
            links = f"<a href='copy:{m.position}'>Copy</a>"
            if m.role == "user":
                links += f" · <a href='edit:{m.position}'>Edit and resend</a>"
            cursor.insertHtml(f"<p><b>{who}</b> <small>{links}</small></p>")
            cursor.insertBlock()
            if m.reasoning:
                self._insert_thinking(cursor, m)
            if m.images:
                self._insert_pictures(cursor, m.images)
            cursor.insertMarkdown(keep_line_breaks(m.content))
            cursor.insertBlock()
            if m.stats:
                bits = m.stats.describe()
                color = "#b26a00" if m.stats.finish_reason == "length" else "#777"
                cursor.insertHtml(f"<p style='color:{color}'><small>{html.escape(' · '.join(bits))}</small></p>")
                cursor.insertBlock()
        self.moveCursor(QTextCursor.MoveOperation.End)

    def toggle_thinking(self, position: int) -> None:
        """Open or close the Thinking section of the answer at `position`."""
        self.expanded ^= {position}
        bar = self.verticalScrollBar()
        scroll = bar.value()
        self.show_conversation(self._messages, self._hint)
        bar.setValue(scroll)

    def _insert_pictures(self, cursor: QTextCursor, names: list[str]) -> None:
        """A message's pictures as thumbnails (from the app's copies; a deleted one is said)."""
        document = self.document()
        tags = []
        for name in names:
            data = self.picture(name)
            if data is None:
                tags.append("<i>(a picture that is no longer on this computer)</i>")
                continue
            url = QUrl(f"chat-image:{name}")
            document.addResource(QTextDocument.ResourceType.ImageResource, url, thumbnail(data, PICTURE_SIDE).toImage())
            tags.append(f"<img src='chat-image:{html.escape(name)}'> ")
        cursor.insertHtml("<p>" + "".join(tags) + "</p>")
        cursor.insertBlock()

    def _insert_thinking(self, cursor: QTextCursor, m: Message) -> None:
        """A stored answer's Thinking section: one line, opened and closed by a click."""
        expanded = m.position in self.expanded
        figures = [f"{m.stats.reasoning_tokens} tokens"] if m.stats and m.stats.reasoning_tokens else []
        if m.stats and m.stats.reasoning_ms is not None:
            figures.append(_duration(m.stats.reasoning_ms))
        label = ("▾ " if expanded else "▸ ") + "Thinking" + (f" ({', '.join(figures)})" if figures else "")
        cursor.insertHtml(f"<p><a href='think:{m.position}' style='color:#777'>{html.escape(label)}</a></p>")
        cursor.insertBlock()
        if expanded:
            cursor.insertText(m.reasoning.strip(), _thinking_format())
            cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())

    def _on_anchor(self, url: QUrl) -> None:
        action, _, position = url.toString().partition(":")
        if not position.isdigit():
            return
        if action == "think":
            self.toggle_thinking(int(position))
        else:
            self.message_action.emit(action, int(position))

    # -- the answer being streamed ------------------------------------------------------------
    def begin_answer(self) -> None:
        self.answer, self.reasoning = "", ""
        self._live = _LiveThinking()
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertHtml("<p><b>Assistant</b></p>")
        cursor.insertBlock()

    def add_pieces(self, pieces: list[AnswerPiece | ToolRun]) -> tuple[bool, bool]:
        """Insert the pieces that came since the last refresh: reasoning into the open Thinking
        section, the answer after it (the section collapses to one line when the answer starts);
        returns whether the thinking and the answer grew."""
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        answer_grew = thinking_grew = False
        for piece in pieces:
            if isinstance(piece, ToolRun):
                if self._live.start is not None and not self._live.collapsed:
                    self._live.collapse(cursor)
                cursor.insertBlock()
                result = piece.result
                cursor.insertHtml(
                    tool_run_html(piece.call.name, piece.call.arguments, result.text, result.is_error, result.ms)
                )
                cursor.insertBlock()
                continue
            if piece.tool_call is not None:
                continue  # shown once it has run (or was not allowed)
            if piece.reasoning and not self.answer:
                if self._live.start is None:
                    self._live.begin(cursor)
                self._live.tokens += 1
                self.reasoning += piece.text
                cursor.insertText(piece.text, self._live.format)
                thinking_grew = True
            elif piece.reasoning:
                self.reasoning += piece.text  # thinking after the answer began: kept, not shown live
            else:
                if self._live.start is not None and not self._live.collapsed:
                    self._live.collapse(cursor)
                self.answer += piece.text
                cursor.insertText(piece.text, QTextCharFormat())
                answer_grew = True
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())
        return thinking_grew, answer_grew


def tool_run_html(name: str, arguments: str, result: str, is_error: bool = False, ms: float | None = None) -> str:
    """A tool call in the transcript: the tool, its arguments, its result (or error) and its time."""
    e = html.escape
    shown = result if len(result) <= 600 else result[:600] + "…"
    colour = "#c62828" if is_error else "#555"
    took = f" · {ms:.0f} ms" if ms is not None else ""
    return (
        f"<p style='color:#555'><small>Tool call: <b>{e(name)}</b>(<code>{e(arguments)}</code>){took}</small><br>"
        f"<small style='color:{colour}'>{e(shown)}</small></p>"
    )


def keep_line_breaks(text: str) -> str:
    """Markdown joins single line breaks into one paragraph; chat apps keep them (a poem, an address,
    a list without bullets). Each single break becomes a hard break, except inside code blocks,
    which stay exact."""
    out, fenced = [], False
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            out.append(line)
            continue
        following = lines[i + 1] if i + 1 < len(lines) else ""
        hard = not fenced and line.strip() and following.strip() and not line.endswith("  ")
        out.append(line + "  " if hard else line)
    return "\n".join(out)


def _thinking_format() -> QTextCharFormat:
    fmt = QTextCharFormat()
    fmt.setForeground(QColor(theme.muted_colour()))
    fmt.setFontItalic(True)
    return fmt


def _duration(ms: float) -> str:
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


class _LiveThinking:
    """The Thinking section of the answer being streamed: open while the model thinks, one
    line once the answer starts."""

    def __init__(self) -> None:
        self.start: int | None = None  # where the section begins in the transcript
        self.began_at = 0.0
        self.tokens = 0
        self.collapsed = False
        self.format = _thinking_format()

    def begin(self, cursor: QTextCursor) -> None:
        self.start = cursor.position()
        self.began_at = time.perf_counter()
        cursor.insertText("▾ Thinking…\n", self.format)

    def collapse(self, cursor: QTextCursor) -> None:
        assert self.start is not None
        cursor.setPosition(self.start)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        took = _duration((time.perf_counter() - self.began_at) * 1000)
        cursor.insertText(f"▸ Thinking ({self.tokens} tokens, {took})\n", self.format)
        self.collapsed = True
