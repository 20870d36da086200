#!/usr/bin/env python3
"""What rendering an answer as markdown costs the UI thread while it streams.

A long answer (paragraphs, a list, a table and a 150-line Python block, about 3,000 tokens) is fed
to the Chat view's transcript as the 30 Hz refresh feeds it, a few tokens at a time, and each
refresh is timed: the worst and the mean, overall and while the code block is still open (it is
re-rendered, plain, at every refresh until it closes, then highlighted once). Target: the worst
refresh under 16 ms (one frame at 60 Hz), so the transcript stays smooth at any token rate.

    QT_QPA_PLATFORM=offscreen python benchmarks/transcript_render.py [--tokens-per-refresh 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def answer() -> str:
    code = "\n".join(f"    value_{i} = compute({i}, scale=2.5)  # step {i}" for i in range(150))
    paragraphs = "\n\n".join(
        f"Paragraph {i}: the model explains a detail of the change, with `inline code` and **bold** words."
        for i in range(20)
    )
    table = "| name | before | after |\n|---|---|---|\n" + "\n".join(f"| v{i} | {i} | {2 * i} |" for i in range(20))
    items = "\n".join(f"{i}. Step {i} of the plan." for i in range(1, 21))
    return f"## The change\n\n{paragraphs}\n\n{items}\n\n```python\ndef run():\n{code}\n```\n\n{table}\n\nDone."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens-per-refresh", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv)
    from localopen.core.records import AnswerPiece
    from localopen.ui.chat.transcript import Transcript

    text = answer()
    pieces = [text[i : i + 4] for i in range(0, len(text), 4)]  # ~4 characters a token
    transcript = Transcript(lambda _name: None)
    transcript.resize(800, 600)
    transcript.show()
    transcript.begin_answer()
    times, in_code = [], []
    step = args.tokens_per_refresh
    for start in range(0, len(pieces), step):
        began = time.perf_counter()
        transcript.add_pieces([AnswerPiece(p) for p in pieces[start : start + step]])
        app.processEvents()  # the layout and paint the refresh causes
        ms = (time.perf_counter() - began) * 1000
        times.append(ms)
        so_far = "".join(pieces[: start + step])
        if so_far.count("```") == 1:
            in_code.append(ms)
    print(f"{len(pieces)} tokens, {len(times)} refreshes of {step} tokens")
    print(f"every refresh: mean {statistics.mean(times):.2f} ms, worst {max(times):.2f} ms")
    if in_code:
        print(f"inside the open code block: mean {statistics.mean(in_code):.2f} ms, worst {max(in_code):.2f} ms")
    print(f"target: worst under 16 ms: {'met' if max(times) < 16 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
