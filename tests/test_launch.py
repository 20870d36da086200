"""A first launch never fails silently: a missing display or system library is said in plain words."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import exe, run
from localopen.core.machine.system_libraries import install_advice
from localopen.ui.platform_check import xcb_plugin

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the X11 platform plugin is Linux's")


def _desktop_env(**extra: str) -> dict[str, str]:
    """The environment of a user starting the app from a desktop (not the tests' offscreen Qt)."""
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "DISPLAY")}
    return {**env, **extra}


def _plugin_missing_a_library(tmp_path: Path) -> Path:
    """A copy of Qt's xcb plugin whose libxcb-cursor dependency cannot be found, as on a fresh Debian
    without libxcb-cursor0 (the name is changed in place: same length, a valid ELF file)."""
    original = xcb_plugin()
    assert original is not None
    data = original.read_bytes()
    assert b"libxcb-cursor.so.0\x00" in data
    platforms = tmp_path / "plugins" / "platforms"
    platforms.mkdir(parents=True)
    (platforms / "libqxcb.so").write_bytes(data.replace(b"libxcb-cursor.so.0\x00", b"libxcb-cursoX.so.0\x00"))
    return tmp_path / "plugins"


def test_missing_system_libraries_are_named_with_the_command_to_install_them(tmp_path: Path) -> None:
    plugins = _plugin_missing_a_library(tmp_path)
    qt_lib = xcb_plugin().parents[2] / "lib"  # the copy finds Qt's own libraries as the original does
    env = _desktop_env(DISPLAY=":77", QT_PLUGIN_PATH=str(plugins), LD_LIBRARY_PATH=str(qt_lib))
    out = run(env=env)
    assert out.returncode == 1
    assert "cannot open its window" in out.stderr and "libxcb-cursoX.so.0" in out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert "libQt6" not in out.stderr  # only what is really missing is named


def test_install_advice_names_each_systems_packages() -> None:
    advice = install_advice(["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libEGL.so.1", "libweird.so.3"])
    assert "sudo apt install libegl1 libxcb-cursor0 libxcb-icccm4" in advice
    assert "sudo dnf install libglvnd-egl xcb-util-cursor xcb-util-wm" in advice
    assert "sudo pacman -S libglvnd xcb-util-cursor xcb-util-wm" in advice
    assert "libweird.so.3" in advice


def test_no_display_says_what_to_do_instead() -> None:
    out = run(env=_desktop_env())
    assert out.returncode == 1
    assert "no display" in out.stderr and "QT_QPA_PLATFORM=offscreen" in out.stderr
    assert "Traceback" not in out.stderr


def test_the_self_test_passes_quietly_and_says_where_its_log_is() -> None:
    """Qt's offscreen plugin warns (propagateSizeHints): into the log, not onto the terminal."""
    out = run("--self-test", env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}, timeout=120)
    assert out.returncode == 0 and "self-test passed" in out.stdout, out.stdout + out.stderr
    assert out.stderr.strip() == "", out.stderr
    log_file = Path(out.stdout.strip().splitlines()[-1].removeprefix("log: "))
    assert log_file.is_file() and "localopen.qt" in log_file.read_text()


def test_the_self_test_reports_missing_desktop_libraries(tmp_path: Path) -> None:
    plugins = _plugin_missing_a_library(tmp_path)
    qt_lib = xcb_plugin().parents[2] / "lib"
    env = {**os.environ, "QT_PLUGIN_PATH": str(plugins), "LD_LIBRARY_PATH": str(qt_lib)}
    out = run("--self-test", env=env, timeout=120)
    assert "missing system libraries: libxcb-cursoX.so.0" in out.stdout


def _debian_packages_the_plugin_needs() -> set[str]:
    """Every Debian package behind a system library the installed xcb plugin loads (ldd, resolved)."""
    import subprocess

    from localopen.core.machine.system_libraries import PACKAGES

    plugin = xcb_plugin()
    assert plugin is not None
    out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=20).stdout
    names = {line.split()[0] for line in out.splitlines() if "=>" in line}
    return {PACKAGES[name][0] for name in names if name in PACKAGES}


def test_readme_names_every_library_the_window_needs() -> None:
    """For a pip install (the .deb's Depends are read from its bundle when it is built)."""
    root = Path(__file__).parents[1]
    needed = _debian_packages_the_plugin_needs()
    assert {"libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libegl1"} <= needed
    readme = (root / "README.md").read_text(encoding="utf-8")
    apt_line = readme[readme.index("sudo apt install lib") :].split("```")[0]
    for package in needed:
        assert f" {package}" in apt_line, f"README's apt line lacks {package}"


