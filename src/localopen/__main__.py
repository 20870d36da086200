"""`localopen`: the desktop app with no arguments, the terminal tool with a subcommand."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    import multiprocessing

    multiprocessing.freeze_support()  # the engine process, inside a frozen bundle
    args = sys.argv[1:] if argv is None else argv
    if args == ["--self-test"]:
        from localopen.selftest import run_self_test

        return run_self_test()
    if not args or (len(args) == 1 and args[0].lower().endswith(".gguf")):
        # `localopen FILE.gguf` (a double-click on a model file): the app opens with it.
        from localopen.ui.app import run_app

        return run_app(open_path=args[0] if args else None)
    from localopen.cli.main import run_cli

    return run_cli(args)


if __name__ == "__main__":
    sys.exit(main())
