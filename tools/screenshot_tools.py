#!/usr/bin/env python3
"""Screenshots of tool use as a person meets it: Explore's and the Library's Can column, and a chat that
asks before a call to an MCP server and shows the call's result.

    xvfb-run -a -s "-screen 0 1920x1080x24" python tools/screenshot_tools.py OUTDIR WIDTHxHEIGHT

Uses a fresh LOCALOPEN_HOME in OUTDIR, a tiny scripted model with Qwen2.5's real template (from the
test data), and the test suite's MCP weather server. For people to look at, not pixels to assert on.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    out = Path(sys.argv[1]).resolve()
    width, height = (int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "1280x800").split("x"))
    out.mkdir(parents=True, exist_ok=True)
    os.environ["LOCALOPEN_HOME"] = str(out / f"home-{width}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT / "tests"))
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from test_tool_use import CALL_SCRIPT, QWEN, SPECIAL

    from tiny_gguf import write_scripted_llama

    app = QApplication(sys.argv)
    app.setOrganizationName("localopen-screenshots")
    QSettings().clear()
    from localopen.app.conversation.mcp_tools import save_app_config
    from localopen.app.settings import Settings
    from localopen.core.paths import app_paths
    from localopen.core.store.library_db import import_file
    from localopen.ui.main_window import MainWindow
    from localopen.ui.services import Services

    Settings(calibrate_automatically=False).save(app_paths())
    model = write_scripted_llama(out / "qwen-style-caller.gguf", CALL_SCRIPT, SPECIAL, QWEN, context_length=4096)
    services = Services()
    import_file(services.ctx.db, model)
    server = {"command": sys.executable, "args": [str(ROOT / "tests" / "mcp_servers.py"), "ok"]}
    save_app_config(services.ctx.paths.config, json.dumps({"mcpServers": {"weather": server}}, indent=2))
    window = MainWindow(services)
    window.resize(width, height)
    window.show()
    steps: list = []

    def shot(name: str) -> None:
        app.processEvents()
        window.grab().save(str(out / f"{name}-{width}x{height}.png"))
        print(f"saved {name}-{width}x{height}.png", flush=True)

    def when(ready, action) -> None:  # type: ignore[no-untyped-def]
        steps.append((ready, action))

    def tick() -> None:
        if not steps:
            app.quit()
            return
        ready, action = steps[0]
        if ready():
            steps.pop(0)
            action()

    chat = window.goto("Chat")  # views are made when first shown
    library = window.goto("Library")
    explore = window.goto("Explore")
    when(lambda: services.profile is not None and explore.settled and explore.proxy.rowCount() > 0, lambda: None)
    when(lambda: True, lambda: explore.select("qwen2.5-1.5b-instruct"))
    when(lambda: explore.settled and explore.quants.rowCount() > 0, lambda: shot("tools-explore"))
    when(lambda: True, lambda: window.goto("Library"))
    when(lambda: library.table.rowCount() > 0, lambda: shot("tools-library"))

    def start_chat() -> None:
        window.goto("Chat")
        chat.new_chat(str(model))
        chat.n_ctx.setValue(2048)
        chat.max_tokens.setValue(60)
        chat.tools.enabled.setChecked(True)

    def ask() -> None:
        chat.input.setPlainText("Weather in Paris?")
        chat.send()

    when(lambda: True, start_chat)
    when(lambda: "Tools:" in chat.tools.status.text(), ask)
    when(lambda: chat.tools.approval.isVisible(), lambda: shot("tools-chat-asks"))
    when(lambda: True, chat.tools.allow_always.click)
    when(lambda: not chat.streaming, lambda: shot("tools-chat-answered"))
    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(200)
    QTimer.singleShot(120_000, app.quit)
    app.exec()
    chat.tools.enabled.setChecked(False)
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