def test_qt_modules_missing_a_library_are_named_even_for_offscreen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a minimal Debian even `import PySide6.QtCore` fails (no libglib) and QtWidgets needs libGL:
    the check reads Qt's own modules with ldd, without importing Qt, before any window kind."""
    from localopen.ui import platform_check

    modules = platform_check.qt_modules()
    assert [m.name.split(".")[0] for m in modules] == ["QtCore", "QtGui", "QtWidgets"]
    gui = next(m for m in modules if m.name.startswith("QtGui"))
    data = gui.read_bytes()
    assert b"libGL.so.1\x00" in data
    doctored = tmp_path / gui.name
    doctored.write_bytes(data.replace(b"libGL.so.1\x00", b"libGX.so.1\x00"))
    # the copy finds PySide6's and Qt's own libraries as the original does
    monkeypatch.setenv("LD_LIBRARY_PATH", f"{gui.parent}{os.pathsep}{gui.parent / 'Qt' / 'lib'}")
    monkeypatch.setattr(platform_check, "qt_modules", lambda: [doctored])
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    problem = platform_check.platform_problem()
    assert problem is not None and "libGX.so.1" in problem and "libQt6" not in problem
    assert "Install what is missing" in problem


def test_a_failed_qt_import_names_the_library() -> None:
    from localopen.ui.platform_check import import_problem

    problem = import_problem(ImportError("libGL.so.1: cannot open shared object file: No such file or directory"))
    assert problem is not None and "sudo apt install libgl1" in problem
    assert import_problem(ImportError("No module named 'PySide6'")) is None


def test_a_display_nothing_answers_on_is_said_in_words(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stale DISPLAY (ssh, a closed session): one plain message with the variable, not Qt's abort."""
    import socket

    from localopen.ui import platform_check

    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":93")
    problem = platform_check.display_problem("")
    assert problem is not None and "DISPLAY=':93'" in problem and "nothing answers" in problem
    # Something listening where DISPLAY points (host:N is TCP port 6000+N) is a display that answers.
    with socket.socket() as listener:
        for n in range(60, 400):
            try:
                listener.bind(("127.0.0.1", 6000 + n))
                break
            except OSError:
                continue
        listener.listen(1)
        monkeypatch.setenv("DISPLAY", f"127.0.0.1:{n}.0")
        assert platform_check.display_problem("") is None
    assert platform_check.display_problem("offscreen") is None  # a headless platform needs no display


def test_versions_are_read_where_a_bundle_has_no_package_metadata(tmp_path, monkeypatch) -> None:
    """A frozen bundle ships modules without their dist-info: diagnostics must not say 'not
    installed' for a module that is there (it reads the version the module states)."""
    from localopen.app.diagnostics import _version
    from localopen.core.versions import package_version

    module = tmp_path / "bundled_thing"
    module.mkdir()
    (module / "__init__.py").write_text('"""A module without metadata."""\n__version__ = "6.10.1"\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert package_version("bundled-thing", "bundled_thing") == "6.10.1"
    assert _version("bundled-thing", "bundled_thing") == "6.10.1"
    assert package_version("no-such-distribution", "no_such_module") is None
    assert _version("no-such-distribution", "no_such_module") == "not installed"
    import PySide6

    assert _version("PySide6", "PySide6") == PySide6.__version__


def test_no_fonts_or_font_configuration_is_said_before_a_window_of_empty_boxes(tmp_path, monkeypatch) -> None:
    """A minimal system without fontconfig's configuration or any font: Qt would open a window whose
    every character is an empty box; the launch check names the packages instead."""
    from localopen.ui import platform_check

    monkeypatch.delenv("FONTCONFIG_FILE", raising=False)
    monkeypatch.delenv("FONTCONFIG_PATH", raising=False)
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setattr(platform_check, "FONTCONFIG_CONF", tmp_path / "fonts.conf")
    monkeypatch.setattr(platform_check, "FONT_FOLDERS", (str(tmp_path / "fonts"),))
    problem = platform_check.platform_problem()
    assert problem is not None and "fontconfig's configuration is missing and no font is installed" in problem
    assert "sudo apt install fontconfig-config fonts-dejavu-core" in problem
    (tmp_path / "fonts.conf").write_text("<fontconfig/>")
    (tmp_path / "fonts" / "truetype").mkdir(parents=True)
    (tmp_path / "fonts" / "truetype" / "Sans.ttf").write_bytes(b"\0")
    assert platform_check.platform_problem() is None


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="no Xvfb here")
def test_the_self_test_opens_its_window_on_the_display_it_has() -> None:
    """With a display, the self-test checks the real X server the app will use, not offscreen."""
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    out = subprocess.run(
        ["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", *exe(), "--self-test"],
        capture_output=True, text=True, timeout=180, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "window: opened and closed on the display (xcb)" in out.stdout, out.stdout
