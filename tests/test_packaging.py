"""Installers: build the Linux bundle and .deb, extract it, run the launcher's --self-test; compile NSIS."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging
ROOT = Path(__file__).resolve().parents[1]


def _has_pyinstaller() -> bool:
    return subprocess.run([sys.executable, "-m", "PyInstaller", "--version"], capture_output=True).returncode == 0


@pytest.mark.skipif(
    sys.platform != "linux" or not shutil.which("dpkg-deb") or not _has_pyinstaller(),
    reason="needs Linux, dpkg-deb and PyInstaller",
)
def test_linux_bundle_deb_and_self_test(tmp_path: Path) -> None:
    # --llama installed: bundle this environment's llama.cpp (a portable build compiles for minutes).
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
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    control = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Version"], capture_output=True, text=True).stdout
    assert "Package: localopen" in control and f"Version: {version}" in control

    launcher = root / "opt" / "localopen" / "localopen"
    assert os.access(launcher, os.X_OK)
    assert os.readlink(root / "usr" / "bin" / "localopen") == "/opt/localopen/localopen"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "LOCALOPEN_HOME": str(tmp_path / "home")}
    out = subprocess.run([str(launcher), "--self-test"], capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "self-test passed" in out.stdout and "engine: llama-cpp-python" in out.stdout

    desktop = root / "usr" / "share" / "applications" / "localopen.desktop"
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # keys are case-sensitive
    entry.read(desktop)
    d = entry["Desktop Entry"]
    assert d["Type"] == "Application" and d["Exec"] == "localopen" and d["Icon"] == "localopen"
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


@pytest.mark.skipif(sys.platform != "linux" or not shutil.which("dpkg"), reason="needs Debian's dpkg")
def test_deb_depends_on_every_system_library_llama_cpp_links() -> None:
    """A .deb installed on a machine without the compiler's runtime must not fail on load: every
    library outside the wheel that llama.cpp's libraries link (libgomp, libstdc++, ...) comes from
    a package the control file names."""
    llama_cpp = pytest.importorskip("llama_cpp")
    depends = next(
        line.removeprefix("Depends:")
        for line in (ROOT / "installers/linux/control.in").read_text().splitlines()
        if line.startswith("Depends:")
    )
    declared = {item.split()[0] for item in depends.split(",")}
    linked: set[str] = set()
    for lib in (Path(llama_cpp.__file__).parent / "lib").glob("*.so*"):
        for line in subprocess.run(["ldd", str(lib)], capture_output=True, text=True).stdout.splitlines():
            parts = line.split("=>")
            target = parts[1].split("(")[0].strip() if len(parts) == 2 else ""
            if target.startswith("/") and "llama_cpp" not in target:
                linked.add(os.path.realpath(target))
    assert linked, "ldd found no system library: the check would prove nothing"
    owners = {}
    for path in linked:
        found = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
        if found.returncode == 0:
            owners[path] = found.stdout.split(":")[0]
    missing = {path: pkg for path, pkg in owners.items() if pkg not in declared}
    assert not missing, missing
