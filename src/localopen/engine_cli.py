"""Terminal commands that run models (chat, bench, results); filled in by the engine."""

from __future__ import annotations

import argparse


def add_engine_commands(sub: argparse._SubParsersAction) -> None:
    """No engine commands yet."""
