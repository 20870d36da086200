"""Entry point of the engine process, kept free of imports so the parent can name it cheaply.

llama_cpp is imported first, before anything that loads numpy: on some systems numpy loaded
first brings in a conflicting runtime library and llama.cpp then crashes while loading a model
(seen with a CUDA build on Python 3.12 / numpy 2.5).
"""

from __future__ import annotations

from typing import Any


def main(conn: Any, stop_event: Any, pulse: Any = None) -> None:
    import os

    # ggml prints a backtrace through gdb when it aborts (a failed allocation, say): that is llama.cpp's
    # debugging aid, and in the user's terminal only noise; the cause is said in words instead.
    os.environ.setdefault("GGML_NO_BACKTRACE", "1")
    _stderr_to_log()
    _end_with_parent()
    try:
        import llama_cpp  # noqa: F401 - load order matters, see above
    except (ImportError, OSError, RuntimeError) as exc:  # llama-cpp-python raises RuntimeError for a failed dlopen
        _answer_unavailable(conn, exc)
        return

    from localopen.engine.worker import worker_main

    worker_main(conn, stop_event, pulse)


def _stderr_to_log() -> None:
    """What llama.cpp writes straight to stderr (an assertion's line as it aborts) goes to the log
    folder's engine-stderr.log, not over the user's terminal: the client says what happened in words."""
    import os

    from localopen.core.paths import app_paths

    try:
        logs = app_paths().logs
        logs.mkdir(parents=True, exist_ok=True)
        fd = os.open(logs / "engine-stderr.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:
        return  # no log folder to write: stderr stays where it was
    os.dup2(fd, 2)
    os.close(fd)


def _end_with_parent() -> None:
    """The engine ends within a second of the app, even one killed with -9 in the middle of an
    answer (the pipe's end of file is only seen at the next read). A watchdog, not Linux's
    parent-death signal: that one fires when the thread that started the engine ends."""
    import os
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        import psutil

        while True:
            time.sleep(0.5)
            if os.getppid() != parent or not psutil.pid_exists(parent):
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def unavailable_message(error: BaseException) -> str:
    """llama.cpp cannot load here: the missing system library and its install command when known."""
    from localopen.core.machine.system_libraries import install_advice, missing_library

    library = missing_library(error)
    if library:
        return (
            f"llama.cpp cannot run on this system: it needs the system library {library}, which is missing.\n"
            f"Install it, then try again:\n{install_advice([library])}"
        )
    return f"llama.cpp cannot run on this system: {error}"


def _answer_unavailable(conn: Any, error: BaseException) -> None:
    """Answer every request with the reason (the parent then says it in words), until told to stop."""
    import logging

    from localopen.core.logs import setup_logging
    from localopen.core.paths import app_paths
    from localopen.engine.protocol import Error, Shutdown, event_bytes

    setup_logging(app_paths(), "engine.log")  # the traceback goes to the log, never the terminal
    logging.getLogger("localopen.engine").error("llama.cpp cannot be loaded", exc_info=error)
    message = unavailable_message(error)
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if isinstance(request, Shutdown):
            return
        conn.send_bytes(event_bytes(Error(message, "unavailable", request_id=getattr(request, "request_id", 0))))
