"""`localopen --self-test`: does this install work here? (also inside the installed bundle)

Loads the tiny model shipped in resources through the engine process, streams a few tokens,
opens and closes the main window offscreen, checks that the llama.cpp build does not use CPU
instructions this processor lacks ("illegal instruction"), and prints a short report.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from localopen import __version__


def run_self_test() -> int:
    lines = [
        f"localopen {__version__} self-test",
        f"python {platform.python_version()} on {platform.system()} {platform.release()} ({platform.machine()})",
    ]
    home = tempfile.mkdtemp(prefix="localopen-selftest-")
    os.environ["LOCALOPEN_HOME"] = home  # never touch the user's files
    os.environ["HF_HUB_OFFLINE"] = "1"
    # Warnings (Qt's offscreen plugin has some) go to the test home's log, as the app's go to its
    # own; without a handler Python would print them bare on the terminal.
    from localopen.core.logs import setup_logging
    from localopen.core.paths import app_paths

    log_file = setup_logging(app_paths())
    try:
        from localopen.core.machine.hardware import read_profile

        hw = read_profile(Path(home), None, measure=False)
        lines.append(f"cpu: {hw.cpu_model}; features {', '.join(hw.simd) or 'unknown'}")
        lines.append(f"llama.cpp backends: {', '.join(hw.llama_backends) or 'none'}")
        from localopen.app import cpu_kernels

        lines.append(f"llama.cpp CPU kernels: {cpu_kernels.in_words()}")
        _engine_check(lines)
        _server_check(lines)
        _window_check(lines)
    except Exception as exc:  # noqa: BLE001 - the report must say what failed, in words
        logging.getLogger("localopen.selftest").exception("Self-test failed")
        lines.append(f"FAILED: {exc}")
        if log_file is not None:
            lines.append(f"log: {log_file}")
        print("\n".join(lines))
        return 1
    lines.append("self-test passed")
    if log_file is not None:
        lines.append(f"log: {log_file}")
    print("\n".join(lines))
    return 0


def _engine_check(lines: list[str], child: Callable[..., None] | None = None) -> None:
    """The engine as a chat runs it: the tiny model's chat through its template, then a model with
    quantized weights (the types llama.cpp's fast CPU kernels take: AMX, repacking) decoded with the
    kernels this machine's canary chose, so the self-test fails wherever a chat would crash."""
    from localopen.core.machine import cpu_features
    from localopen.core.options import LoadOptions, SamplingParams
    from localopen.engine.canary import write_canary_model
    from localopen.engine.client import Engine
    from localopen.engine.errors import EngineDied

    model = resources.files("localopen.resources").joinpath("selftest-tiny.gguf")
    folder = Path(tempfile.mkdtemp(prefix="localopen-selftest-"))
    with resources.as_file(model) as path:
        engine = Engine(child)
        try:
            start = time.perf_counter()
            info = engine.load(str(path), LoadOptions(n_ctx=256, n_threads=1), timeout=120)
            missing = cpu_features.missing(info.system_info, cpu_features.read())
            if missing:
                raise RuntimeError(
                    f"this llama.cpp build uses {', '.join(missing)}, which this processor lacks: it would crash "
                    "with 'illegal instruction'. Install a build for older CPUs (see the README)."
                )
            stats = engine.answer([{"role": "user", "content": "self-test"}], SamplingParams(max_tokens=8, seed=1))
            if stats.completion_tokens < 1:
                raise RuntimeError("the engine streamed no token")
            lines.append(
                f"engine: llama-cpp-python {info.llama_cpp_version}, backend {info.backend}, "
                f"loaded in {info.load_time_ms:.0f} ms, streamed {stats.completion_tokens} tokens "
                f"in {(time.perf_counter() - start) * 1000:.0f} ms"
            )
            lines.append(
                f"llama.cpp CPU features used: {', '.join(sorted(cpu_features.build_features(info.system_info)))}"
            )
            quantized = write_canary_model(folder / "quantized.gguf")
            info = engine.load(str(quantized), LoadOptions(n_ctx=256), timeout=120)
            kernels = ", ".join(info.kernels) or "plain CPU kernels"
            try:
                stats = engine.answer(
                    [{"role": "user", "content": "self-test"}],
                    SamplingParams(max_tokens=4, seed=1, temperature=0.0),
                    template="chatml",
                )
            except EngineDied as exc:
                raise RuntimeError(
                    f"decoding quantized weights with llama.cpp's {kernels} kernels {exc.how}: every model "
                    "with such weights would crash the same way"
                ) from exc
            notice = f" ({stats.notice})" if stats.notice else ""
            lines.append(
                f"quantized weights (Q4_0, Q8_0, Q4_K, Q6_K): decoded {stats.completion_tokens} tokens with "
                f"{', '.join(engine.info.kernels if engine.info else []) or 'plain CPU kernels'}{notice}"
            )
        finally:
            engine.shutdown()
            shutil.rmtree(folder, ignore_errors=True)


def _server_check(lines: list[str]) -> None:
    """The local server's HTTP stack (uvicorn loads parts of itself by name: a bundle can miss them)."""
    import json
    import socket
    import urllib.request

    from localopen.api.server import ApiApp, ServerConfig, ServerThread
    from localopen.app.context import AppContext
    from localopen.app.serving import ModelServer
    from localopen.core.options import LoadOptions
    from localopen.core.store.library_db import import_file

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    model = resources.files("localopen.resources").joinpath("selftest-tiny.gguf")
    with resources.as_file(model) as path:
        ctx = AppContext()
        served = import_file(ctx.db, path)
        server = ModelServer(ctx, LoadOptions(n_ctx=256, n_threads=1))
        http = ServerThread(ApiApp(server, ServerConfig("127.0.0.1", port)))
        try:
            http.start()
            start = time.perf_counter()
            body = json.dumps(
                {"model": served.name, "messages": [{"role": "user", "content": "self-test"}], "max_tokens": 4}
            ).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/chat/completions", body, {"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - loopback only
                usage = json.load(response)["usage"]
            lines.append(
                f"server: OpenAI API on loopback answered {usage['completion_tokens']} tokens in "
                f"{(time.perf_counter() - start) * 1000:.0f} ms"
            )
        finally:
            http.stop()
            server.close()


def _desktop_check(lines: list[str]) -> None:
    """Whether a real window could open here: the X11 plugin's system libraries (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    from localopen.core.machine.system_libraries import install_advice
    from localopen.ui.platform_check import missing_libraries, qt_modules, xcb_plugin

    plugin = xcb_plugin()
    missing = missing_libraries(*qt_modules(), *([plugin] if plugin else []))
    if missing:
        lines.append(
            f"desktop: WARNING, Qt windows need missing system libraries: {', '.join(missing)}\n"
            f"{install_advice(missing)}"
        )
    else:
        lines.append("desktop: Qt's and its X11 platform plugin's system libraries are present")


def _window_check(lines: list[str]) -> None:
    """The main window opened where the app will open it: on this session's display when there is
    one (so the real X or Wayland server is checked), offscreen only without one."""
    _desktop_check(lines)
    if not os.environ.get("QT_QPA_PLATFORM") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from localopen.ui.platform_check import platform_problem

    problem = platform_problem()
    if problem is not None:  # Qt would abort without a word
        raise RuntimeError(problem)
    from PySide6.QtCore import QSettings
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from localopen.ui import qt_messages

    qt_messages.install()
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setOrganizationName("localopen-selftest")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, os.environ["LOCALOPEN_HOME"])
    from localopen.ui.main_window import MainWindow
    from localopen.ui.services import Services

    start = time.perf_counter()
    window = MainWindow(Services())
    window.show()
    app.processEvents()
    if not window.isVisible():
        raise RuntimeError("the main window did not open")
    shown = (time.perf_counter() - start) * 1000
    _rich_text_check()
    window.close()
    app.processEvents()
    platform = QGuiApplication.platformName()
    where = "offscreen" if platform == "offscreen" else f"on the display ({platform})"
    lines.append(
        f"window: opened and closed {where} ({shown:.0f} ms to show, Qt {_qt_version()}); "
        "an answer's markdown and code rendered"
    )


def _rich_text_check() -> None:
    """An answer with code renders: the markdown reader and Pygments' lexers (loaded by name, which
    a bundle can miss) are there."""
    from localopen.ui.chat import rich_text

    rendered = rich_text.render("# Title\n\n```python\ndef f():\n    return 1\n```", rich_text.LIGHT)
    highlighted = "font-weight: bold" in rendered.html  # Pygments' python lexer marked `def`
    if "<h1>" not in rendered.html or not highlighted or rendered.code != ["def f():\n    return 1"]:
        raise RuntimeError("answers cannot be rendered: the markdown reader or Pygments' lexers are missing")


def _qt_version() -> str:
    from PySide6.QtCore import qVersion

    return qVersion()
