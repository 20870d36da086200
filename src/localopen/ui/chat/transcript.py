"""The transcript: a conversation rendered once (never per token), the answer being streamed
appended to it as rendered markdown (its Thinking section open while the model thinks, one line
once the answer starts), tool calls with their results, pictures as thumbnails, and the links on
each message (copy, edit and resend, open or close its Thinking, copy a code block, open a web
link in the browser)."""

from __future__ import annotations

import html
import time
from collections.abc import Callable

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QGuiApplication,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
)
from PySide6.QtWidgets import QTextBrowser

from localopen.app.conversation.tool_loop import ToolRun
from localopen.core.chat.conversations import Message
from localopen.core.records import AnswerPiece
from localopen.ui import theme
from localopen.ui.chat import rich_text
from localopen.ui.chat_attachments import thumbnail

PICTURE_SIDE = 160  # a message's pictures in the transcript, at most this many pixels a side


class Transcript(QTextBrowser):
    message_action = Signal(str, int)  # "copy" or "edit", and the message's position
    said = Signal(str)  # what a click did that the status line tells (a code block copied)

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
        self._markdown: _LiveMarkdown | None = None  # the streamed answer's text since the last tool call
        self._wait_at: int | None = None  # where the line that says what the answer waits for begins
        self.waiting = ""  # what that line says
        self.code: list[str] = []  # the code blocks shown, by the number in their Copy link
        self.answer = ""  # the streamed answer so far
        self.reasoning = ""  # its reasoning so far

    # -- a whole conversation -----------------------------------------------------------------
    def show_conversation(self, messages: list[Message], empty_hint: str) -> None:
        """Render the whole conversation once (on load and after each answer, never per token)."""
        self._messages, self._hint = messages, empty_hint
        self.clear()
        self.code = []
        self._wait_at, self.waiting = None, ""
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
            self.insert_markdown(cursor, m.content)
            if m.stats:
                bits = m.stats.describe()
                color = "#b26a00" if m.stats.finish_reason == "length" else "#777"
                cursor.insertHtml(f"<p style='color:{color}'><small>{html.escape(' · '.join(bits))}</small></p>")
                cursor.insertBlock()
        self.moveCursor(QTextCursor.MoveOperation.End)

    def insert_markdown(self, cursor: QTextCursor, text: str) -> None:
        """Text written in markdown, rendered at the cursor (its code blocks numbered on from
        those already shown), and a new block after it."""
        rendered = rich_text.render(text, rich_text.DARK if theme.is_dark() else rich_text.LIGHT, len(self.code))
        self.code += rendered.code
        if rendered.html.strip():
            cursor.insertHtml(rendered.html)
        cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())

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
        if url.scheme() in rich_text.LINK_SCHEMES:  # an answer's link: the browser opens it, never the app
            QDesktopServices.openUrl(url)
            return
        action, _, position = url.toString().partition(":")
        if not position.isdigit():
            return
        if action == rich_text.COPY_CODE:
            if int(position) < len(self.code):
                QGuiApplication.clipboard().setText(self.code[int(position)])
                self.said.emit("Code copied.")
            return
        if action == "think":
            self.toggle_thinking(int(position))
        else:
            self.message_action.emit(action, int(position))

    # -- the answer being streamed ------------------------------------------------------------
    def begin_answer(self) -> None:
        self.answer, self.reasoning = "", ""
        self._live = _LiveThinking()
        self._markdown = None
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertHtml("<p><b>Assistant</b></p>")
        cursor.insertBlock()
        self._wait_at = cursor.position()
        self.show_wait("Reading the prompt…")

    def show_wait(self, text: str) -> None:
        """What the answer waits for (the prompt being read), in place of its first words."""
        if self._wait_at is None or text == self.waiting:
            return
        cursor = QTextCursor(self.document())
        cursor.setPosition(self._wait_at)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        cursor.insertText(text, _thinking_format())
        self.waiting = text

    def _end_wait(self) -> None:
        if self._wait_at is None:
            return
        cursor = QTextCursor(self.document())
        cursor.setPosition(self._wait_at)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        cursor.setCharFormat(QTextCharFormat())
        self._wait_at, self.waiting = None, ""

    def add_pieces(self, pieces: list[AnswerPiece | ToolRun]) -> tuple[bool, bool]:
        """Insert the pieces that came since the last refresh: reasoning into the open Thinking
        section, the answer after it (the section collapses to one line when the answer starts);
        returns whether the thinking and the answer grew."""
        if pieces:
            self._end_wait()
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        answer_grew = thinking_grew = False
        for piece in pieces:
            if isinstance(piece, ToolRun):
                if self._live.start is not None and not self._live.collapsed:
                    self._live.collapse(cursor)
                if self._markdown is not None:  # the words before the call, shown before it
                    self._markdown.show(self)
                self._markdown = None  # the answer goes on below the call, as a new piece of text
                cursor.movePosition(QTextCursor.MoveOperation.End)
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
                if self._markdown is None:
                    cursor.movePosition(QTextCursor.MoveOperation.End)
                    self._markdown = _LiveMarkdown(cursor.position(), len(self.code))
                self.answer += piece.text
                self._markdown.text += piece.text
                answer_grew = True
        if answer_grew and self._markdown is not None:
            self._markdown.show(self)
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


class _LiveMarkdown:
    """The answer being streamed, rendered as markdown at each refresh: the part that can no
    longer change (up to the last finished block) is inserted once, the rest replaced each time,
    so a long answer costs a refresh no more than its last paragraph."""

    def __init__(self, start: int, first_code: int) -> None:
        self.text = ""
        self.settled = 0  # how much of the text is rendered for good
        self.tail_start = start  # where the rest's rendering begins in the transcript
        self.tail_code = first_code  # the number of the rest's first code block

    def show(self, transcript: Transcript) -> None:
        cursor = QTextCursor(transcript.document())
        cursor.setPosition(self.tail_start)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        cursor.setBlockFormat(QTextBlockFormat())
        del transcript.code[self.tail_code :]
        end = rich_text.settled_end(self.text, self.settled)
        if end > self.settled:
            transcript.insert_markdown(cursor, self.text[self.settled : end])
            self.settled, self.tail_start, self.tail_code = end, cursor.position(), len(transcript.code)
        transcript.insert_markdown(cursor, self.text[self.settled :])
