"""Installers: build the Linux bundle and .deb, extract it, run the launcher's --self-test; compile NSIS."""

from __future__ import annotations

import configparser
import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging
ROOT = Path(__file__).resolve().parents[1]


LINUX_BUILD = pytest.mark.skipif(
    sys.platform != "linux" or not shutil.which("dpkg-deb") or not shutil.which("dpkg-shlibdeps"),
    reason="needs Linux, dpkg-deb and dpkg-shlibdeps (dpkg-dev)",
)
TEST_ONLY = ("transformers", "tokenizers", "torch", "nvidia", "pytest", "gguf", "openai", "anthropic", "ollama")
INSTALLED_BUDGET_MB = 300  # what `apt install` adds to a minimal Debian, the app and everything it pulls
DEB_BUDGET_MB = 100


@pytest.fixture(scope="module")
def built() -> tuple[Path, str]:
    """The bundle and .deb, built once as a release is (from a clean environment with the runtime
    dependencies only), with this environment's llama.cpp (--llama installed: a portable build
    compiles for minutes). Returns the .deb and the build's output."""
    build = subprocess.run(
        ["bash", "installers/linux/build.sh", "--llama", "installed"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1500,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    version = next(
        line.split('"')[1]
        for line in (ROOT / "pyproject.toml").read_text().splitlines()
        if line.startswith("version = ")
    )
    [deb] = list((ROOT / "build").glob(f"localopen_{version}_*.deb"))
    return deb, build.stdout


def test_build_script_says_how_to_use_it() -> None:
    out = subprocess.run(["bash", "installers/linux/build.sh", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and "--llama portable" in out.stdout and "self-test" in out.stdout
    wrong = subprocess.run(["bash", "installers/linux/build.sh", "--bogus"], cwd=ROOT, capture_output=True, text=True)
    assert wrong.returncode == 2 and "--help" in wrong.stderr


@LINUX_BUILD
def test_linux_bundle_deb_and_self_test(built: tuple[Path, str], tmp_path: Path) -> None:
    deb, output = built
    version = deb.name.split("_")[1]
    assert deb.stat().st_size < DEB_BUDGET_MB * 2**20, output
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    fields = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Package", "Version", "Depends"], capture_output=True, text=True
    ).stdout
    assert "Package: localopen" in fields and f"Version: {version}" in fields
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    # Nothing outside /usr of its own: removing the package leaves /opt (and everything else) as it was.
    paths = [line.split(None, 5)[5].split(" -> ")[0] for line in listing.splitlines()]  # perms owner size date time
    assert {p.split("/")[1] for p in paths} == {"", "usr"}, listing[:500]
    depends = next(line for line in fields.splitlines() if line.startswith("Depends:"))
    # What the bundle ships is not asked of the system; GL would pull Mesa and LLVM; fonts are needed.
    assert "libc6 (>= " in depends and "fontconfig-config" in depends and "fonts-dejavu-core" in depends
    for shipped in ("libgl1", "libegl1", "libllvm", "libglib2.0-0", "libfontconfig1", "libgomp1"):
        assert shipped not in depends, depends
    bundle = root / "usr" / "lib" / "localopen"
    names = {p.name.lower() for p in bundle.rglob("*")}
    assert not [n for n in names if n.split(".")[0] in TEST_ONLY], "test-only packages in the bundle"
    assert not [n for n in names if n.startswith(("libcudart", "libcublas"))], "a CUDA runtime in a CPU package"

    launcher = root / "usr" / "lib" / "localopen" / "localopen"
    assert os.access(launcher, os.X_OK)
    assert os.readlink(root / "usr" / "bin" / "localopen") == "../lib/localopen/localopen"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "LOCALOPEN_HOME": str(tmp_path / "home")}
    out = subprocess.run([str(launcher), "--self-test"], capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "self-test passed" in out.stdout and "engine: llama-cpp-python" in out.stdout

    desktop = root / "usr" / "share" / "applications" / "localopen.desktop"
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # keys are case-sensitive
    entry.read(desktop)
    d = entry["Desktop Entry"]
    assert d["Type"] == "Application" and d["Exec"] == "localopen %f" and d["Icon"] == "localopen"
    assert d["MimeType"] == "application/x-gguf;"  # a double-click on a .gguf opens it here
    assert "application/x-gguf" in (root / "usr/share/mime/packages/localopen.xml").read_text()
    control = tmp_path / "control"
    subprocess.run(["dpkg-deb", "-e", str(deb), str(control)], check=True)
    sums = (control / "md5sums").read_text().splitlines()
    assert any(line.endswith("  usr/share/applications/localopen.desktop") for line in sums)
    assert d["Name"] and d["Categories"].endswith(";") and d["Terminal"] == "false"
    for size in (16, 32, 48, 128, 256, 512):
        assert (root / f"usr/share/icons/hicolor/{size}x{size}/apps/localopen.png").stat().st_size > 100
    if shutil.which("desktop-file-validate"):
        check = subprocess.run(["desktop-file-validate", str(desktop)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.skipif(not shutil.which("makensis"), reason="makensis (NSIS) is not installed")
def test_windows_installer_script_compiles(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "localopen.exe").write_bytes(b"MZ placeholder for the script check")
    out_file = tmp_path / "localopen-setup.exe"
    result = subprocess.run(
        [
            "makensis",
            "-V2",
            "-DVERSION=0.1.0",
            f"-DSOURCE_DIR={bundle}",
            f"-DOUT_FILE={out_file}",
            str(ROOT / "installers" / "windows" / "localopen.nsi"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert out_file.stat().st_size > 10_000


@pytest.mark.skipif(sys.platform != "linux" or not shutil.which("dpkg-shlibdeps"), reason="needs dpkg-dev")
def test_depends_names_what_llama_cpp_links_from_the_system(tmp_path: Path) -> None:
    """The .deb's Depends are read from its files: llama.cpp's libraries alone need OpenMP, the C++
    runtime and the C library from the system (with the minimum version the symbols used ask)."""
    llama_cpp = pytest.importorskip("llama_cpp")
    sys.path.insert(0, str(ROOT / "installers" / "linux"))
    try:
        import depends
    finally:
        sys.path.pop(0)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    for lib in (Path(llama_cpp.__file__).parent / "lib").glob("*.so*"):
        shutil.copy(lib, bundle)
    line = depends.depends(bundle)
    named = {entry.split()[0] for entry in line.split(", ")}
    assert {"libgomp1", "libstdc++6", "libc6"} <= named, line
    assert "libc6 (>= 2." in line
    shutil.copy(next(Path("/").glob("usr/lib/*/libgomp.so.1")), bundle)  # shipped: no longer asked of the system
    assert "libgomp1" not in depends.depends(bundle)


def _chroot_ready(where: Path) -> str | None:
    """A minimal Debian (debootstrap --variant=minbase) at `where`; None, or why it cannot be made."""
    if os.geteuid() != 0:
        return "installing into a chroot needs root"
    debootstrap = _debootstrap(where.parent / "debootstrap")
    if debootstrap is None:
        return "debootstrap is not installed and apt could not fetch it"
    made = subprocess.run(
        [*debootstrap, "--variant=minbase", "bookworm", str(where), "http://deb.debian.org/debian"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if made.returncode != 0:
        return f"debootstrap could not make a minimal Debian (no network to deb.debian.org?): {made.stderr[-300:]}"
    shutil.copy("/etc/resolv.conf", where / "etc" / "resolv.conf")
    return None


def _debootstrap(folder: Path) -> list[str] | None:
    """The debootstrap command: the installed one, else one apt fetches and unpacks (not installed)."""
    if shutil.which("debootstrap"):
        return ["debootstrap"]
    if not shutil.which("apt-get"):
        return None
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", "debootstrap"], cwd=folder, capture_output=True, timeout=300)
    fetched = sorted(folder.glob("debootstrap_*.deb"))
    if not fetched:
        return None
    subprocess.run(["dpkg-deb", "-x", str(fetched[-1]), str(folder / "root")], check=True)
    scripts = folder / "root" / "usr" / "share" / "debootstrap"
    return ["env", f"DEBOOTSTRAP_DIR={scripts}", str(folder / "root" / "usr" / "sbin" / "debootstrap")]


@contextlib.contextmanager
def _mounted(chroot: Path) -> Iterator[Path]:
    """/proc and /dev inside the chroot while it is used (psutil reads /proc), unmounted after."""
    points = [chroot / "proc", chroot / "dev"]
    subprocess.run(["mount", "-t", "proc", "proc", str(points[0])], check=True)
    subprocess.run(["mount", "--bind", "/dev", str(points[1])], check=True)
    try:
        yield chroot
    finally:
        for point in points:
            subprocess.run(["umount", "-l", str(point)], check=False)


def _in(chroot: Path, command: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "HOME": "/root"}
    return subprocess.run(
        ["chroot", str(chroot), "/bin/bash", "-c", command], capture_output=True, text=True, timeout=timeout, env=env
    )


def _du_mb(path: Path) -> float:
    out = subprocess.run(["du", "-sk", "-x", str(path)], capture_output=True, text=True).stdout
    return int(out.split()[0]) / 1024


@LINUX_BUILD
def test_the_deb_installs_and_runs_on_a_minimal_debian(built: tuple[Path, str], tmp_path: Path) -> None:
    """`apt install ./localopen.deb` on a fresh minimal Debian gives a working app (self-test: engine,
    server, window; a one-line chat) within the size budget; `dpkg -i` leaves it unconfigured, the
    app then names the one command apt accepts, and that command makes it work."""
    deb, _ = built
    base = tmp_path / "debian"
    why = _chroot_ready(base)
    if why:
        pytest.skip(why)
    shutil.copy(deb, base / "tmp" / deb.name)
    copy = tmp_path / "debian-dpkg"
    subprocess.run(["cp", "-a", str(base), str(copy)], check=True)
    with _mounted(base):
        _apt_install(base, deb)
    with _mounted(copy):
        _dpkg_then_fix(copy, deb)


def _apt_install(base: Path, deb: Path) -> None:
    before = _du_mb(base)
    assert _in(base, "apt-get update -q").returncode == 0
    installed = _in(base, f"apt-get install -y -q --no-install-recommends /tmp/{deb.name}")
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]
    _in(base, "apt-get clean")
    added = _du_mb(base) - before - deb.stat().st_size / 2**20
    assert added < INSTALLED_BUDGET_MB, f"{added:.0f} MB installed"
    selftest = _in(base, "QT_QPA_PLATFORM=offscreen LOCALOPEN_HOME=/tmp/home localopen --self-test")
    assert selftest.returncode == 0 and "self-test passed" in selftest.stdout, selftest.stdout + selftest.stderr
    chat = _in(
        base,
        "LOCALOPEN_HOME=/tmp/home localopen chat /usr/lib/localopen/_internal/localopen/resources/selftest-tiny.gguf "
        "-p hi --max-tokens 4 --template chatml --json",
    )
    assert chat.returncode == 0 and '"completion_tokens": 4' in chat.stdout, chat.stderr


def _dpkg_then_fix(copy: Path, deb: Path) -> None:
    unpacked = _in(copy, f"dpkg -i /tmp/{deb.name}")
    assert unpacked.returncode != 0  # its dependencies are missing: dpkg leaves it unconfigured
    said = _in(copy, "DISPLAY=:0 LOCALOPEN_HOME=/tmp/home localopen")
    assert said.returncode == 1 and "sudo apt-get install -f" in said.stderr, said.stderr
    assert "Traceback" not in said.stderr
    assert _in(copy, "apt-get update -q").returncode == 0
    fixed = _in(copy, "apt-get install -f -y -q")
    assert fixed.returncode == 0, fixed.stdout[-2000:]
    works = _in(copy, "QT_QPA_PLATFORM=offscreen LOCALOPEN_HOME=/tmp/home localopen --self-test")
    assert works.returncode == 0, works.stdout + works.stderr
