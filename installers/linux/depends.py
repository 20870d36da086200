"""The .deb's Depends line: what the bundle's programs and libraries need from the system.

    python installers/linux/depends.py BUNDLE_DIR

The libraries the system must provide are those some ELF file in the bundle needs (readelf's
NEEDED entries) and the bundle does not ship; each is found on this build machine (ldconfig) and
its package named by dpkg, with the minimum version dpkg-shlibdeps reads from the symbols used.
A library this machine lacks (a Qt plugin's Wayland library, say) is named from localopen's table
of system libraries; one in neither is an error, never a silent gap. Qt reads fonts through
fontconfig, which needs its configuration and at least one font: those are added by name, since
no ELF file says so.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from prune import elf_files, needed  # noqa: E402  (the bundle's ELF files, as prune.py reads them)

from localopen.core.machine.system_libraries import PACKAGES  # noqa: E402

FONTS = ["fontconfig-config", "fonts-dejavu-core | fonts-liberation2 | fonts-freefont-ttf"]
# Loaded only where the hardware has them (a GPU driver): never a dependency of a CPU package.
OPTIONAL = re.compile(r"^lib(cuda|nvidia-ml|vulkan)\.so")


def system_paths() -> dict[str, str]:
    """soname -> path of this machine's 64-bit libraries (ldconfig's cache)."""
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    found: dict[str, str] = {}
    for name, flags, path in re.findall(r"^\s+(\S+) \((.*?)\) => (\S+)$", out, re.M):
        if "x86-64" in flags or "64bit" in flags or "AArch64" in flags:
            found.setdefault(name, path)
    return found


def package_of(path: str) -> str | None:
    for candidate in (path, str(Path(path).resolve()), "/usr" + path if not path.startswith("/usr") else path[4:]):
        out = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if out.returncode == 0:
            return out.stdout.split(":")[0].strip()
    return None


def versions(files: list[Path], private: list[Path]) -> dict[str, str]:
    """package -> its entry with a minimum version, as dpkg-shlibdeps reads it from the symbols used
    (it is told where the bundle's own libraries are, and names packages for those too: the caller
    keeps only the packages the bundle needs from the system)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "debian").mkdir()
        (Path(tmp) / "debian" / "control").write_text("Source: localopen\n\nPackage: localopen\nArchitecture: any\n")
        command = ["dpkg-shlibdeps", "-O", "--ignore-missing-info", "--warnings=0"]
        command += [f"-l{d}" for d in private] + [str(f) for f in files]
        out = subprocess.run(command, cwd=tmp, capture_output=True, text=True)
    line = next((x for x in out.stdout.splitlines() if x.startswith("shlibs:Depends=")), "shlibs:Depends=")
    entries = [e.strip() for e in line.split("=", 1)[1].split(",") if e.strip()]
    return {e.split()[0]: e for e in entries}


def depends(bundle: Path) -> str:
    files = elf_files(bundle)
    shipped = {p.name for p in bundle.rglob("*")}
    needs: dict[str, list[Path]] = {}  # soname -> the files that need it
    for f in files:
        for name in needed(f):
            needs.setdefault(name, []).append(f)
    external = sorted(name for name in needs if name not in shipped and not OPTIONAL.match(name))
    on_system = system_paths()
    packages: dict[str, str] = {}
    unknown = []
    for name in external:
        package = package_of(on_system[name]) if name in on_system else None
        if package is None and name in PACKAGES:
            package = PACKAGES[name][0]
        if package is None:
            unknown.append(name)
        else:
            packages[package] = name
    if unknown:
        raise SystemExit(f"No package is known for {', '.join(unknown)}: add it to system_libraries.")
    # dpkg-shlibdeps stops at a library it cannot find: the files needing one this machine lacks are
    # left out of its reading (their other needs are the same packages' as the rest's).
    absent = {name for name in needs if name not in shipped and name not in on_system}
    users = sorted(
        {f for name in external if name in on_system for f in needs[name] if not any(f in needs[a] for a in absent)}
    )
    versioned = versions(users, sorted({f.parent for f in files}))
    return ", ".join([versioned.get(p, p) for p in sorted(packages)] + FONTS)


if __name__ == "__main__":
    print(depends(Path(sys.argv[1]).resolve()))
