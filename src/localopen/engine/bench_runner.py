"""The llama-bench protocol, run on the engine's loaded model through llama.cpp's C API.

Mirrors llama.cpp's tools/llama-bench: one fresh context per test with n_ctx = n_prompt +
n_gen, swa_full off, flash attention 'auto' by default; a warm-up run; then r repetitions,
each after clearing the KV cache; prompt tokens in n_batch chunks, generation one token at
a time with a synchronize after each; random token ids, BOS first when the model adds one.
"""

from __future__ import annotations

import ctypes
import dataclasses
import datetime as dt
import random
import time
from collections.abc import Callable
from typing import Any

from localopen.core.machine.hardware import physical_cores
from localopen.core.options import BenchParams
from localopen.core.records import BenchResult
from localopen.core.report.benchstats import mean, stdev, tokens_per_second
from localopen.engine import llama_log
from localopen.engine.threadpool import threadpool_for

FLASH_ATTN = {"auto": -1, "off": 0, "on": 1}


def ggml_type(name: str) -> int:
    """ggml's number for a KV-cache type name (f16, q8_0, q4_0…)."""
    import llama_cpp

    return int(getattr(llama_cpp, f"GGML_TYPE_{name.upper()}", 30 if name == "bf16" else 1))


class BenchAborted(Exception):
    pass


def _decode(llama_cpp: Any, ctx: Any, tokens: list[int]) -> None:
    arr = (llama_cpp.llama_token * len(tokens))(*tokens)
    res = llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(arr, len(tokens)))
    if res == 2:
        raise BenchAborted()
    if res != 0:
        raise RuntimeError(f"llama_decode failed with code {res}")


def _test_prompt(llama_cpp: Any, ctx: Any, vocab: Any, n_prompt: int, n_batch: int, rng: random.Random) -> None:
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    add_bos = llama_cpp.llama_vocab_get_add_bos(vocab)
    done = 0
    while done < n_prompt:
        n = min(n_prompt - done, n_batch)
        first = llama_cpp.llama_vocab_bos(vocab) if done == 0 and add_bos else rng.randrange(n_vocab)
        _decode(llama_cpp, ctx, [first] + [rng.randrange(n_vocab) for _ in range(n - 1)])
        done += n
    llama_cpp.llama_synchronize(ctx)


def _test_gen(llama_cpp: Any, ctx: Any, vocab: Any, n_gen: int, rng: random.Random, stop_event: Any) -> None:
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    token = llama_cpp.llama_vocab_bos(vocab) if llama_cpp.llama_vocab_get_add_bos(vocab) else rng.randrange(n_vocab)
    for _ in range(n_gen):
        if stop_event.is_set():  # no abort callback here (see run_bench): asked between tokens
            raise BenchAborted()
        _decode(llama_cpp, ctx, [token])
        llama_cpp.llama_synchronize(ctx)
        token = rng.randrange(n_vocab)


BENCH_MEMORY = ("weights", "kv_cache", "compute", "output", "total")  # a result's buffer report


