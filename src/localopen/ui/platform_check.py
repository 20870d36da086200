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
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from localopen.core.machine.system_libraries import install_advice, missing_library

log = logging.getLogger("localopen.ui")

_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)
_FONT_WORDS = {"fonts.conf": "fontconfig's configuration is missing", "a font": "no font is installed"}
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


FONTCONFIG_CONF = Path("/etc/fonts/fonts.conf")
FONT_FOLDERS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts")


def font_problem() -> list[str]:
    """What Qt lacks to draw text through fontconfig (Linux): its configuration file, or any font.
    Without them the window opens with every character an empty box."""
    missing = []
    configured = os.environ.get("FONTCONFIG_FILE") or os.environ.get("FONTCONFIG_PATH")
    if not configured and not FONTCONFIG_CONF.exists():
        missing.append("fonts.conf")
    if not any(_has_font(Path(folder).expanduser()) for folder in FONT_FOLDERS):
        missing.append("a font")
    return missing


_FONT_SUFFIXES = (".ttf", ".otf", ".pfb", ".ttc", ".pcf", ".gz")


def _has_font(folder: Path) -> bool:
    """Whether a font file is under the folder (the walk stops at the first one: at each start)."""
    return any(name.lower().endswith(_FONT_SUFFIXES) for _root, _dirs, names in os.walk(folder) for name in names)


def platform_problem() -> str | None:
    """Why Qt cannot open a window here, in plain words with what to do; None when it can."""
    if not sys.platform.startswith("linux"):
        return None  # Windows and macOS ship their platform plugin's needs with Qt
    # Both said at once: one message, one install command.
    missing = missing_libraries(*qt_modules())  # even offscreen (QtGui links libGL, libEGL, fontconfig...)
    fonts = font_problem()
    if missing or fonts:
        log.error("Qt cannot start or draw text: missing %s", ", ".join(missing + fonts))
        said = [f"Qt needs system libraries that are missing: {', '.join(missing)}"] if missing else []
        said += [" and ".join(_FONT_WORDS[f] for f in fonts)] if fonts else []
        return (
            f"localopen cannot open its window: {'; '.join(said)}.\n"
            f"Install what is missing, then start localopen again:\n{install_advice(missing + fonts)}\n"
            "(The terminal commands work without it: `localopen --help`.)"
        )
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform.split(":")[0] in HEADLESS_PLATFORMS:
        return None
    if not platform and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return (
            "localopen: there is no display to open the window on (neither DISPLAY nor WAYLAND_DISPLAY is set).\n"
            "Run localopen with a subcommand (`localopen --help`), or set QT_QPA_PLATFORM=offscreen for a "
            "headless check."
        )
    if not (platform.startswith("wayland") or (not platform and not os.environ.get("DISPLAY"))):
        plugin = xcb_plugin()  # X11: Qt's xcb plugin needs libraries a minimal system lacks (said first)
        missing = missing_libraries(plugin) if plugin is not None else []
        if missing:
            log.error("The xcb platform plugin %s cannot load: missing %s", plugin, ", ".join(missing))
            return missing_advice("Qt's X11 support", missing)
    return display_problem(platform)


def _connects(family: int, address: Any, timeout: float = 1.0) -> bool:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(timeout)
            probe.connect(address)
            return True
    except OSError:
        return False


def x_display_reachable(display: str) -> bool:
    """Whether an X server answers on DISPLAY ('[host]:N[.screen]'): its Unix socket (also the
    abstract one Linux servers open) for a local display, TCP port 6000+N for host:N (ssh -X)."""
    host, _, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not number.isdigit():
        return False
    if host in ("", "unix") or host.startswith("/"):
        path = f"/tmp/.X11-unix/X{number}"
        return _connects(socket.AF_UNIX, path) or _connects(socket.AF_UNIX, "\0" + path)
    return _connects(socket.AF_INET, (host, 6000 + int(number)))


def wayland_display_reachable(name: str) -> bool:
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    path = name if name.startswith("/") else os.path.join(runtime, name)
    return _connects(socket.AF_UNIX, path)


def display_problem(platform: str) -> str | None:
    """A display named in the environment that nothing answers on (a stale DISPLAY over ssh, a closed
    session): said in words with the variable's value, where Qt would abort with wrong advice."""
    x11, wayland = os.environ.get("DISPLAY", ""), os.environ.get("WAYLAND_DISPLAY", "")
    wanted = platform.split(":")[0]
    candidates = []
    if wayland and wanted in ("", "wayland", "wayland-egl"):
        candidates.append(("WAYLAND_DISPLAY", wayland, wayland_display_reachable(wayland)))
    if x11 and wanted in ("", "xcb"):
        candidates.append(("DISPLAY", x11, x_display_reachable(x11)))
    if not candidates or any(ok for _, _, ok in candidates):
        return None
    named = " and ".join(f"{variable}={value!r}" for variable, value, _ in candidates)
    return (
        f"localopen: the display cannot be reached ({named}: nothing answers there). Open localopen from "
        "a desktop session, fix the variable (ssh -X sets DISPLAY), or use a subcommand (`localopen --help`)."
    )


def import_problem(error: ImportError) -> str | None:
    """A Qt import that failed on a missing system library (where ldd could not tell beforehand)."""
    library = missing_library(error)
    return missing_advice("Qt", [library]) if library else None
