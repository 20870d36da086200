#!/usr/bin/env python3
"""What #28's "faster here" gains on this machine, as a user would measure it: speculative decoding's
speed-up per task (`localopen bench --draft`) and the tuned settings against the defaults
(`localopen tune --no-save`). Run by hand, with nothing else busy:

    python benchmarks/faster_here.py [MODEL] [--draft lookup|DRAFT_MODEL ...] [--tokens 128] [--reps 3]

MODEL is a GGUF file or a library name (default: the Gemma 3 270M test model). Each --draft is
measured in turn (default: lookup). Prints the command's own tables: the plain and drafted speeds,
the speed-up, the share of drafts kept and whether the text was the plain one; then the tuner's
measurements and its choice. No target: the figures go in the notes, "no gain" included.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from llama_cpp_tools import comparison_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default="gemma")
    parser.add_argument("--draft", action="append", help="lookup, or a draft model (repeatable)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-tune", action="store_true", help="only the drafting speed-ups")
    args = parser.parse_args()
    model = str(comparison_model(args.model))
    for draft in args.draft or ["lookup"]:
        print(f"== drafting: {draft}", flush=True)
        command = ["localopen", "bench", model, "--draft", draft, "-n", str(args.tokens), "-r", str(args.reps)]
        if subprocess.run(command).returncode != 0:
            return 1
    if not args.no_tune:
        print("== tune (not saved)", flush=True)
        return subprocess.run(["localopen", "tune", model, "--no-save"]).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
