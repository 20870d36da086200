"""System libraries by name: which package provides each on Debian/Ubuntu, Fedora and Arch, and the
commands that install them. Used wherever a missing shared library must be named in plain words
(Qt's window, llama.cpp's engine)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

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
    "libwayland-client.so.0": ("libwayland-client0", "libwayland-client", "wayland"),
    "libwayland-cursor.so.0": ("libwayland-cursor0", "libwayland-cursor", "wayland"),
    "libwayland-egl.so.1": ("libwayland-egl1", "libwayland-egl", "wayland"),
    "fonts.conf": ("fontconfig-config", "fontconfig", "fontconfig"),  # fontconfig's configuration
    "a font": ("fonts-dejavu-core", "dejavu-sans-fonts", "ttf-dejavu"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype", "freetype2"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs", "dbus"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2", "glib2"),
    "libgthread-2.0.so.0": ("libglib2.0-0", "glib2", "glib2"),
    # llama.cpp's CPU backend (OpenMP) and Vulkan backend
    "libgomp.so.1": ("libgomp1", "libgomp", "gcc-libs"),
    "libvulkan.so.1": ("libvulkan1", "vulkan-loader", "vulkan-icd-loader"),
}
INSTALLERS = (("Debian/Ubuntu", "sudo apt install"), ("Fedora", "sudo dnf install"), ("Arch", "sudo pacman -S"))


def half_installed_deb() -> bool:
    """Whether localopen's own .deb was unpacked with `dpkg -i` but not configured, for want of the
    packages it depends on: apt then refuses to install anything else until `apt-get install -f`."""
    if not sys.executable.startswith(("/usr/lib/localopen/", "/opt/localopen/")) or not shutil.which("dpkg-query"):
        return False
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${db:Status-Status}", "localopen"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip() not in ("installed", "")


def install_advice(libraries: list[str]) -> str:
    if half_installed_deb():  # the package's own Depends name everything it needs
        return "  Debian/Ubuntu:  sudo apt-get install -f   (installs what the localopen package needs)"
    lines = []
    for i, (system, command) in enumerate(INSTALLERS):
        packages = sorted({PACKAGES[lib][i] for lib in libraries if lib in PACKAGES})
        if packages:
            lines.append(f"  {system + ':':15} {command} {' '.join(packages)}")
    unknown = [lib for lib in libraries if lib not in PACKAGES]
    if unknown:
        lines.append(f"  Elsewhere, install the packages that provide: {', '.join(unknown)}")
    return "\n".join(lines)


_CANNOT_OPEN = re.compile(r"(\S+\.so[.\d]*): cannot open shared object file")


def missing_library(error: BaseException) -> str | None:
    """The shared library a failed import or dlopen names as missing, if it names one."""
    match = _CANNOT_OPEN.search(str(error))
    return match.group(1) if match else None
