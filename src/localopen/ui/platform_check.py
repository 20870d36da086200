"""Before the window: can Qt show one here? A missing display or system library is said in plain
words, with the command that installs what is missing, instead of Qt aborting without a word.

The missing libraries are read from the xcb platform plugin's unresolved dependencies (ldd), so
the list is whatever this Qt build needs, not a list written down once.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

log = logging.getLogger("localopen.ui")

# Shared-library name -> (Debian/Ubuntu, Fedora, Arch) package. Names not here are shown as they are.
PACKAGES = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util", "xcb-util"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb", "libx11"),
    "libX11.so.6": ("libx11-6", "libX11", "libx11"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon", "libxkbcommon"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl", "libglvnd"),
    "libGL.so.1": ("libgl1", "libglvnd-glx", "libglvnd"),
    "libGLX.so.0": ("libglx0", "libglvnd-glx", "libglvnd"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl", "libglvnd"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype", "freetype2"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs", "dbus"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2", "glib2"),
    "libgthread-2.0.so.0": ("libglib2.0-0", "glib2", "glib2"),
}
INSTALLERS = (("Debian/Ubuntu", "sudo apt install"), ("Fedora", "sudo dnf install"), ("Arch", "sudo pacman -S"))
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)
HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc", "linuxfb", "eglfs", "vkkhrdisplay")


def xcb_plugin() -> Path | None:
    """The xcb platform plugin Qt will try: one in QT_PLUGIN_PATH first, else Qt's own."""
    from PySide6.QtCore import QLibraryInfo

    folders = [Path(p) for p in os.environ.get("QT_PLUGIN_PATH", "").split(os.pathsep) if p]
    folders.append(Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)))
    return next((f / "platforms" / "libqxcb.so" for f in folders if (f / "platforms" / "libqxcb.so").exists()), None)


def missing_libraries(plugin: Path) -> list[str]:
    """Shared libraries the plugin needs that the system cannot find (ldd resolves them all)."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    try:
        out = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        log.info("ldd could not check %s", plugin, exc_info=True)
        return []
    return sorted(set(_NOT_FOUND.findall(out.stdout)))


def install_advice(libraries: list[str]) -> str:
    lines = []
    for i, (system, command) in enumerate(INSTALLERS):
        packages = sorted({PACKAGES[lib][i] for lib in libraries if lib in PACKAGES})
        if packages:
            lines.append(f"  {system + ':':15} {command} {' '.join(packages)}")
    unknown = [lib for lib in libraries if lib not in PACKAGES]
    if unknown:
        lines.append(f"  Elsewhere, install the packages that provide: {', '.join(unknown)}")
    return "\n".join(lines)


def platform_problem() -> str | None:
    """Why Qt cannot open a window here, in plain words with what to do; None when it can."""
    if not sys.platform.startswith("linux"):
        return None  # Windows and macOS ship their platform plugin's needs with Qt
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
    return (
        f"localopen cannot open its window: Qt's X11 support needs system libraries that are missing: "
        f"{', '.join(missing)}.\nInstall them, then start localopen again:\n{install_advice(missing)}\n"
        "(The terminal commands work without them: `localopen --help`.)"
    )
