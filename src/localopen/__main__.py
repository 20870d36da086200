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
    if not args:
        from localopen.ui.app import run_app

        return run_app()
    from localopen.cli.main import run_cli

    return run_cli(args)


if __name__ == "__main__":
    sys.exit(main())
