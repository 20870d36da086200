"""Before the window: can Qt show one here? A missing display or system library is said in plain
words, with the command that installs what is missing, instead of Qt aborting without a word.

The missing libraries are read from the unresolved dependencies (ldd) of Qt's own modules and of
the xcb platform plugin, so the list is whatever this Qt build needs, not a list written down once.
Nothing here imports Qt: on a minimal system importing even QtCore fails (no libglib).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from localopen.core.machine.system_libraries import install_advice, missing_library

log = logging.getLogger("localopen.ui")

_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)
HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc", "linuxfb", "eglfs", "vkkhrdisplay")


def pyside_folder() -> Path | None:
    """PySide6's package folder, found without importing it."""
    spec = importlib.util.find_spec("PySide6")
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) if locations else None


def qt_modules() -> list[Path]:
    """The Qt modules the window loads first (their libQt6 libraries come along in ldd's answer)."""
    folder = pyside_folder()
    if folder is None:
        return []
    return [m for name in ("QtCore", "QtGui", "QtWidgets") for m in sorted(folder.glob(f"{name}.*so"))[:1]]


def xcb_plugin() -> Path | None:
    """The xcb platform plugin Qt will try: one in QT_PLUGIN_PATH first, else PySide6's own."""
    folders = [Path(p) for p in os.environ.get("QT_PLUGIN_PATH", "").split(os.pathsep) if p]
    folder = pyside_folder()
    if folder is not None:
        folders.append(folder / "Qt" / "plugins")
    return next((f / "platforms" / "libqxcb.so" for f in folders if (f / "platforms" / "libqxcb.so").exists()), None)


def missing_libraries(*files: Path) -> list[str]:
    """Shared libraries these files need that the system cannot find (one ldd run resolves them all)."""
    ldd = shutil.which("ldd")
    if ldd is None or not files:
        return []
    try:
        out = subprocess.run([ldd, *map(str, files)], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        log.info("ldd could not check %s", ", ".join(map(str, files)), exc_info=True)
        return []
    return sorted(set(_NOT_FOUND.findall(out.stdout)))


def missing_advice(what: str, missing: list[str]) -> str:
    return (
        f"localopen cannot open its window: {what} needs system libraries that are missing: "
        f"{', '.join(missing)}.\nInstall them, then start localopen again:\n{install_advice(missing)}\n"
        "(The terminal commands work without them: `localopen --help`.)"
    )


def platform_problem() -> str | None:
    """Why Qt cannot open a window here, in plain words with what to do; None when it can."""
    if not sys.platform.startswith("linux"):
        return None  # Windows and macOS ship their platform plugin's needs with Qt
    missing = missing_libraries(*qt_modules())
    if missing:  # even an offscreen window needs these (QtGui links libGL, libEGL, fontconfig...)
        log.error("Qt's modules cannot load: missing %s", ", ".join(missing))
        return missing_advice("Qt", missing)
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform.split(":")[0] in HEADLESS_PLATFORMS:
        return None
    if not platform and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return (
            "localopen: there is no display to open the window on (neither DISPLAY nor WAYLAND_DISPLAY is set).\n"
            "Run localopen with a subcommand (`localopen --help`), or set QT_QPA_PLATFORM=offscreen for a "
            "headless check."
        )
    if platform.startswith("wayland") or (not platform and not os.environ.get("DISPLAY")):
        return None  # Wayland: Qt's wayland plugin, whose needs a Wayland desktop has
    plugin = xcb_plugin()
    if plugin is None:
        return None
    missing = missing_libraries(plugin)
    if not missing:
        return None
    log.error("The xcb platform plugin %s cannot load: missing %s", plugin, ", ".join(missing))
    return missing_advice("Qt's X11 support", missing)


def import_problem(error: ImportError) -> str | None:
    """A Qt import that failed on a missing system library (where ldd could not tell beforehand)."""
    library = missing_library(error)
    return missing_advice("Qt", [library]) if library else None