def run_bench(
    llm: Any,
    params: BenchParams,
    stop_event: Any,
    progress: Callable[[str], None] | None = None,
    log_lines: list[str] | None = None,
    weights: int = 0,
    finished: Callable[[BenchResult], None] | None = None,
) -> tuple[list[BenchResult], bool]:
    """Run pp{n_prompt} and tg{n_gen} as llama-bench does: (one result per finished test, aborted).
    log_lines: llama.cpp's log as it grows; each test's context's buffers are read from it and
    reported with the model's weights (bytes). finished hears each test's result as it ends."""
    import llama_cpp

    model = llm.model
    vocab = llama_cpp.llama_model_get_vocab(model)
    threads = params.n_threads or physical_cores()
    desc = ctypes.create_string_buffer(256)
    llama_cpp.llama_model_desc(model, desc, ctypes.sizeof(desc))
    tests = [(params.n_prompt, 0)] if params.n_prompt > 0 else []
    tests += [(0, params.n_gen)] if params.n_gen > 0 else []
    results: list[BenchResult] = []

    @llama_cpp.ggml_abort_callback
    def abort(_data: ctypes.c_void_p) -> bool:
        return bool(stop_event.is_set())

    for n_prompt, n_gen in tests:
        name = f"pp{n_prompt}" if n_prompt else f"tg{n_gen}"
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = n_prompt + n_gen
        cparams.n_batch = params.n_batch
        cparams.n_ubatch = params.n_ubatch
        cparams.flash_attn_type = FLASH_ATTN[params.flash_attn]
        cparams.type_k = ggml_type(params.type_k)
        cparams.type_v = ggml_type(params.type_v)
        cparams.swa_full = False
        cparams.n_threads = threads
        cparams.n_threads_batch = threads

        if n_prompt:
            # Stop ends a prompt batch at once. Not for generation: ggml calls the callback after
            # every graph node (some 400 Python calls a token) and llama-bench has none.
            cparams.abort_callback = abort
        seen = len(log_lines) if log_lines is not None else 0
        ctx = llama_cpp.llama_init_from_model(model, cparams)
        if not ctx:
            raise RuntimeError(f"llama.cpp could not create a context for {name}")
        buffers = llama_log.parse_memory(log_lines[seen:]) if log_lines is not None else None
        if buffers is not None:
            buffers = dataclasses.replace(buffers, weights=weights, by_device={})
        # A persistent threadpool, as llama-bench attaches one (tools/llama-bench/llama-bench.cpp).
        pool = threadpool_for(ctx, threads)
        rng = random.Random(1234)
        samples: list[int] = []
        aborted = False
        try:
            llama_cpp.llama_set_n_threads(ctx, threads, threads)
            if progress:
                progress(f"{name}: warm-up")
            if n_prompt:
                warmup = min(params.warmup_prompt or n_prompt, n_prompt)
                _test_prompt(llama_cpp, ctx, vocab, warmup, params.n_batch, rng)
            if n_gen:
                _test_gen(llama_cpp, ctx, vocab, 1, rng, stop_event)
            for rep in range(params.reps):
                if stop_event.is_set():
                    raise BenchAborted()
                llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), False)
                start = time.perf_counter_ns()
                if n_prompt:
                    _test_prompt(llama_cpp, ctx, vocab, n_prompt, params.n_batch, rng)
                if n_gen:
                    _test_gen(llama_cpp, ctx, vocab, n_gen, rng, stop_event)
                samples.append(time.perf_counter_ns() - start)
                if progress:
                    progress(f"{name}: run {rep + 1}/{params.reps}")
        except BenchAborted:
            aborted = True
        finally:
            if pool is not None:
                pool.detach()
            llama_cpp.llama_free(ctx)
            if pool is not None:
                pool.free()
        if aborted:
            return results, True
        ts = tokens_per_second(samples, n_prompt + n_gen)
        avg_ns = mean([float(x) for x in samples])
        results.append(
            BenchResult(
                poll=pool.poll if pool is not None else None,
                test=name,
                model_filename=llm.model_path,
                model_type=desc.value.decode(errors="replace"),
                model_size=llama_cpp.llama_model_size(model),
                model_n_params=llama_cpp.llama_model_n_params(model),
                n_batch=params.n_batch,
                n_ubatch=params.n_ubatch,
                n_threads=threads,
                type_k=params.type_k,
                type_v=params.type_v,
                flash_attn=params.flash_attn,
                n_prompt=n_prompt,
                n_gen=n_gen,
                n_depth=0,
                test_time=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                avg_ns=int(avg_ns),
                stddev_ns=int(stdev([float(x) for x in samples])),
                avg_ts=mean(ts),
                stddev_ts=stdev(ts),
                samples_ns=samples,
                samples_ts=ts,
                # For a prompt test, the time to first token of an n_prompt-token prompt is its processing time.
                ttft_ms=round(avg_ns / 1e6, 2) if n_prompt else None,
                memory={k: v for k, v in buffers.to_dict().items() if k in BENCH_MEMORY} if buffers else None,
            )
        )
        if finished is not None:
            finished(results[-1])
    return results, False
