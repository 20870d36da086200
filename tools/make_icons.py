#!/usr/bin/env python3
"""Render resources/icons/localopen.svg to the PNG sizes desktops want (and .ico / .icns inputs).

python tools/make_icons.py OUTDIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    _app = QGuiApplication([])
    renderer = QSvgRenderer(str(Path(__file__).resolve().parents[1] / "resources" / "icons" / "localopen.svg"))
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        image.save(str(out / f"localopen-{size}.png"))
    # Windows icon (Qt writes .ico from the 256 px image).
    QImage(str(out / "localopen-256.png")).save(str(out / "localopen.ico"))
    print(f"icons in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
