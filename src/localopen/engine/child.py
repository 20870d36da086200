"""Entry point of the engine process, kept free of imports so the parent can name it cheaply.

llama_cpp is imported first, before anything that loads numpy: on some systems numpy loaded
first brings in a conflicting runtime library and llama.cpp then crashes while loading a model
(seen with a CUDA build on Python 3.12 / numpy 2.5).
"""

from __future__ import annotations

from typing import Any


def main(conn: Any, stop_event: Any) -> None:
    import llama_cpp  # noqa: F401 - load order matters, see above

    from localopen.engine.worker import worker_main

    worker_main(conn, stop_event)
