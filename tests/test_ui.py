"""The desktop app driven as real widgets (offscreen) with the real core, engine and a fake Hub."""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QComboBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QTextBrowser,
)

from localopen.core.chat import conversations as convs
from localopen.core.store.library_db import import_file, list_models
from localopen.ui.explore_view import DOWNLOAD_COLUMN, MEASURE_COLUMN, USABLE_COLUMN
from localopen.ui.main_window import SECTIONS, MainWindow
from localopen.ui.services import Services

from fake_hub import FakeHub, Repo

pytest.importorskip("llama_cpp")


def _explore(window: MainWindow, qtbot, key: str | None = None):  # type: ignore[no-untyped-def]
    """Explore with its rows (computed in the background) shown, and a model selected with its files."""
    ex = window.goto("Explore")
    qtbot.waitUntil(lambda: ex.settled and ex.proxy.rowCount() > 0, timeout=20000)
    if key is not None:
        assert ex.select(key)
        qtbot.waitUntil(lambda: ex.settled and ex.quants.rowCount() > 0, timeout=20000)
    return ex


def test_every_section_opens_offline_without_a_request(window: MainWindow, qtbot, monkeypatch) -> None:
    hub = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    try:
        for name in SECTIONS:
            assert window.goto(name).isVisible()
        explore = _explore(window, qtbot, "qwen3-0.6b")  # online this would fetch exact sizes; offline not
        explore.hub_query.setText("qwen")
        explore.search_hub()
        qtbot.waitUntil(lambda: "offline" in explore.hub_status.text().lower(), timeout=10000)
        assert hub.requests == []
        # The fixture waits for the profile; its signal reaches the window on a later event loop turn.
        qtbot.waitUntil(lambda: "This machine" in window.summary.text(), timeout=10000)
    finally:
        hub.stop()


def test_the_window_has_localopen_s_icon(window: MainWindow) -> None:
    icon = window.windowIcon()
    assert not icon.isNull() and not icon.pixmap(64, 64).isNull()  # the SVG renders


def test_every_control_has_an_accessible_name(window: MainWindow) -> None:
    for name in SECTIONS:
        window.goto(name)
    unnamed = []
    kinds = (QAbstractButton, QLineEdit, QComboBox, QAbstractSpinBox, QPlainTextEdit, QAbstractItemView)
    for widget in [w for kind in kinds for w in window.findChildren(kind)]:
        if type(widget).__name__ in ("QHeaderView", "QListView", "QTableCornerButton", "QCalendarWidget"):
            continue
        if widget.parent() and type(widget.parent()).__name__ in ("QComboBox", "QAbstractSpinBox"):
            continue
        label = widget.accessibleName() or (widget.text() if isinstance(widget, QAbstractButton) else "")
        if not label and widget.isVisibleTo(window):
            unnamed.append(f"{type(widget).__name__} in {type(widget.parent()).__name__}")
    assert unnamed == []


def test_explore_filters_sort_and_evidence(window: MainWindow, qtbot) -> None:
    ex = _explore(window, qtbot)
    total = ex.proxy.rowCount()
    assert total >= 30
    ex.grade_box.setCurrentIndex(ex.grade_box.findData("E"))
    assert 0 < ex.proxy.rowCount() < total
    assert all(ex.proxy.index(r, 1).data().startswith("E") for r in range(ex.proxy.rowCount()))
    ex.grade_box.setCurrentIndex(0)
    ex.search.setText("qwen2.5")
    assert all("qwen2.5" in ex.proxy.index(r, 0).data() for r in range(ex.proxy.rowCount()))
    ex.search.clear()
    ex.size_box.setValue(1.0)
    sizes = [ex.proxy.index(r, 0).data() for r in range(ex.proxy.rowCount())]
    assert "olmo-2-1124-13b-instruct" not in sizes and "smollm2-135m-instruct" in sizes
    ex.size_box.setValue(0)
    ex.min_size_box.setValue(8.0)
    big = {ex.proxy.index(r, 0).data() for r in range(ex.proxy.rowCount())}
    assert "olmo-2-1124-13b-instruct" in big and "smollm2-135m-instruct" not in big
    ex.min_size_box.setValue(0)
    from localopen.ui.explore_model import KEYS

    ex.table.sortByColumn(KEYS.index("params"), Qt.SortOrder.DescendingOrder)
    first = ex.proxy.index(0, 0).data()
    assert first == "gpt-oss-20b"
    assert ex.select("olmo-2-1124-7b-instruct")
    qtbot.waitUntil(lambda: ex.settled and ex.quants.rowCount() > 0, timeout=20000)
    html = ex.detail.toHtml()
    assert "Pre-training data" in html and "arxiv.org" in html and "Usable here" in html
    assert ex.quants.rowCount() >= 2 and ex.quants.cellWidget(0, DOWNLOAD_COLUMN).text() == "Download"


def test_explore_says_what_a_model_that_does_not_chat_is(window: MainWindow, qtbot) -> None:
    from localopen.ui.explore_model import KEYS

    ex = _explore(window, qtbot)
    can = {ex.proxy.index(r, 0).data(): ex.proxy.index(r, KEYS.index("can")).data() for r in range(ex.proxy.rowCount())}
    assert can["nomic-embed-text-v1.5"] == "embeddings" and can["pythia-1.4b-deduped"] == "completion only"
    assert ex.select("nomic-embed-text-v1.5")
    qtbot.waitUntil(lambda: ex.settled and ex.quants.rowCount() > 0, timeout=20000)
    text = ex.detail.toPlainText()
    assert "What it is: An embedding model, not a chat model" in text and "/v1/embeddings" in text


