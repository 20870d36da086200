"""The Chat view says one true thing at a time: the status line after a switch of model, thinking
controls only for models that think, titles told apart, the advanced settings closed until opened
and the person's choices (Advanced, MCP tools) kept for the next launch."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from localopen.app.conversation import chat as chat_rules
from localopen.core.store.library_db import import_file
from localopen.ui.chat.view import ChatView
from localopen.ui.main_window import MainWindow

from tiny_gguf import write_tiny_llama

pytest.importorskip("llama_cpp")


def _with_models(window: MainWindow, *models: Path) -> ChatView:
    for model in models:
        import_file(window.services.ctx.db, model)
    window.services.library_changed.emit()
    return window.goto("Chat")


def test_the_status_line_follows_the_chosen_model(window: MainWindow, qtbot, tiny_gguf: Path, tmp_path: Path) -> None:
    other = write_tiny_llama(tmp_path / "other-tiny.gguf")
    chat = _with_models(window, tiny_gguf, other)
    chat.select_model(str(tiny_gguf))
    assert "loads when you send a message" in chat.status.text() and "tiny-llama" in chat.status.text()
    chat.n_ctx.setValue(512)
    with qtbot.waitSignal(chat.model_loaded, timeout=30000):
        chat.load_model()
    assert "loaded in" in chat.status.text()
    # Another model chosen: the line says that one loads on the first message, and which one is loaded now.
    chat.model_box.setCurrentIndex(chat.model_box.findData(str(other)))
    chat.model_bar.picked.emit()
    status = chat.status.text()
    assert "other-tiny" in status and "loads when you send" in status and "loaded now:" in status
    assert "loaded in" not in status
    # A passing word (a copy) gives way to the state again.
    chat.model_bar.say("Copied.")
    assert chat.status.text() == "Copied."
    qtbot.waitUntil(lambda: chat.status.text() == status, timeout=10000)
    # Back to the loaded one: its figures again.
    chat.select_model(str(tiny_gguf))
    assert "loaded in" in chat.status.text()


def test_a_model_without_a_thinking_switch_shows_no_thinking_control(window: MainWindow, qtbot, tiny_gguf) -> None:
    chat = _with_models(window, tiny_gguf)
    chat.select_model(str(tiny_gguf))
    chat.n_ctx.setValue(512)
    with qtbot.waitSignal(chat.model_loaded, timeout=30000):
        chat.load_model()
    assert not chat.thinking.isVisibleTo(chat)


def test_chats_are_titled_by_their_first_line_and_told_apart(window: MainWindow) -> None:
    ctx = window.services.ctx
    chat = window.goto("Chat")
    titles = []
    for _ in range(3):
        c = chat_rules.new_conversation(ctx, None, {})
        chat_rules.add_user_turn(ctx, c, "What is 2 + 2?\nShow your working.")
        titles.append(c.title)
    assert titles == ["What is 2 + 2?", "What is 2 + 2? (2)", "What is 2 + 2? (3)"]
    long = chat_rules.title_from("Explain how a transformer's attention works, step by step, with examples", set())
    assert long == "Explain how a transformer's attention works…"  # cut at a word, without its comma
    # New chat on an empty one does not pile up empty "New chat" entries.
    chat.new_chat()
    first = chat.conversation.id
    chat.new_chat()
    assert chat.conversation.id == first
    assert [c.title for c in chat_rules.conversations(ctx)].count(chat_rules.NEW_CHAT_TITLE) == 1


def test_advanced_settings_are_closed_until_opened_and_stay_as_left(window: MainWindow, qtbot) -> None:
    chat = window.goto("Chat")
    panel = chat.panel
    assert not chat.temperature.isVisibleTo(chat) and not chat.n_ctx.isVisibleTo(chat)
    assert chat.system.isVisibleTo(chat) and chat.tools.isVisibleTo(chat)
    qtbot.mouseClick(panel.advanced_button, Qt.MouseButton.LeftButton)
    assert chat.temperature.isVisibleTo(chat) and chat.draft_box.isVisibleTo(chat)
    again = ChatView(window.services)  # the next launch
    qtbot.addWidget(again)
    assert again.temperature.isVisibleTo(again)
    again.shutdown()


def test_the_mcp_tools_choice_is_kept_for_the_next_launch(window: MainWindow, qtbot) -> None:
    chat = window.goto("Chat")
    assert not chat.tools.enabled.isChecked()
    qtbot.mouseClick(chat.tools.enabled, Qt.MouseButton.LeftButton)
    assert chat.tools.enabled.isChecked()
    again = ChatView(window.services)  # the next launch: tools on again (their servers connect)
    qtbot.addWidget(again)
    assert again.tools.enabled.isChecked()
    # No servers configured: the switch turns itself off and says why, and the choice is kept.
    qtbot.waitUntil(lambda: not again.tools.enabled.isChecked(), timeout=10000)
    assert "No MCP servers" in again.tools.status.text()
    later = ChatView(window.services)
    qtbot.addWidget(later)
    assert later.tools.enabled.isChecked()
    for view in (again, later):
        view.shutdown()
