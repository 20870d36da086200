#!/usr/bin/env python3
"""Time from launching `localopen` to its window being shown and the event loop running.

python benchmarks/ui_startup.py [--runs 5]     (QT_QPA_PLATFORM=offscreen works; Xvfb too)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import sys, time
from PySide6.QtCore import QTimer
from localopen.ui import app as app_mod
from PySide6.QtWidgets import QApplication

real_exec = QApplication.exec
def exec_and_report(self=None):
    def shown():
        print("SHOWN", time.time(), flush=True)
        QApplication.instance().quit()
    QTimer.singleShot(0, shown)
    return real_exec()
QApplication.exec = exec_and_report
sys.exit(app_mod.run_app([]))
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    times = []
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "LOCALOPEN_HOME": home, "HF_HUB_OFFLINE": "1"}
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
        for _ in range(args.runs + 1):  # the first run warms the OS file cache; not counted
            start = time.time()
            out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)
            shown = next((float(line.split()[1]) for line in out.stdout.splitlines() if line.startswith("SHOWN")), None)
            if shown is None:
                print(out.stderr[-2000:], file=sys.stderr)
                return 1
            times.append(shown - start)
    counted = times[1:]
    print(
        f"window shown after: median {statistics.median(counted):.2f} s, worst {max(counted):.2f} s "
        f"over {len(counted)} runs (process start to first event-loop turn, offline, empty library)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