def test_download_with_pause_and_resume_in_the_ui(window: MainWindow, qtbot, monkeypatch, tiny_gguf: Path) -> None:
    repo = "HuggingFaceTB/SmolLM2-360M-Instruct-GGUF"
    data = tiny_gguf.read_bytes() * 8
    hub = FakeHub().start()
    hub.add(Repo(repo, files={"smollm2-360m-instruct-q8_0.gguf": data}))
    hub.bytes_per_second = 400 * 1024
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    try:
        ex = _explore(window, qtbot, "smollm2-360m-instruct")
        ex.quants.cellWidget(0, DOWNLOAD_COLUMN).click()  # Download Q8_0
        library = window.views["Library"]
        qtbot.waitUntil(lambda: len(library.downloads.rows) == 1, timeout=5000)
        row = next(iter(library.downloads.rows.values()))
        qtbot.waitUntil(lambda: row.job.done > 100_000, timeout=15000)
        row.pause.click()
        # The row shows what the queued job_changed signal tells it: wait for what the user sees.
        qtbot.waitUntil(lambda: row.pause.text() == "Resume", timeout=10000)
        assert row.job.state == "paused" and "paused" in row.status.text()
        hub.bytes_per_second = None
        row.pause.click()
        qtbot.waitUntil(lambda: row.status.text().startswith("Installed"), timeout=20000)  # verified, in place
        assert row.job.state == "done" and row.bar.value() == 1000
        installed = [m for m in list_models(window.services.ctx.db) if m.repo == repo]
        assert (
            installed and hashlib.sha256(installed[0].path.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
        )
        qtbot.waitUntil(lambda: library.table.rowCount() == 1, timeout=5000)
    finally:
        hub.stop()


def test_drop_a_gguf_imports_it(window: MainWindow, qtbot, tiny_gguf: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tiny_gguf))])
    event = QDropEvent(
        QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    window.dropEvent(event)
    library = window.views["Library"]
    qtbot.waitUntil(lambda: library.table.rowCount() == 1, timeout=10000)
    assert "tiny" in library.table.item(0, 0).text()


def _chat_with(window: MainWindow, model: Path):
    import_file(window.services.ctx.db, model)
    window.services.library_changed.emit()
    chat = window.goto("Chat")
    chat.new_chat(str(model))
    return chat


def _messages(window: MainWindow, chat) -> list[convs.Message]:
    return convs.messages(window.services.ctx.db, chat.conversation.id)


def test_streamed_chat_regenerate_and_edit(window: MainWindow, qtbot, tiny_gguf: Path) -> None:
    chat = _chat_with(window, tiny_gguf)
    chat.n_ctx.setValue(512)
    chat.max_tokens.setValue(40)
    chat.input.setPlainText("hello there")
    with qtbot.waitSignal(chat.answer_finished, timeout=30000) as answered:
        qtbot.keyClick(chat.input, Qt.Key.Key_Return)  # Enter sends
    assert answered.args[0].completion_tokens >= 1
    first = _messages(window, chat)
    assert [m.role for m in first] == ["user", "assistant"] and first[1].stats.completion_tokens >= 1
    assert "tokens" in chat.transcript.toPlainText()
    with qtbot.waitSignal(chat.answer_finished, timeout=30000):
        chat.regenerate()
    again = _messages(window, chat)
    assert len(again) == 2 and again[1].content != first[1].content  # a new answer replaced the old
    chat.edit_message(0)
    assert chat.input.toPlainText() == "hello there"
    chat.input.setPlainText("hello again")
    with qtbot.waitSignal(chat.answer_finished, timeout=30000):
        chat.send()
    assert [m.content for m in _messages(window, chat)][0] == "hello again"
    assert len(_messages(window, chat)) == 2


def test_sending_while_the_model_loads_loads_it_once(window: MainWindow, qtbot, tiny_gguf: Path) -> None:
    chat = _chat_with(window, tiny_gguf)
    chat.n_ctx.setValue(512)
    chat.max_tokens.setValue(4)
    loads: list[str] = []
    real_load = chat.session.load

    def counted(path, options):  # type: ignore[no-untyped-def]
        loads.append(str(path))
        return real_load(path, options)

    chat.session.load = counted  # the real load, counted
    chat.load_model()  # the engine process starts: the load takes a moment
    chat.input.setPlainText("hello while loading")
    with qtbot.waitSignal(chat.answer_finished, timeout=30000):
        chat.send()
    assert loads == [str(tiny_gguf)]
    assert [m.role for m in _messages(window, chat)] == ["user", "assistant"]


def test_a_reasoning_models_thinking_is_shown_apart_and_stored_apart(window: MainWindow, qtbot, tmp_path: Path) -> None:
    from tiny_gguf import REASONING_SCRIPT, REASONING_SPECIAL, write_scripted_llama

    model = write_scripted_llama(tmp_path / "thinker.gguf", REASONING_SCRIPT, REASONING_SPECIAL)
    chat = _chat_with(window, model)
    chat.n_ctx.setValue(512)
    assert not chat.thinking.isVisibleTo(chat)  # not before a model that can be told not to think loads
    chat.input.setPlainText("What is 2 + 2?")
    thinking: list[str] = []
    answers: list[str] = []
    chat.thinking_text.connect(thinking.append)
    chat.answer_text.connect(answers.append)
    with qtbot.waitSignal(chat.answer_finished, timeout=30000) as answered:
        chat.send()
    assert chat.thinking.isVisibleTo(chat)  # the template has a switch (enable_thinking)
    stats = answered.args[0]
    assert stats.reasoning_tokens == 3 and stats.answer_tokens == 3
    # Streamed apart: the Thinking section got the reasoning, the answer never saw it.
    assert thinking and thinking[-1] == "Adding two and two"
    assert answers[-1] == "The answer is four." and not any("Adding" in a for a in answers)
    stored = _messages(window, chat)[-1]
    assert (stored.reasoning, stored.content) == ("Adding two and two", "The answer is four.")
    # Collapsed once answered: one line with its figures; a click opens it.
    text = chat.transcript.toPlainText()
    assert "▸ Thinking (3 tokens" in text and "Adding two and two" not in text
    chat.toggle_thinking(stored.position)
    assert "▾ Thinking" in chat.transcript.toPlainText() and "Adding two and two" in chat.transcript.toPlainText()
    # The next turn: turning thinking off reaches the template (a longer prompt: an empty think block).
    chat.thinking.setChecked(False)
    chat.input.setPlainText("And 3 + 3?")
    with qtbot.waitSignal(chat.answer_finished, timeout=30000) as second:
        chat.send()
    assert convs.get(window.services.ctx.db, chat.conversation.id).settings["thinking"] is False
    assert second.args[0].prompt_tokens > stats.prompt_tokens


def test_the_local_server_switch_serves_the_library_and_logs_requests(
    window: MainWindow, qtbot, tiny_gguf: Path
) -> None:
    import socket

    import ollama
    import openai

    import_file(window.services.ctx.db, tiny_gguf)
    window.services.library_changed.emit()
    view = window.goto("Local server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    view.port.setValue(port)
    view.n_ctx.setValue(512)
    qtbot.mouseClick(view.toggle_button, Qt.MouseButton.LeftButton)
    assert view.running and f"127.0.0.1:{port}/v1" in view.status.text()
    assert not view.port.isEnabled()  # settings are fixed while it runs
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
    model = client.models.list().data[0].id
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert reply.usage.completion_tokens <= 4
    # The live log shows the request once it ends: model, status, tokens (no text).
    qtbot.waitUntil(lambda: view.log_table.rowCount() == 1 and view.log_table.item(0, 4).text() == "200 ok")
    assert view.log_table.item(0, 3).text() == model
    assert model in view.loaded_label.text()  # loaded on demand by that request
    assert view.log_table.item(0, 6).text() == str(reply.usage.completion_tokens)
    assert view.log_table.item(0, 1).text() == "OpenAI"  # which API the request came through
    ollama.Client(host=f"http://127.0.0.1:{port}").chat(model=model, messages=[{"role": "user", "content": "hi"}])
    qtbot.waitUntil(lambda: view.log_table.rowCount() == 2 and view.log_table.item(1, 4).text() == "200 ok")
    assert (view.log_table.item(1, 1).text(), view.log_table.item(1, 2).text()) == ("Ollama", "/api/chat")
    qtbot.mouseClick(view.toggle_button, Qt.MouseButton.LeftButton)
    assert not view.running and view.port.isEnabled()
    with pytest.raises(openai.APIConnectionError):
        client.models.list()


def test_the_local_server_refuses_an_open_address_without_a_key(window: MainWindow, qtbot) -> None:
    view = window.goto("Local server")
    view.host.setText("0.0.0.0")
    view.start()
    assert not view.running and "API key" in view.status.text()


def test_a_model_without_template_uses_the_one_the_user_picks(window: MainWindow, qtbot, tmp_path: Path) -> None:
    from tiny_gguf import write_tiny_llama

    plain = write_tiny_llama(tmp_path / "plain.gguf", chat_template=None)
    chat = _chat_with(window, plain)
    chat.n_ctx.setValue(512)
    chat.max_tokens.setValue(4)
    chat.input.setPlainText("hello")
    with qtbot.waitSignal(chat.template_needed, timeout=30000):
        chat.send()
    chat.template_box.setCurrentIndex(chat.template_box.findData("chatml"))  # not the suggestion
    assert chat.template_box.currentData() == "chatml"
    with qtbot.waitSignal(chat.answer_finished, timeout=30000) as answered:
        qtbot.mouseClick(chat.use_template_button, Qt.MouseButton.LeftButton)
    assert chat.conversation.settings["template"] == "chatml"
    assert answered.args[0].template == "chatml"


def test_a_benchmark_never_touches_the_chats_engine(window: MainWindow, qtbot, tiny_gguf: Path, tmp_path: Path) -> None:
    """Benchmark the model a chat has loaded, and a model that cannot load: the chat keeps its
    model, sees none of Compare's failures, and the next message is answered."""
    from tiny_gguf import write_tiny_llama

    chat = _chat_with(window, tiny_gguf)
    chat.n_ctx.setValue(512)
    chat.max_tokens.setValue(8)
    chat.input.setPlainText("first")
    with qtbot.waitSignal(chat.answer_finished, timeout=30000):
        chat.send()
    chat_engine = chat.session.engine_pid
    chat_failures: list[str] = []
    chat.failed.connect(chat_failures.append)

    alien = write_tiny_llama(tmp_path / "alien.gguf", architecture="alienformer")
    import_file(window.services.ctx.db, alien)
    window.services.library_changed.emit()
    compare = window.goto("Compare")
    compare.check(str(tiny_gguf.resolve()))
    compare.check(str(alien.resolve()))
    compare.n_prompt.setValue(16)
    compare.n_gen.setValue(4)
    compare.reps.setValue(1)
    with qtbot.waitSignal(compare.run_finished, timeout=60000):
        compare.run()
    assert compare.table.rowCount() == 1  # the tiny model; the alien one could not load
    from localopen.core.store.measurements import load_failure

    assert "alienformer" in load_failure(window.services.ctx.db, str(alien.resolve()), window.services.ctx.machine_id())

    window.goto("Chat")
    assert chat.session.engine_pid == chat_engine  # the same engine process, still loaded
    chat.input.setPlainText("second")
    with qtbot.waitSignal(chat.answer_finished, timeout=30000) as answered:
        chat.send()
    assert answered.args[0] is not None and answered.args[0].completion_tokens >= 1
    assert chat_failures == []  # Compare's failed load never reached the chat
    assert [m.role for m in _messages(window, chat)] == ["user", "assistant", "user", "assistant"]


@pytest.mark.slow
def test_escape_stops_the_answer_and_keeps_it(window: MainWindow, qtbot, gemma_path: Path) -> None:
    chat = _chat_with(window, gemma_path)
    chat.max_tokens.setValue(3000)
    chat.input.setPlainText("Tell me a long story.")
    with qtbot.waitSignal(chat.template_needed, timeout=30000):  # no template in this model: choose one
        chat.send()
    assert chat.notice.isVisible()
    with qtbot.waitSignal(chat.answer_text, timeout=30000, check_params_cb=lambda text: len(text) > 20):
        chat.use_template("gemma")
    with qtbot.waitSignal(chat.answer_finished, timeout=10000):
        qtbot.keyClick(chat.input, Qt.Key.Key_Escape)
    msgs = _messages(window, chat)
    assert msgs[-1].role == "assistant" and msgs[-1].stats.finish_reason == "cancelled"
    assert msgs[-1].stats.completion_tokens < 3000


@pytest.mark.slow
def test_engine_killed_mid_answer_keeps_partial_and_offers_reload(window: MainWindow, qtbot, gemma_path: Path) -> None:
    chat = _chat_with(window, gemma_path)
    chat.conversation.settings["template"] = "gemma"
    chat.max_tokens.setValue(3000)
    chat.input.setPlainText("Tell me a long story.")
    with qtbot.waitSignal(chat.answer_text, timeout=30000, check_params_cb=lambda text: len(text) > 20):
        chat.send()
    with qtbot.waitSignal(chat.failed, timeout=10000):
        os.kill(chat.session.engine_pid, signal.SIGKILL)
    msgs = _messages(window, chat)
    assert msgs[-1].role == "assistant" and "Interrupted" in msgs[-1].content and len(msgs[-1].content) > 20
    assert chat.notice.isVisible() and chat.reload_button.isVisible()
    assert not chat.use_template_button.isVisible() and not chat.template_box.isVisible()
    # Said once, in words, without file paths: what happened, that the conversation is kept, what Reload does.
    said = chat.notice_text.text()
    assert "gemma-3-270m-q4_k_m.gguf was killed" in said and "conversation is kept" in said and "Reload" in said
    assert str(gemma_path.parent) not in said and "was killed" not in chat.status.text()
    assert "loads when you send" in chat.status.text()
    with qtbot.waitSignal(chat.model_loaded, timeout=30000):
        chat.reload_button.click()
    assert "loaded in" in chat.status.text()


def test_benchmark_fills_table_and_chart(window: MainWindow, qtbot, tiny_gguf: Path) -> None:
    import_file(window.services.ctx.db, tiny_gguf)
    window.services.library_changed.emit()
    compare = window.goto("Compare")
    compare.check(str(tiny_gguf.resolve()))
    compare.n_prompt.setValue(32)
    compare.n_gen.setValue(8)
    compare.reps.setValue(2)
    with qtbot.waitSignal(compare.run_finished, timeout=60000):
        compare.run()
    assert compare.table.rowCount() == 1
    assert "±" in compare.table.item(0, 3).text() and "±" in compare.table.item(0, 4).text()
    series = compare.chart_view.chart().series()
    assert len(series) == 1 and series[0].count() == 2
    from localopen.app.measure.benchmark import history

    saved = history(window.services.ctx)
    assert [r.test for r in saved] == ["pp32", "tg8"] and all(r.sha256 and r.decode_bound_tps for r in saved)
    from localopen.ui.compare_view import COLUMNS

    efficiency = compare.table.item(0, COLUMNS.index("Efficiency")).text()
    assert "% of" in efficiency  # efficiency against the bandwidth bound


def test_the_apps_summary_is_the_page_the_cli_prints(window: MainWindow, qtbot) -> None:
    from cli_helpers import run

    qtbot.waitUntil(lambda: "This machine" in window.summary.text(), timeout=10000)
    with qtbot.waitSignal(window.summary_shown, timeout=30000) as shown:
        window.show_summary()
    dialog = shown.args[0]
    out = run("summary")
    assert out.returncode == 0, out.stderr
    assert dialog.markdown_text.strip() == out.stdout.strip()
    assert "Open models on this machine" in dialog.findChild(QTextBrowser).toPlainText()
    dialog.reject()


def test_about_shows_the_log_and_copies_diagnostics(window: MainWindow, qtbot) -> None:
    from PySide6.QtGui import QGuiApplication

    from localopen.ui.about_dialog import AboutDialog

    dialog = AboutDialog(window.services, window)
    assert str(window.services.ctx.paths.logs / "localopen.log") in dialog.findChild(QTextBrowser).toPlainText()
    report = dialog.copy_diagnostics()
    assert QGuiApplication.clipboard().text() == report
    assert report.startswith("localopen ") and "Qt 6." in report and "Last 40 lines of the log" in report
    assert dialog.copied.text() == "Diagnostics copied to the clipboard."


def test_settings_are_saved(window: MainWindow, qtbot) -> None:
    from localopen.core.paths import load_settings
    from localopen.ui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(window.services, window)
    dialog.ctx.setValue(8192)
    dialog.offline.setChecked(True)
    dialog.thresholds["fluent_tps"][1].setValue(25)
    dialog.index_repo.setText("not a dataset id")
    dialog.accept()  # refused in words, nothing saved
    assert "owner/name" in dialog.note.text() and load_settings(window.services.ctx.paths)["n_ctx"] != 8192
    dialog.index_repo.setText("someone/their-index")
    dialog.accept()
    saved = load_settings(window.services.ctx.paths)
    assert saved["n_ctx"] == 8192 and saved["offline"] is True and saved["index_repo"] == "someone/their-index"
    assert saved["verdict_thresholds"]["fluent_tps"] == 25
    assert window.services.ctx.thresholds.fluent_tps == 25


def test_a_model_that_fails_to_load_is_marked_does_not_fit(window: MainWindow, qtbot, tmp_path: Path) -> None:
    from tiny_gguf import write_tiny_llama

    alien = write_tiny_llama(tmp_path / "alien.gguf", architecture="alienformer")
    chat = _chat_with(window, alien)
    with qtbot.waitSignal(chat.failed, timeout=30000):
        chat.load_model()
    assert "alienformer" in chat.notice_text.text() and "did not load" in chat.status.text()
    library = window.goto("Library")
    qtbot.waitUntil(
        lambda: library.table.rowCount() == 1 and library.table.item(0, 4).text() == "does not fit (measured)",
        timeout=5000,
    )


def test_selecting_a_model_online_replaces_the_catalogs_sizes_with_the_hubs(
    window: MainWindow, qtbot, monkeypatch
) -> None:
    """Qwen3 0.6B's Q8_0 size is recorded in the catalog (639.4 MB, read from its repository); the
    Hub's own figure, when the Hub answers, takes its place."""
    repo = "Qwen/Qwen3-0.6B-GGUF"
    hub = FakeHub().start()
    hub.add(Repo(repo, files={"Qwen3-0.6B-Q8_0.gguf": b"q" * 156_112}))
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    try:
        ex = _explore(window, qtbot, "qwen3-0.6b")
        qtbot.waitUntil(lambda: ex.settled and ex.quants.item(0, 1).text() == "156.1 KB", timeout=10000)
        assert hub.count(f"/api/models/{repo}") == 1
    finally:
        hub.stop()


def test_the_library_shows_a_truncated_file_as_damaged(
    window: MainWindow, qtbot, tmp_path: Path, tiny_gguf: Path
) -> None:
    copy = tmp_path / "cut-later.gguf"
    copy.write_bytes(tiny_gguf.read_bytes())
    import_file(window.services.ctx.db, copy)
    copy.write_bytes(tiny_gguf.read_bytes()[:100_000])  # an interrupted copy over the imported file
    library = window.goto("Library")
    with qtbot.waitSignal(library.reloaded, timeout=10000):
        window.services.library_changed.emit()
    assert library.table.item(0, 3).text() == "damaged"
    usable = library.table.item(0, 4)
    assert usable.text() == "cannot be used: damaged" and "truncated" in usable.toolTip()


def test_quitting_leaves_no_engine_process(qtbot, tmp_path: Path, tiny_gguf: Path) -> None:
    import psutil

    def engines() -> list[psutil.Process]:
        return [p for p in psutil.Process().children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    window = MainWindow(Services())
    qtbot.addWidget(window)
    window.show()
    chat = _chat_with(window, tiny_gguf)
    chat.max_tokens.setValue(4)
    chat.input.setPlainText("hi")
    with qtbot.waitSignal(chat.answer_finished, timeout=30000):
        chat.send()
    assert engines()  # the chat's engine runs
    window.close()
    qtbot.waitUntil(lambda: not engines(), timeout=10000)


def test_measure_here_probes_a_hub_file_before_download(
    window: MainWindow, qtbot, monkeypatch, tiny_gguf: Path
) -> None:
    """Explore's per-file action: the header is read from the Hub, a replica benchmarked, and the
    file's verdict becomes probed, in the file table and in the catalog table."""
    repo = "bartowski/SmolLM2-135M-Instruct-GGUF"
    hub = FakeHub().start()
    hub.use_cdn()
    hub.add(Repo(repo, files={"SmolLM2-135M-Instruct-Q4_K_M.gguf": tiny_gguf.read_bytes()}))
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    try:
        ex = _explore(window, qtbot, "smollm2-135m-instruct")
        assert "(predicted)" in ex.quants.item(0, USABLE_COLUMN).text()
        button = ex.quants.cellWidget(0, MEASURE_COLUMN)
        assert button.text() == "Measure here"
        with qtbot.waitSignal(ex.probe_finished, timeout=120000) as probe:
            button.click()
        report = probe.args[0]
        assert report.verdict.basis == "probed" and report.bytes_fetched > 0
        qtbot.waitUntil(lambda: ex.settled and "(probed)" in ex.quants.item(0, USABLE_COLUMN).text(), timeout=10000)
        assert "tokens/s" in ex.probe_status.text() and "from the Hub" in ex.probe_status.text()
        row = ex.selected_row()
        assert row is not None and row.verdict is not None and row.verdict.basis == "probed"
        assert "(predicted)" in ex.quants.item(1, USABLE_COLUMN).text()  # the other files are not probed
    finally:
        hub.stop()


def test_first_launch_calibrates_this_machine_in_the_background(window: MainWindow, qtbot, monkeypatch) -> None:
    import dataclasses

    from localopen.app.measure import calibration as calibrations

    from calibration_shapes import TINY_PARAMS, TINY_SHAPES

    monkeypatch.setattr(calibrations, "SHAPES", TINY_SHAPES)
    monkeypatch.setattr(calibrations, "PARAMS", TINY_PARAMS)
    ctx = window.services.ctx
    ctx.save_settings(dataclasses.replace(ctx.settings, calibrate_automatically=True))
    ex = _explore(window, qtbot, "smollm2-135m-instruct")
    assert "calibration" not in ex.selected_row().verdict.reason
    with qtbot.waitSignal(ex.calibrated, timeout=120000):
        ex.calibrate_if_needed()
    assert calibrations.current(ctx) is not None
    qtbot.waitUntil(lambda: ex.settled and "calibration" in ex.selected_row().verdict.reason, timeout=10000)
    assert "calibrated" in ex.probe_status.text()


def test_background_work_that_outlives_the_app_ends_without_a_traceback(qtbot) -> None:
    """Quitting while a worker still runs (the self-test closes its window while the bandwidth is
    measured): its late result is dropped with a log line, never a traceback on the terminal."""
    import threading

    import shiboken6

    from localopen.ui import background

    gate, errors = threading.Event(), []
    before = set(background._pending)
    hook = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)
    try:
        background.run_in_background(lambda: gate.wait(10), lambda _value: None, name="outlives-the-app")
        (relay,) = set(background._pending) - before
        shiboken6.delete(relay)  # what the end of the application does to it
        gate.set()
        worker = next(t for t in threading.enumerate() if t.name == "outlives-the-app")
        worker.join(10)
    finally:
        threading.excepthook = hook
    assert not worker.is_alive() and errors == []
    assert relay not in background._pending


def test_mcp_tools_in_the_chat_ask_before_each_call_and_survive_a_restart(
    window: MainWindow, qtbot, tmp_path: Path
) -> None:
    import json
    import sys

    from localopen.app.conversation import chat as chat_rules
    from localopen.ui.chat_tools import McpDialog
    from test_tool_use import CALL_SCRIPT, QWEN, SPECIAL

    from tiny_gguf import write_scripted_llama

    caller = write_scripted_llama(
        tmp_path / "caller.gguf", CALL_SCRIPT, SPECIAL, chat_template=QWEN, context_length=4096
    )
    chat = _chat_with(window, caller)
    chat.n_ctx.setValue(2048)
    chat.max_tokens.setValue(60)
    dialog = McpDialog(window.services, chat)
    dialog.editor.setPlainText("{not json")
    dialog.save()
    assert "not valid JSON" in dialog.problem.text() and dialog.result() == 0
    server = {"command": sys.executable, "args": [str(Path(__file__).parent / "mcp_servers.py"), "ok"]}
    dialog.editor.setPlainText(json.dumps({"mcpServers": {"weather": server}}))
    dialog.save()
    chat.tools.enabled.setChecked(True)
    qtbot.waitUntil(lambda: "Tools: get_weather" in chat.tools.status.text(), timeout=30000)

    chat.input.setPlainText("Weather in Paris?")
    with qtbot.waitSignal(chat.answer_finished, timeout=120000):
        chat.send()
        qtbot.waitUntil(lambda: chat.tools.approval.isVisible(), timeout=30000)
        assert "get_weather" in chat.tools.question_text.text() and "Paris" in chat.tools.question_text.text()
        chat.tools.deny.click()  # the first call is refused: the model is told so
        qtbot.waitUntil(lambda: chat.tools.approval.isVisible(), timeout=30000)
        chat.tools.allow_always.click()  # then allowed, for the rest of the turn without asking
    stored = _messages(window, chat)
    results = [m.content for m in stored if m.role == "tool"]
    assert results[0] == "The user did not allow this call." and "22 °C and sunny in Paris" in results[1:]
    assert stored[1].role == "assistant" and stored[1].tool_calls[0]["function"]["name"] == "get_weather"
    assert "22 °C and sunny in Paris" in chat.transcript.toPlainText()
    # Kept in the conversation: after a restart the transcript shows them, and the model reads them.
    conversation = chat.conversation
    chat.new_chat()
    chat.conversation = conversation
    chat.render_conversation()
    assert "Tool call: get_weather" in chat.transcript.toPlainText()
    history = chat_rules.conversation_messages(window.services.ctx, conversation.id, "")
    tool_results = [m for m in history if m["role"] == "tool"]
    assert tool_results and all(m["tool_call_id"] and m["name"] == "get_weather" for m in tool_results)
    chat.tools.enabled.setChecked(False)


def test_the_transcript_keeps_the_answers_line_breaks(window: MainWindow, tmp_path: Path) -> None:
    """A four-line poem stays four lines once the answer is rendered as Markdown; code stays exact."""
    from localopen.core.chat import conversations as conversations_db

    poem = "Roses are red,\nViolets are blue,\nWeights can be open,\nAnd so can you."
    code = "```python\nx = 1\ny = 2\n```"
    chat = window.goto("Chat")
    chat.new_chat()
    conversations_db.add_message(window.services.ctx.db, chat.conversation.id, "assistant", poem + "\n\n" + code)
    chat.render_conversation()
    shown = chat.transcript.toPlainText()
    assert poem in shown.replace("\u2028", "\n")  # Qt writes a hard break as a line separator
    assert "x = 1\ny = 2" in shown


def test_the_chat_and_the_local_server_share_one_loaded_model(window: MainWindow, qtbot, tiny_gguf: Path) -> None:
    """The model the Chat view has loaded answers the server's requests too: one engine process,
    not a second copy, and the Local server view says who holds it."""
    import socket

    import openai

    chat = _chat_with(window, tiny_gguf)
    chat.n_ctx.setValue(512)
    chat.max_tokens.setValue(4)
    chat.input.setPlainText("hello")
    with qtbot.waitSignal(chat.answer_finished, timeout=30000):
        chat.send()
    chat_engine = chat.session.engine_pid
    view = window.goto("Local server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    view.port.setValue(port)
    view.n_ctx.setValue(512)
    qtbot.mouseClick(view.toggle_button, Qt.MouseButton.LeftButton)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
        model = client.models.list().data[0]
        assert model.model_extra["loaded"] is True  # loaded already: by the chat
        reply = client.chat.completions.create(
            model=model.id, messages=[{"role": "user", "content": "hi"}], max_tokens=3
        )
        assert reply.usage.completion_tokens <= 3
        resident = [v for v in window.services.ctx.models.residents() if v.path == str(tiny_gguf.resolve())]
        assert len(resident) == 1 and resident[0].pid == chat_engine  # one engine for both faces
        qtbot.waitUntil(lambda: "held by chat" in view.loaded_label.text(), timeout=5000)
    finally:
        qtbot.mouseClick(view.toggle_button, Qt.MouseButton.LeftButton)


def test_the_first_screen_recommends_and_one_click_downloads_then_opens_a_chat(
    window: MainWindow, qtbot, monkeypatch, tiny_gguf: Path
) -> None:
    """A new user's first window: the application layer's recommendations (the most open first),
    and one click that downloads the file and opens a chat with it when done."""
    from localopen.app.usable.recommend import recommend
    from localopen.app.usable.usable_here import MachineSnapshot

    assert window.stack.currentIndex() == SECTIONS.index("Start")  # what a first launch opens on
    start = window.views["Start"]
    qtbot.waitUntil(lambda: bool(start.recommendations), timeout=20000)
    ctx = window.services.ctx
    expected = recommend(ctx, MachineSnapshot.read(ctx, window.services.profile))
    assert [r.id for r in start.recommendations] == [r.id for r in expected]
    first = start.recommendations[0]
    # The list is shown again as facts arrive (the profile, the library): take the row's button as shown.
    qtbot.waitUntil(lambda: first.id in start.buttons and start.buttons[first.id].isVisible(), timeout=10000)
    button = start.buttons[first.id]
    assert button.text() == "Download and chat"
    hub = FakeHub().start()
    filename = first.pattern.replace("*", "model-", 1).replace("*", "")
    hub.add(Repo(first.repo, files={filename: tiny_gguf.read_bytes()}))
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    window.services.downloads.hub = ctx.hub()
    try:
        start.buttons[first.id].click()
        qtbot.waitUntil(lambda: window.stack.currentIndex() == SECTIONS.index("Chat"), timeout=30000)
        chat = window.views["Chat"]
        assert Path(chat.model_box.currentData()).name == filename
        qtbot.waitUntil(lambda: start.buttons.get(first.id) is not None and start.buttons[first.id].text() == "Chat")
    finally:
        hub.stop()


def test_primary_actions_are_visible_at_a_laptops_1280x800(window: MainWindow, qtbot) -> None:
    """Nothing important behind a scroll bar or off the edge at laptop size."""
    window.resize(1280, 800)
    ex = _explore(window, qtbot, "olmo-2-1124-7b-instruct")
    qtbot.wait(100)
    actions = {
        "Download": ex.quants.cellWidget(0, DOWNLOAD_COLUMN),
        "Measure here": ex.quants.cellWidget(0, MEASURE_COLUMN),
        "Filter": ex.search,
    }
    chat = window.goto("Chat")
    actions |= {"Load": chat.load_button, "Send": chat.send_button}
    actions["Run benchmark"] = window.goto("Compare").run_button
    actions["Start server"] = window.goto("Local server").toggle_button
    start = window.goto("Start")
    qtbot.waitUntil(lambda: bool(start.buttons), timeout=20000)
    actions["Download and chat"] = next(iter(start.buttons.values()))
    for name, widget in actions.items():
        section = next(i for i in range(window.stack.count()) if window.stack.widget(i).isAncestorOf(widget))
        window.show_section(section)
        qtbot.wait(50)
        assert widget.isVisible(), name
        assert widget.visibleRegion().boundingRect() == widget.rect(), f"{name} is clipped"
        corner = widget.mapTo(window, widget.rect().bottomRight())
        assert window.rect().contains(corner), f"{name} is outside the window"
    assert ex.search.width() >= 200  # room to type a filter


def test_dark_and_light_schemes_keep_the_grades_readable(window: MainWindow, qtbot) -> None:
    """The app follows a dark scheme (a dark palette where the style has none) and its grade and
    verdict colours keep WCAG AA contrast on the list's background in both schemes."""
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    from localopen.ui import theme

    app = QApplication.instance()
    try:
        for scheme in (Qt.ColorScheme.Dark, Qt.ColorScheme.Light):
            theme.apply_scheme(app, scheme)
            base = app.palette().color(QPalette.ColorRole.Base)
            assert (base.lightness() < 128) == (scheme == Qt.ColorScheme.Dark)
            text = app.palette().color(QPalette.ColorRole.Text)
            assert theme.contrast(text, base) >= 7
            for letter in "ABCDE?":
                assert theme.contrast(theme.grade_colour(letter), base) >= 4.5, (scheme, letter)
            for band in ("fluent", "comfortable", "readable", "too slow"):
                assert theme.contrast(theme.band_colour(band), base) >= 4.5, (scheme, band)
            ex = _explore(window, qtbot)
            window.grab()  # renders in this scheme without error
            assert ex.proxy.rowCount() > 0
    finally:
        theme.apply_scheme(app, Qt.ColorScheme.Unknown)


def test_the_first_screen_offers_the_models_of_other_apps(qtbot, tmp_path: Path, monkeypatch, tiny_gguf) -> None:
    """Someone arriving from LM Studio: the first screen says what it found and adds it in one click."""
    home = tmp_path / "home"
    folder = home / ".lmstudio" / "models" / "someone" / "Some-GGUF"
    folder.mkdir(parents=True)
    (folder / "some-model-Q4_K_M.gguf").write_bytes(tiny_gguf.read_bytes())
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.delenv("OLLAMA_MODELS", raising=False)
    monkeypatch.delenv("LLAMA_CACHE", raising=False)
    from conftest import open_window

    window = open_window(qtbot, tmp_path)
    services = window.services
    start = window.views["Start"]
    qtbot.waitUntil(lambda: start.offer.isVisible(), timeout=20000)
    assert "1 model(s) from LM Studio" in start.other_apps.text()
    start.add_other_apps.click()
    qtbot.waitUntil(lambda: "Added 1 model" in start.other_apps.text(), timeout=20000)
    from localopen.core.store.library_db import list_models

    assert [m.filename for m in list_models(services.ctx.db)] == ["some-model-Q4_K_M.gguf"]
    window.close()


def test_a_models_preset_is_saved_and_shown_where_it_is_loaded(window: MainWindow, qtbot, tiny_gguf: Path) -> None:
    from localopen.app import presets
    from localopen.core.store.library_db import import_file

    ctx = window.services.ctx
    import_file(ctx.db, tiny_gguf)
    window.services.library_changed.emit()
    chat = window.goto("Chat")
    chat.new_chat(str(tiny_gguf.resolve()))
    chat.n_ctx.setValue(1024)
    chat.kv_type.setCurrentIndex(chat.kv_type.findData("q8_0"))
    chat.flash_attn.setChecked(True)
    chat.preset_button.click()
    assert presets.preset_for(ctx, tiny_gguf)["kv_cache_type"] == "q8_0"
    assert "preset" in chat.status.text()
    chat.n_ctx.setValue(4096)
    chat.kv_type.setCurrentIndex(chat.kv_type.findData("f16"))
    chat.new_chat(str(tiny_gguf.resolve()))  # choosing the model again shows its preset
    assert (chat.n_ctx.value(), chat.kv_type.currentData(), chat.flash_attn.isChecked()) == (1024, "q8_0", True)
    options = chat.load_options()
    assert (options.n_ctx, options.type_v, options.flash_attn) == (1024, "q8_0", True)


def test_tune_for_this_machine_from_compare(window: MainWindow, qtbot, tiny_gguf: Path) -> None:
    from localopen.core.store.library_db import import_file

    import_file(window.services.ctx.db, tiny_gguf)
    window.services.library_changed.emit()
    compare = window.goto("Compare")
    compare.check(str(tiny_gguf.resolve()))
    with qtbot.waitSignal(compare.tuned, timeout=180000) as tuned:
        compare.tune_button.click()
    choice = tuned.args[0]
    assert choice.baseline.tg_ts > 0
    text = compare.progress_text.text()
    assert ("Saved as the model's preset" in text) == choice.changed and ("No gain here" in text) != choice.changed
    assert compare.tune_button.isEnabled() and compare.run_button.isEnabled()


def test_compare_shows_what_a_new_llama_cpp_build_changed(window: MainWindow, qtbot, tiny_gguf: Path) -> None:
    """Results of two earlier builds: the slower one is said with the way back, and the models
    only an earlier build measured are offered a short run with this one."""
    from localopen.core.store import results as results_db
    from test_builds import _result

    ctx = window.services.ctx
    model = import_file(ctx.db, tiny_gguf)
    for build, speeds in (("0.3.30", [40.0, 40.5, 39.8]), ("0.3.31", [30.0, 30.2, 29.9])):
        results_db.save(ctx.db, _result(build, "tg128", speeds, model=str(model.path), machine=ctx.machine_id()))
    window.services.library_changed.emit()
    compare = window.goto("Compare")
    compare.builds_button.click()
    dialog = compare.builds_dialog
    text = dialog.findChild(QTextBrowser).toPlainText()
    assert "slower" in text and "llama-cpp-python==0.3.30" in text
    again = next(b for b in dialog.findChildren(QAbstractButton) if b.text() == "Measure them with this build")
    with qtbot.waitSignal(compare.run_finished, timeout=120000):
        again.click()
    assert (compare.n_prompt.value(), compare.n_gen.value(), compare.reps.value()) == (128, 32, 3)
    assert any(r.llama_cpp_version not in ("0.3.30", "0.3.31") for r in results_db.query(ctx.db))


def test_empty_chat_and_compare_say_what_to_do_next(window: MainWindow, qtbot, tiny_gguf: Path) -> None:
    chat = window.goto("Chat")
    if chat.model_box.count() == 0:  # a fresh machine: no model installed
        chat.render_conversation()
        assert "Start" in chat.transcript.toPlainText() and "recommends" in chat.transcript.toPlainText()
    compare = window.goto("Compare")
    assert compare.empty_hint.isVisible() and "Run benchmark" in compare.empty_hint.text()
    import_file(window.services.ctx.db, tiny_gguf)
    window.services.library_changed.emit()
    compare.check(str(tiny_gguf.resolve()))
    compare.n_prompt.setValue(16)
    compare.n_gen.setValue(4)
    compare.reps.setValue(1)
    with qtbot.waitSignal(compare.run_finished, timeout=120000):
        compare.run()
    assert not compare.empty_hint.isVisible() and compare.table.rowCount() == 1
    chat.new_chat(str(tiny_gguf.resolve()))
    assert "write a message" in chat.transcript.toPlainText()


def test_drafting_in_chat_and_compare(window: MainWindow, qtbot, tmp_path: Path) -> None:
    """The Chat view offers the installed models that could draft for the chosen one; Compare
    measures drafting task by task and shows the speed-up."""
    from tiny_gguf import write_scripted_llama, write_tiny_llama

    ctx = window.services.ctx
    big = write_tiny_llama(tmp_path / "big.gguf", n_embd=256, n_ff=512, n_layer=4)
    small = write_tiny_llama(tmp_path / "small.gguf")
    for path in (big, small):
        import_file(ctx.db, path)
    window.services.library_changed.emit()
    chat = window.goto("Chat")
    chat.new_chat(str(big.resolve()))
    qtbot.waitUntil(lambda: chat.draft_box.count() == 3, timeout=10000)  # read off the UI thread
    drafts = [chat.draft_box.itemData(i) for i in range(chat.draft_box.count())]
    assert drafts == ["off", "lookup", str(small.resolve())]
    chat.draft_box.setCurrentIndex(2)
    assert chat.load_options().draft == str(small.resolve())

    # A model that repeats its script forever: prompt lookup finds its drafts in what it said.
    script, ends = ["One", " two", " three."], {"<|im_end|>": 3}
    looping = write_scripted_llama(tmp_path / "looping.gguf", script, ends, loop=True, context_length=4096)
    import_file(ctx.db, looping)
    window.services.library_changed.emit()
    compare = window.goto("Compare")
    compare.check(str(looping.resolve()))
    compare.drafting.setCurrentIndex(compare.drafting.findData("lookup"))
    compare.n_gen.setValue(24)
    compare.reps.setValue(1)
    with qtbot.waitSignal(compare.run_finished, timeout=120000):
        compare.run_button.click()
    from localopen.ui.compare_view import COLUMNS

    column = COLUMNS.index("Drafting")
    assert not compare.table.isColumnHidden(column)
    assert compare.table.isColumnHidden(COLUMNS.index("Image"))  # no vision model measured
    assert compare.table.rowCount() == 1, compare.progress_text.text()
    said = compare.table.item(0, column).text()
    assert said.startswith("lookup: quote ") and "code" in said and "chat" in said
    assert {(r.task, r.draft) for r in compare.shown} == {
        (t, d) for t in ("quote", "code", "chat") for d in ("", "lookup")
    }
    assert all(r.same_text is True for r in compare.shown if r.draft)
    assert next(r for r in compare.shown if r.task == "quote" and r.draft).draft_kept == 1.0  # it loops: all kept


def test_after_a_llama_cpp_update_the_app_offers_to_measure_again(qtbot, tmp_path: Path, tiny_gguf: Path) -> None:
    from localopen.app.measure.calibration import llama_cpp_version
    from localopen.core.store import results as results_db
    from test_builds import _result

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    services = Services()
    ctx = services.ctx
    model = import_file(ctx.db, tiny_gguf)
    results_db.save(ctx.db, _result("0.3.30", "tg128", [40.0] * 3, model=str(model.path), machine=ctx.machine_id()))

    def start() -> MainWindow:
        w = MainWindow(Services())  # a new start of the app
        qtbot.addWidget(w)
        w.show()
        return w

    def offer(w: MainWindow, action: str) -> None:
        qtbot.waitUntil(lambda: "rerun" in w.offer_rows, timeout=20000)
        row = w.offer_rows["rerun"]
        assert "benchmarked only with an earlier build" in row.findChild(QLabel).text()
        next(b for b in row.findChildren(QAbstractButton) if b.text() == action).click()
        assert "rerun" not in w.offer_rows

    first = start()
    offer(first, "Not now")  # declined for this build: not offered at the next start
    assert QSettings().value("offers/rerun-declined") == llama_cpp_version()
    first.close()
    again = start()
    qtbot.wait(300)
    assert "rerun" not in again.offer_rows
    again.close()
    QSettings().remove("offers/rerun-declined")
    third = start()
    offer(third, "Measure again")
    compare = third.goto("Compare")
    qtbot.waitUntil(lambda: not compare.running, timeout=120000)
    assert (compare.n_prompt.value(), compare.n_gen.value(), compare.reps.value()) == (128, 32, 3)
    assert any(r.llama_cpp_version == llama_cpp_version() for r in results_db.query(ctx.db))
    third.close()


def test_a_picture_in_the_chat_is_kept_with_the_conversation_and_shown_after_a_restart(
    qtbot, tmp_path: Path, gemma_path: Path
) -> None:
    """A vision model (Gemma 3 270M with a tiny projector beside it) answers a message with a
    picture; the picture is copied into the app's data, so the chat shows and resends it after a
    restart even though the original file is gone. A text-only model says it cannot see."""
    import shutil

    from tiny_gguf import tiny_png, write_tiny_llama, write_tiny_projector

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    folder = tmp_path / "vision"
    folder.mkdir()
    model = folder / "gemma-3-270m-q4_k_m.gguf"
    try:
        os.link(gemma_path, model)
    except OSError:
        shutil.copyfile(gemma_path, model)
    write_tiny_projector(folder / "mmproj-gemma-f16.gguf", 640)
    original = tmp_path / "holiday.png"
    original.write_bytes(tiny_png())

    first = MainWindow(Services())
    qtbot.addWidget(first)
    first.show()
    chat = _chat_with(first, model)
    chat.n_ctx.setValue(1024)
    chat.max_tokens.setValue(3)
    chat.attachments.add_all([original.read_bytes()])
    assert chat.attachments.isVisible() and len(chat.attachments.pictures) == 1
    chat.input.setPlainText("What is in this picture?")
    with qtbot.waitSignal(chat.template_needed, timeout=60000):
        chat.send()
    chat.template_box.setCurrentIndex(chat.template_box.findData("gemma"))
    with qtbot.waitSignal(chat.answer_finished, timeout=120000) as answered:
        qtbot.mouseClick(chat.use_template_button, Qt.MouseButton.LeftButton)
    with_picture = answered.args[0].prompt_tokens
    assert not chat.attachments.pictures and not chat.attachments.isVisible()
    stored = convs.messages(first.services.ctx.db, chat.conversation.id)
    assert len(stored[0].images) == 1
    kept = first.services.ctx.paths.data / "images" / stored[0].images[0]
    assert kept.read_bytes() == original.read_bytes()
    conversation_id = chat.conversation.id
    first.close()
    original.unlink()  # the user tidies up: the chat keeps its own copy

    second = MainWindow(Services())
    qtbot.addWidget(second)
    second.show()
    chat = second.goto("Chat")
    chat.reload_conversations()
    chat.conv_list.setCurrentRow(
        next(
            i
            for i in range(chat.conv_list.count())
            if chat.conv_list.item(i).data(Qt.ItemDataRole.UserRole) == conversation_id
        )
    )
    assert "chat-image:" in chat.transcript.toHtml()  # its thumbnail
    chat.max_tokens.setValue(3)
    with qtbot.waitSignal(chat.answer_finished, timeout=120000) as again:
        chat.regenerate()
    assert again.args[0].prompt_tokens == with_picture  # the picture was sent again
    # A text-only model: the picture stays attached and the status says why.
    text_only = write_tiny_llama(tmp_path / "text-only.gguf")
    import_file(second.services.ctx.db, text_only)
    second.services.library_changed.emit()
    chat.select_model(str(text_only.resolve()))
    chat.attachments.add_all([tiny_png()])
    chat.input.setPlainText("and this?")
    chat.send()
    assert "reads text only" in chat.status.text() and len(chat.attachments.pictures) == 1
    second.close()


def test_explores_model_list_fits_its_pane_without_sideways_scrolling(window: MainWindow, qtbot) -> None:
    """At 1280x800 the columns that fit show, in order (model, openness and usable here always);
    a wider window shows more; never a horizontal scroll bar."""
    explore = _explore(window, qtbot)
    shown = {}
    for size in ((1280, 800), (1920, 1080)):
        window.resize(*size)
        qtbot.waitUntil(lambda wide=size[0] // 3: explore.table.viewport().width() > wide, timeout=5000)
        qtbot.wait(50)
        assert explore.table.horizontalScrollBar().maximum() == 0
        hidden = [explore.table.isColumnHidden(c) for c in range(explore.model.columnCount())]
        assert not any(hidden[:3])
        assert hidden == sorted(hidden)  # a hidden column hides the ones after it: the order holds
        shown[size] = hidden.count(False)
    assert shown[(1920, 1080)] > shown[(1280, 800)]


def test_a_gguf_opened_from_outside_is_added_then_chatted_with(
    window: MainWindow, qtbot, tiny_gguf: Path, tmp_path: Path
) -> None:
    """A double-click on a .gguf (`localopen FILE.gguf`): the file joins the library and its chat opens."""
    from localopen.app.models import library
    from localopen.ui.main_window import SECTIONS

    copy = tmp_path / "opened.gguf"
    copy.write_bytes(tiny_gguf.read_bytes())
    window.open_file(copy)

    def chatting() -> bool:
        chat = window.views.get("Chat")
        return chat is not None and chat.model_bar.path() == str(copy)  # type: ignore[attr-defined]

    qtbot.waitUntil(chatting, timeout=30000)
    assert SECTIONS[window.stack.currentIndex()] == "Chat"
    assert [m.path for m in library.installed(window.services.ctx)].count(copy) == 1
    window.goto("Library")
    window.open_file(copy)  # opened again: straight to its chat, nothing added twice
    assert SECTIONS[window.stack.currentIndex()] == "Chat"
    assert [m.path for m in library.installed(window.services.ctx)].count(copy) == 1


def test_localopen_with_a_gguf_file_opens_the_app_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import localopen.__main__ as entry
    import localopen.ui.app as ui_app

    opened: list[str | None] = []
    monkeypatch.setattr(ui_app, "run_app", lambda argv=None, open_path=None: opened.append(open_path) or 0)
    assert entry.main(["/models/Some Model.GGUF"]) == 0 and entry.main([]) == 0
    assert opened == ["/models/Some Model.GGUF", None]
