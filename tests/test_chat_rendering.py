"""Answers as rich text: markdown rendered (code highlighted under a bar with a Copy link, tables,
lists, links opened only in the browser), the same while it streams as once it is kept, nothing in
an answer run or fetched, and the wait before the first token said."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QObject, Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices, QGuiApplication, QTextCursor

from localopen.core.chat import conversations as convs
from localopen.core.records import AnswerPiece
from localopen.ui.chat import rich_text
from localopen.ui.main_window import MainWindow

pytest.importorskip("llama_cpp")

ANSWER = """## Renamed

Here is the function with `total` renamed to **amount**:

```python
def add(items: list[int]) -> int:
    amount = 0

    for item in items:
        amount += item
    return amount
```

What changed:
1. The variable's name, in *three* places.
2. Nothing else, see [PEP 8](https://peps.python.org/pep-0008/).

| before | after |
|--------|-------|
| total  | amount |

```
plain
```
Done."""
CODE = ANSWER.split("```python\n")[1].split("\n```")[0]


def _answer_in_chat(window: MainWindow, content: str):  # type: ignore[no-untyped-def]
    chat = window.goto("Chat")
    chat.new_chat()
    convs.add_message(window.services.ctx.db, chat.conversation.id, "user", "Rename total to amount.")
    convs.add_message(window.services.ctx.db, chat.conversation.id, "assistant", content)
    chat.render_conversation()
    return chat


def _anchors(browser) -> set[str]:  # type: ignore[no-untyped-def]
    """Every link the transcript holds."""
    document, found = browser.document(), set()
    for position in range(document.characterCount() - 1):
        cursor = QTextCursor(document)
        cursor.setPosition(position)
        cursor.movePosition(QTextCursor.MoveOperation.Right, QTextCursor.MoveMode.KeepAnchor)
        if cursor.charFormat().anchorHref():
            found.add(cursor.charFormat().anchorHref())
    return found


def _pictures(browser) -> list[str]:  # type: ignore[no-untyped-def]
    """The images the transcript's text asks for."""
    document, found = browser.document(), []
    for position in range(document.characterCount() - 1):
        cursor = QTextCursor(document)
        cursor.setPosition(position)
        cursor.movePosition(QTextCursor.MoveOperation.Right, QTextCursor.MoveMode.KeepAnchor)
        if cursor.charFormat().isImageFormat():
            found.append(cursor.charFormat().toImageFormat().name())
    return found


def _find_anchor(browser, href: str):  # type: ignore[no-untyped-def]
    document = browser.document()
    for position in range(document.characterCount() - 1):
        cursor = QTextCursor(document)
        cursor.setPosition(position)
        cursor.movePosition(QTextCursor.MoveOperation.Right, QTextCursor.MoveMode.KeepAnchor)
        if cursor.charFormat().anchorHref() == href:
            return browser.cursorRect(cursor).center()
    raise AssertionError(f"no link to {href} in the transcript")


def test_a_code_block_is_highlighted_with_a_copy_link_that_copies_its_code(window: MainWindow, qtbot) -> None:
    chat = _answer_in_chat(window, ANSWER)
    transcript = chat.transcript
    assert transcript.code == [CODE, "plain"]
    html = transcript.toHtml()
    assert "font-weight:" in html and "#008000" in html.lower()  # Pygments' colours for the keywords
    shown = transcript.toPlainText()
    assert "```" not in shown and "## " not in shown and "**" not in shown  # rendered, not markdown source
    assert "python" in shown and "Copy" in shown
    QGuiApplication.clipboard().clear()
    transcript.scrollToAnchor("")
    point = _find_anchor(transcript, "copycode:0")
    qtbot.mouseClick(transcript.viewport(), Qt.MouseButton.LeftButton, pos=point)
    qtbot.waitUntil(lambda: QGuiApplication.clipboard().text() == CODE, timeout=3000)
    assert chat.status.text() == "Code copied."
    # Copying the whole message copies its markdown, as written.
    chat.copy_message(1)
    assert QGuiApplication.clipboard().text() == ANSWER


def test_a_streamed_answer_renders_as_it_will_be_kept(window: MainWindow) -> None:
    """Token by token, the transcript shows what the stored answer shows once it is rendered whole."""
    whole = _answer_in_chat(window, ANSWER).transcript
    expected, expected_code = whole.toPlainText(), list(whole.code)
    chat = window.views["Chat"]
    chat.new_chat()
    transcript = chat.transcript
    transcript.begin_answer()
    assert transcript.waiting == "Reading the prompt…"
    for start in range(0, len(ANSWER), 3):  # a few characters a refresh
        transcript.add_pieces([AnswerPiece(ANSWER[start : start + 3])])
        if start == 60:  # mid-paragraph: rendered as far as it goes
            assert "Here is the function" in transcript.toPlainText() and "## " not in transcript.toPlainText()
        if start == 150:  # inside the open code block: shown as code already
            assert "def add" in transcript.toPlainText() and "```" not in transcript.toPlainText()
    assert transcript.waiting == ""
    streamed = transcript.toPlainText()
    assert streamed.split("Assistant", 1)[1].split() == expected.split("Assistant", 1)[1].split()[1:]
    assert transcript.code == expected_code


def test_nothing_in_an_answer_runs_or_is_fetched(window: MainWindow, qtbot, tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not a picture")
    hostile = (
        "<script>alert(1)</script> <img src='file://" + str(secret) + "'>\n\n"
        f"![tracker](https://example.com/pixel.png) ![local](file://{secret})\n\n"
        "[run](javascript:alert(1)) [file](file:///etc/passwd) [site](https://example.org/page)"
    )
    chat = _answer_in_chat(window, hostile)
    transcript = chat.transcript
    shown = transcript.toPlainText()
    assert "<script>alert(1)</script>" in shown  # raw HTML is text
    assert "[image: tracker]" in shown  # a picture on the web is a link to it, never loaded
    assert "<img" not in transcript.toHtml()
    assert _anchors(transcript) == {
        "copy:1",
        "edit:0",
        "copy:0",
        "https://example.com/pixel.png",
        "https://example.org/page",
    }
    assert not _pictures(transcript)  # nothing asks for an image to be loaded, local or remote

    opened: list[str] = []

    class Browser(QObject):
        @Slot(QUrl)
        def open(self, url: QUrl) -> None:
            opened.append(url.toString())

    browser = Browser()
    QDesktopServices.setUrlHandler("https", browser, "open")
    try:
        point = _find_anchor(transcript, "https://example.org/page")
        qtbot.mouseClick(transcript.viewport(), Qt.MouseButton.LeftButton, pos=point)
        qtbot.waitUntil(lambda: opened == ["https://example.org/page"], timeout=3000)
    finally:
        QDesktopServices.unsetUrlHandler("https")
    assert "Rename total" in transcript.toPlainText()  # the transcript did not navigate away


@pytest.mark.parametrize(
    ("text", "settled"),
    [
        ("One.\n\nTwo", "One.\n\n"),
        ("```py\nx = 1\n\ny = 2", ""),  # a blank line inside an open code block
        ("```py\nx = 1\n```\n\nAfter", "```py\nx = 1\n```\n\n"),
        ("1. item\n\n   more of it", ""),  # indented: may still belong to the item
        ("Last line being written\n\n", ""),  # what follows the blank line is not known yet
    ],
)
def test_the_settled_part_of_a_streamed_answer(text: str, settled: str) -> None:
    assert text[: rich_text.settled_end(text, 0)] == settled


def test_the_wait_for_a_long_prompt_says_how_far_it_is(window: MainWindow, qtbot, gemma_path: Path) -> None:
    """Before the first token, the transcript says the prompt is being read, and how much of it."""
    from localopen.core.store.library_db import import_file

    import_file(window.services.ctx.db, gemma_path)
    window.services.library_changed.emit()
    chat = window.goto("Chat")
    chat.new_chat(str(gemma_path))
    chat.conversation.settings["template"] = "gemma"  # the base model has none
    convs.update(window.services.ctx.db, chat.conversation.id, str(gemma_path), chat.conversation.settings)
    chat.max_tokens.setValue(2)
    seen: set[str] = set()
    chat.flush_timer.timeout.connect(lambda: seen.add(chat.transcript.waiting))
    chat.input.setPlainText(" ".join(f"word{i}" for i in range(900)))  # ~3,000 tokens: seconds here
    with qtbot.waitSignal(chat.answer_finished, timeout=120000):
        chat.send()
    assert "Reading the prompt…" in seen
    progress = [text for text in seen if text.startswith("Reading the prompt: ")]
    assert progress, seen
    assert any(" of " in text and "tokens" in text for text in progress)


def test_a_code_block_still_being_written_is_plain_until_it_closes() -> None:
    """Highlighting costs the block's whole length at every refresh: the open block is shown plain,
    highlighted once it is closed; its Copy link is there from the start."""
    open_block = "Here:\n\n```python\ndef f():\n    return 1\n"
    shown = rich_text.render(open_block, rich_text.LIGHT)
    assert rich_text.fence_open(open_block) and "font-weight: bold" not in shown.html
    assert shown.code == ["def f():\n    return 1"] and "copycode:0" in shown.html
    closed = rich_text.render(open_block + "```\n", rich_text.LIGHT)
    assert not rich_text.fence_open(open_block + "```\n") and "font-weight: bold" in closed.html
    # A closed block before an open one is highlighted already.
    both = rich_text.render(open_block + "```\n\n```sh\nls -l\n", rich_text.LIGHT)
    assert "font-weight: bold" in both.html and both.code[1] == "ls -l"


def test_words_before_and_after_a_tool_call_in_one_refresh_are_all_shown(window: MainWindow) -> None:
    from localopen.app.conversation.mcp_tools import ToolResult
    from localopen.app.conversation.tool_loop import ToolRun
    from localopen.core.records import ToolCall

    chat = window.goto("Chat")
    chat.new_chat()
    transcript = chat.transcript
    transcript.begin_answer()
    run = ToolRun(ToolCall("call_1", "get_time", '{"zone": "Asia/Tokyo"}'), ToolResult("17:05", False, 3.0))
    transcript.add_pieces([AnswerPiece("Let me **check**."), run, AnswerPiece("It is 17:05.")])
    shown = transcript.toPlainText()
    assert shown.index("Let me check.") < shown.index("Tool call: get_time") < shown.index("It is 17:05.")
