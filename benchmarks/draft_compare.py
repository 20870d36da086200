#!/usr/bin/env python3
"""Speculative decoding with a real draft pair, localopen against llama.cpp's own llama-server
(`-md --spec-type draft-simple`, up to 16 drafted tokens, its default --draft-p-min), each against
itself without a draft: the code-edit completion (app/measure/draft_bench's 25-line function with
one name changed), temperature 0, streamed /v1/completions, tokens per second after the first as
the client sees them. Run by hand, with nothing else busy (four servers load one after another;
a few minutes on two cores):

    python benchmarks/draft_compare.py MODEL.gguf DRAFT.gguf [--rounds 3] [--tokens 256] [--build]

For each server it prints the plain and drafted speeds (medians over alternated rounds), the
speed-up and whether the drafted text was the plain one. On a CPU where checking a batch of drafts
costs nearly as much as decoding them one at a time, neither gains: localopen then stops drafting
(and says so) instead of running slower; llama-server goes on drafting (0.49x here, 2-core EPYC).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from llama_cpp_tools import build_tool, tool_path
from server_compare import Answer, ask, free_port, physical_cores, start_llama_server, wait_ready

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from localopen.app.measure.draft_bench import TASKS  # noqa: E402

PROMPT = TASKS["code"]


def start(
    name: str, binary: Path, model: Path, draft: Path | None, args: argparse.Namespace, home: str
) -> tuple[subprocess.Popen[bytes], int]:
    """One server, plain or with its draft model, ready: (its process, its port)."""
    port = free_port()
    if name == "llama-server" and draft is None:
        process = start_llama_server(binary, model, port, args)
    elif name == "llama-server":
        # -md alone loads the draft model but does not draft: the type must be named.
        cmd = [str(binary), "-m", str(model), "-md", str(draft), "--spec-type", "draft-simple"]
        cmd += ["--host", "127.0.0.1", "--port", str(port), "-c", str(args.ctx), "-np", "1"]
        cmd += ["-t", str(args.threads), "-tb", str(args.threads), "-ngl", "0", "-ngld", "0", "--no-warmup"]
        cmd += ["-fa", "off", "--spec-draft-n-max", "16"]
        process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        cmd = [sys.executable, "-m", "localopen", "serve", str(model), "--port", str(port)]
        cmd += ["--ctx", str(args.ctx), "--threads", str(args.threads)]
        cmd += ["--draft", str(draft) if draft is not None else "off"]
        env = {**os.environ, "LOCALOPEN_HOME": home}
        process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, process)
    return process, port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("draft", type=Path)
    parser.add_argument("--build", action="store_true", help="build llama-server if it is not built yet")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("-t", "--threads", type=int, default=physical_cores())
    args = parser.parse_args()
    if not (args.build or tool_path("llama-server").exists()):
        parser.error("llama-server is not built: pass --build (a few minutes)")
    binary = build_tool("llama-server")
    rows = []
    with tempfile.TemporaryDirectory(prefix="localopen-draft-compare-") as home:
        for name in ("llama-server", "localopen"):
            answers: dict[str, list[Answer]] = {"plain": [], "drafted": []}
            servers = {}
            try:
                for way, draft in (("plain", None), ("drafted", args.draft)):
                    servers[way] = start(name, binary, args.model, draft, args, home)
                    ask(servers[way][1], 8, PROMPT, args.model.stem)  # warm-up
                for i in range(args.rounds):
                    for way in ("plain", "drafted") if i % 2 == 0 else ("drafted", "plain"):
                        answers[way].append(ask(servers[way][1], args.tokens, PROMPT, args.model.stem))
                    print(f"{name} round {i + 1}: plain {answers['plain'][-1].gen_tps:.2f} t/s, "
                          f"drafted {answers['drafted'][-1].gen_tps:.2f} t/s", flush=True)  # fmt: skip
            finally:
                for process, _ in servers.values():
                    process.terminate()
                    try:
                        process.wait(15)
                    except subprocess.TimeoutExpired:
                        process.kill()
            plain = statistics.median(a.gen_tps for a in answers["plain"])
            drafted = statistics.median(a.gen_tps for a in answers["drafted"])
            same = all(d.text == answers["plain"][0].text for d in answers["drafted"])
            rows.append((name, plain, drafted, same))
    print(f"\n{args.model.name} drafted by {args.draft.name}, {args.threads} threads, {args.tokens} tokens, code edit")
    print(f"{'':14} {'plain t/s':>10} {'drafted t/s':>12} {'speed-up':>9} {'same text':>10}")
    for name, plain, drafted, same in rows:
        print(f"{name:14} {plain:10.2f} {drafted:12.2f} {drafted / plain:8.2f}x {'yes' if same else 'NO':>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
