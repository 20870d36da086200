"""Leave out of the bundle what the app never loads (the self-test then runs on what remains).

    python installers/linux/prune.py BUNDLE_DIR

Qt plugins the app has no use for go first: the GTK 3 theme (it would make GTK 3 a dependency of
the package), the virtual keyboard, the PDF image format, embedded-display platforms. Then every Qt
library that no remaining program, module or plugin needs, repeatedly, since one removal can free
another (the PDF plugin alone brings Qt Quick and QML), and every system library PyInstaller copied
beside them for those plugins (cairo and pango came with the GTK theme). Libraries opened at run time
by name rather than linked (Python itself, OpenSSL for Qt's TLS, llama.cpp's own through ctypes,
which live in their package's folder) are never candidates. Prints what was removed and its size.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PLUGINS = [
    "platformthemes/libqgtk3.so",
    "platforminputcontexts/libqtvirtualkeyboardplugin.so",
    "imageformats/libqpdf.so",
    "platforms/libqeglfs.so",
    "platforms/libqlinuxfb.so",
    "platforms/libqvnc.so",
    "platforms/libqminimalegl.so",
    "platforms/libqvkkhrdisplay.so",
    "egldeviceintegrations",
]
# Opened by name at run time (no ELF file names them as needed): kept whatever the graph says.
KEEP = re.compile(r"^lib(python|ssl|crypto)")
_NEEDED = re.compile(r"\(NEEDED\)\s+Shared library: \[(\S+)\]")


def needed(path: Path) -> set[str]:
    out = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True)
    return set(_NEEDED.findall(out.stdout))


def elf_files(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as f:
                if f.read(4) == b"\x7fELF":
                    found.append(path)
    return found


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def remove(path: Path) -> int:
    freed = size(path)
    if path.is_dir():
        for child in sorted(path.rglob("*"), reverse=True):
            child.rmdir() if child.is_dir() else child.unlink()
        path.rmdir()
    else:
        path.unlink()
    print(f"  left out {path.name} ({freed / 2**20:.1f} MB)")
    return freed


def prune(bundle: Path) -> int:
    freed = 0
    qts = list(bundle.rglob("PySide6/Qt"))
    for qt in qts:
        for plugin in PLUGINS:
            if (qt / "plugins" / plugin).exists():
                freed += remove(qt / "plugins" / plugin)
    # Qt's libraries, and the system libraries copied to the bundle's top folder (not Python modules).
    candidates = [f for qt in qts for f in (qt / "lib").glob("libQt6*.so*")]
    for top in {p.parent for p in bundle.rglob("base_library.zip")}:
        candidates += [f for f in top.glob("lib*.so*") if not KEEP.match(f.name)]
    while True:  # what nothing needs any more
        wanted = set().union(*(needed(f) for f in elf_files(bundle)))
        unused = [f for f in candidates if f.exists() and not f.is_symlink() and f.name not in wanted]
        if not unused:
            return freed
        for library in unused:
            freed += remove(library)


if __name__ == "__main__":
    total = prune(Path(sys.argv[1]))
    print(f"pruned {total / 2**20:.1f} MB")
