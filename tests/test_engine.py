"""The engine process with real llama.cpp: tiny models for behaviour, Gemma 270M for timing."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from localopen.core.options import BenchParams, LoadOptions, SamplingParams
from localopen.core.records import ToolCall
from localopen.engine.client import Engine
from localopen.engine.errors import ContextTooLongError, EngineDied, EngineError, NoTemplateError, TemplateError
from localopen.engine.protocol import BenchDone, Done, Error, Token, event_bytes, event_from_bytes

from tiny_gguf import expected_params, write_tiny_llama

pytest.importorskip("llama_cpp")
USER = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def engine(tiny_gguf: Path):
    e = Engine()
    e.start()
    e.load(str(tiny_gguf), LoadOptions(n_ctx=512))
    yield e
    e.shutdown()


# Control texts of the models here (the tiny llama's, Gemma's): none may ever reach an answer.
CONTROL_TEXTS = ("<s>", "</s>", "<unk>", "<bos>", "<eos>", "<pad>", "<end_of_turn>", "<start_of_turn>", "<|im_end|>")


def collect(events) -> tuple[list[str], dict]:
    tokens, stats = [], {}
    for ev in events:
        if isinstance(ev, Token):
            tokens.append(ev.text)
        elif isinstance(ev, Done):
            stats = ev.stats
    text = "".join(tokens)
    assert not any(c in text for c in CONTROL_TEXTS), text
    return tokens, stats


def answered(stats: dict, max_tokens: int) -> bool:
    """The answer ran to max_tokens, or ended early on an end-of-sequence token (random weights can
    sample one): either way a well-formed answer of the right length."""
    if stats.finish_reason == "length":
        return stats.completion_tokens == max_tokens
    return stats.finish_reason == "stop" and 0 <= stats.completion_tokens < max_tokens


def test_load_reports_backend_memory_and_estimate(engine: Engine) -> None:
    info = engine.info
    assert info.backend == "CPU" and info.gpu_warning is None
    assert info.memory_actual.total > 0 and info.memory_estimate.total > 0
    assert info.estimate_error is not None
    assert info.has_chat_template and info.n_ctx == 512
    assert info.load_time_ms > 0


def test_chat_streams_tokens_with_stats(engine: Engine) -> None:
    tokens, stats = collect(engine.chat(USER, SamplingParams(max_tokens=24, seed=7)))
    assert tokens
    assert answered(stats, 24)
    assert stats.prompt_tokens > 10 and stats.prompt_tokens_evaluated > 0
    assert stats.ttft_ms is not None and stats.gen_tps > 0 and stats.prompt_tps > 0
    # Same seed, same answer: sampling parameters reach llama.cpp.
    again, _ = collect(engine.chat(USER, SamplingParams(max_tokens=24, seed=7)))
    assert "".join(again) == "".join(tokens)


def test_requesting_gpu_on_cpu_build_says_so(tiny_gguf: Path) -> None:
    import llama_cpp

    if llama_cpp.llama_supports_gpu_offload():
        pytest.skip("this build has a GPU backend")
    e = Engine()
    try:
        info = e.load(str(tiny_gguf), LoadOptions(n_ctx=256, n_gpu_layers=99))
        assert info.backend == "CPU"
        assert "running on the CPU" in info.gpu_warning
    finally:
        e.shutdown()


@pytest.mark.parametrize(
    "template",
    [
        "{{ cycler.__init__.__globals__.os.system('touch MARKER') }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{% for m in messages %}{{ m.__class__.__init__.__globals__ }}{% endfor %}",
    ],
)
def test_malicious_template_is_stopped_and_executes_nothing(tmp_path: Path, template: str) -> None:
    path = write_tiny_llama(tmp_path / "evil.gguf", chat_template=template.replace("MARKER", str(tmp_path / "pwned")))
    e = Engine()
    try:
        e.load(str(path), LoadOptions(n_ctx=256))
        with pytest.raises(EngineError) as info:
            collect(e.chat(USER))
        assert isinstance(info.value, TemplateError)
        assert "unsafe" in str(info.value) or "failed" in str(info.value)
        assert not (tmp_path / "pwned").exists()
        # The engine survives and a known template still works.
        tokens, stats = collect(e.chat(USER, SamplingParams(max_tokens=4), template="chatml"))
        assert answered(stats, 4)
    finally:
        e.shutdown()


def test_model_without_template_asks_for_a_choice(tmp_path: Path) -> None:
    path = write_tiny_llama(tmp_path / "notemplate.gguf", chat_template=None)
    e = Engine()
    try:
        info = e.load(str(path), LoadOptions(n_ctx=256))
        assert not info.has_chat_template and "completion" in info.template_options
        with pytest.raises(EngineError) as err:
            collect(e.chat(USER))
        assert isinstance(err.value, NoTemplateError) and "will not guess" in str(err.value)
        assert err.value.choice.suggested == "llama3"
        for choice in ("completion", "chatml"):
            _, stats = collect(e.chat(USER, SamplingParams(max_tokens=3), template=choice))
            assert stats.template == choice and answered(stats, 3)
    finally:
        e.shutdown()


def test_long_conversation_drops_oldest_turns_keeps_system(engine: Engine) -> None:
    messages = [{"role": "system", "content": "S" * 20}]
    for i in range(20):
        messages += [
            {"role": "user", "content": f"question {i} " + "x" * 40},
            {"role": "assistant", "content": "answer " + "y" * 40},
        ]
    messages.append({"role": "user", "content": "last question"})
    _, stats = collect(engine.chat(messages, SamplingParams(max_tokens=8)))
    assert stats.dropped_messages > 0
    assert stats.prompt_tokens + 8 <= 512


def test_message_longer_than_context_is_a_clear_error(engine: Engine) -> None:
    with pytest.raises(EngineError) as err:
        collect(engine.chat([{"role": "user", "content": "z" * 2000}]))
    assert isinstance(err.value, ContextTooLongError) and "too long" in str(err.value)
    assert err.value.prompt_tokens is not None and err.value.n_ctx is not None
    _, stats = collect(engine.chat(USER, SamplingParams(max_tokens=2)))  # still usable
    assert answered(stats, 2)


def test_a_late_event_of_an_abandoned_request_is_never_taken_for_the_next_answer(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Request ids: the first answer is abandoned after one token (its events keep coming); the
    second request must get its own tokens and statistics, not the first one's."""
    first = engine.chat(USER, SamplingParams(max_tokens=200, seed=1))
    assert isinstance(next(first), Token)
    first.close()  # abandoned: the worker goes on generating request 1 to its end
    pieces: list[object] = []
    with caplog.at_level(logging.INFO, logger="localopen.engine.client"):
        stats = engine.answer(USER, SamplingParams(max_tokens=3, seed=2), on_piece=pieces.append)
    assert stats.completion_tokens <= 3 and len(pieces) <= 3
    assert stats.finish_reason in ("length", "stop")
    assert "Dropped a late Done" in caplog.text  # at least request 1's statistics came, and were dropped


@pytest.mark.parametrize(
    "event",
    [
        Token("héllo 🌊\n", request_id=7),
        Token("thinking…", True, request_id=2**32 - 1),
        Token("", request_id=3),
        Token("", False, ToolCall("call_1", "get_weather", '{"city": "Oslo"}'), request_id=4),
        Error("the model's template failed", "template", {"why": "x"}, request_id=5),
    ],
)
def test_events_cross_the_pipe_unchanged(event) -> None:
    """A text token is packed by hand (the hot path), everything else pickled: both come back whole."""
    data = event_bytes(event)
    assert event_from_bytes(data) == event
    assert (data[0] == 0x80) == (not isinstance(event, Token) or event.tool_call is not None)


def test_bench_tiny(engine: Engine) -> None:
    results = None
    for ev in engine.bench(BenchParams(n_prompt=32, n_gen=8, reps=3)):
        if isinstance(ev, BenchDone):
            results = ev.results
    assert [r.test for r in results] == ["pp32", "tg8"]
    for r in results:
        assert len(r.samples_ns) == 3 and len(r.samples_ts) == 3
        assert r.avg_ts > 0 and r.stddev_ts >= 0
        assert r.model_n_params > 0 and r.n_batch == 2048 and r.n_ubatch == 512
        assert r.peak_rss_bytes > 0 and r.load_time_ms > 0
        assert r.poll == 50  # on a persistent threadpool, as llama-bench runs


def test_threadpool_is_attached_and_released_with_each_context(tiny_gguf: Path) -> None:
    """One persistent pool per loaded context (as llama-bench and llama-server attach one), freed
    with it: 50 loads and benchmarks leave the engine process with as many threads as after one."""
    import psutil

    engine = Engine()
    try:
        info = engine.load(str(tiny_gguf), LoadOptions(n_ctx=256, n_threads=2))
        assert info.threadpool_threads == 2
        process = psutil.Process(engine.process.pid)
        _, stats = collect(engine.chat(USER, SamplingParams(max_tokens=4), template="chatml"))
        threads_after_one = process.num_threads()
        for i in range(50):
            info = engine.load(str(tiny_gguf), LoadOptions(n_ctx=256 + 8 * (i % 2), n_threads=2))
            assert info.threadpool_threads == 2
            if i % 10 == 0:
                events = list(engine.bench(BenchParams(n_prompt=8, n_gen=4, reps=1)))
                assert isinstance(events[-1], BenchDone) and events[-1].results[-1].poll == 50
        _, stats = collect(engine.chat(USER, SamplingParams(max_tokens=4), template="chatml"))
        assert stats.completion_tokens >= 1
        assert process.num_threads() <= threads_after_one
    finally:
        engine.shutdown()


# --- bad input: one clear message each, and the engine survives -----------------------------------
def _bad_files(tmp_path: Path, tiny_gguf: Path) -> dict[str, tuple[Path, str]]:
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("just some text, not a model " * 20)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(tiny_gguf.read_bytes()[: tiny_gguf.stat().st_size // 2])
    unknown = write_tiny_llama(tmp_path / "alien.gguf", architecture="alienformer")
    return {
        "missing": (tmp_path / "missing.gguf", "No file"),
        "directory": (tmp_path, "folder"),
        "not gguf": (not_gguf, "not a GGUF file"),
        "truncated": (truncated, "truncated"),
        "unknown arch": (unknown, "alienformer"),
    }


def test_bad_model_files(tmp_path: Path, tiny_gguf: Path) -> None:
    e = Engine()
    try:
        for name, (path, message) in _bad_files(tmp_path, tiny_gguf).items():
            with pytest.raises(EngineError) as err:
                e.load(str(path), LoadOptions(n_ctx=256))
            assert message in str(err.value), (name, str(err.value))
            assert not isinstance(err.value, EngineDied), name
        assert e.load(str(tiny_gguf), LoadOptions(n_ctx=256)).name == "tiny-test-llama"
    finally:
        e.shutdown()


def test_context_larger_than_memory_is_refused_before_allocating(tmp_path: Path) -> None:
    big = write_tiny_llama(tmp_path / "bigctx.gguf", extra=None)
    # Raise the training context in a copy so the cap does not hide the request.
    from tiny_gguf import N_CTX_TRAIN

    data = big.read_bytes().replace(N_CTX_TRAIN.to_bytes(4, "little"), (1 << 30).to_bytes(4, "little"), 1)
    big.write_bytes(data)
    e = Engine()
    try:
        with pytest.raises(EngineError) as err:
            e.load(str(big), LoadOptions(n_ctx=1 << 28))
        assert isinstance(err.value, ContextTooLongError) and "available" in str(err.value)
        assert err.value.needed is not None and err.value.needed > err.value.available
        assert e.load(str(big), LoadOptions(n_ctx=256)).n_ctx == 256  # refused by the rule, nothing broken
    finally:
        e.shutdown()


@pytest.mark.slow
def test_engine_killed_mid_stream_keeps_tokens_and_restarts(gemma_path: Path, tiny_gguf: Path) -> None:
    e = Engine()
    try:
        e.load(str(gemma_path), LoadOptions(n_ctx=4096))
        received: list[str] = []
        with pytest.raises(EngineDied) as err:
            # A fixed seed: this one's answer runs long (an unlucky random one can end in 3 tokens).
            for ev in e.chat(USER, SamplingParams(max_tokens=3000, temperature=1.0, seed=0), template="gemma"):
                if isinstance(ev, Token):
                    received.append(ev.text)
                    if len(received) == 3:
                        os.kill(e.process.pid, signal.SIGKILL)
        assert len(received) >= 3
        assert "was killed" in str(err.value) and "gemma" in str(err.value)
        assert not e.alive
        e.start()
        e.load(str(tiny_gguf), LoadOptions(n_ctx=256))
        _, stats = collect(e.chat(USER, SamplingParams(max_tokens=2)))
        assert answered(stats, 2)
    finally:
        e.shutdown()


# --- the real model: stop timing, abort of a long prompt, end-to-end chat --------------------------
@pytest.fixture(scope="module")
def gemma_engine(gemma_path: Path):
    e = Engine()
    e.load(str(gemma_path), LoadOptions(n_ctx=4096))
    yield e
    e.shutdown()


@pytest.mark.slow
def test_gemma_chat_end_to_end(gemma_engine: Engine) -> None:
    messages = [{"role": "user", "content": "Name three colours."}]
    tokens, stats = collect(gemma_engine.chat(messages, SamplingParams(max_tokens=16, seed=1), template="gemma"))
    assert tokens and stats.template == "gemma"
    assert 1 <= stats.completion_tokens <= 16
    assert stats.gen_tps > 1


@pytest.mark.slow
def test_stop_ends_stream_within_one_token(gemma_engine: Engine) -> None:
    received = 0
    at_stop = None
    stats = {}
    for ev in gemma_engine.chat(USER, SamplingParams(max_tokens=2000, temperature=1.0, seed=3), template="gemma"):
        if isinstance(ev, Token):
            received += 1
            if received == 5:
                at_stop = received
                gemma_engine.stop()
        elif isinstance(ev, Done):
            stats = ev.stats
    assert stats.finish_reason == "cancelled"
    assert stats.completion_tokens - at_stop <= 2
    _, again = collect(gemma_engine.chat(USER, SamplingParams(max_tokens=3), template="gemma"))
    assert again.completion_tokens >= 1  # the model stays loaded and usable


@pytest.mark.slow
def test_stop_interrupts_long_prompt_evaluation(gemma_engine: Engine) -> None:
    long_prompt = [{"role": "user", "content": "word " * 3000}]
    timer = threading.Timer(0.5, gemma_engine.stop)
    start = time.monotonic()
    timer.start()
    _, stats = collect(gemma_engine.chat(long_prompt, SamplingParams(max_tokens=4), template="gemma"))
    elapsed = time.monotonic() - start
    assert stats.finish_reason == "cancelled"
    assert elapsed < 3.0  # evaluating ~3000 tokens takes ~10 s here; the abort callback cuts it short
    _, again = collect(gemma_engine.chat(USER, SamplingParams(max_tokens=3), template="gemma"))
    assert again.completion_tokens >= 1


def test_gpu_offload_when_available(tiny_gguf: Path) -> None:
    """Runs only where llama-cpp-python was built with a GPU backend and a GPU is present."""
    import llama_cpp

    from localopen.core.machine.hardware import detect_gpus

    if not (llama_cpp.llama_supports_gpu_offload() and detect_gpus()):
        pytest.skip("no GPU build of llama.cpp, or no GPU")
    e = Engine()
    try:
        info = e.load(str(tiny_gguf), LoadOptions(n_ctx=256, n_gpu_layers=-1))
        assert info.backend != "CPU" and info.gpu_warning is None
        assert info.gpu_layers_offloaded.split("/")[0] == info.gpu_layers_offloaded.split("/")[1]
        _, stats = collect(e.chat(USER, SamplingParams(max_tokens=8)))
        assert answered(stats, 8)
        cpu = e.load(str(tiny_gguf), LoadOptions(n_ctx=256, n_gpu_layers=0))
        assert cpu.backend == "CPU"
    finally:
        e.shutdown()


def test_split_model_loads_through_its_first_part(tmp_path: Path) -> None:
    write_tiny_llama(tmp_path / "split.gguf", split_max_tensors=8)
    parts = sorted(tmp_path.glob("split-*-of-*.gguf"))
    assert len(parts) == 3
    e = Engine()
    try:
        info = e.load(str(parts[0]), LoadOptions(n_ctx=256))
        assert info.split_parts == 3 and info.n_params == expected_params()
        _, stats = collect(e.chat(USER, SamplingParams(max_tokens=4)))
        assert answered(stats, 4)
        parts[2].unlink()
        with pytest.raises(EngineError, match="parts are missing: split-00003-of-00003.gguf"):
            e.load(str(parts[0]), LoadOptions(n_ctx=256))
    finally:
        e.shutdown()


def test_an_engine_whose_llama_cpp_cannot_load_says_which_library_is_missing() -> None:
    """On a minimal Debian llama.cpp's CPU backend needs libgomp.so.1 (OpenMP); without it the
    engine used to exit with code 1 and the app said only that. Now every request is answered with
    the missing library and the command that installs it. (The failed import is simulated with
    the error llama-cpp-python raises: a real one needs a system without libgomp.)"""
    import multiprocessing as mp

    from localopen.core.options import LoadOptions
    from localopen.engine.child import _answer_unavailable, unavailable_message
    from localopen.engine.protocol import Error, Load, Shutdown

    error = RuntimeError(
        "Failed to load shared library '/x/llama_cpp/lib/libllama.so': libgomp.so.1: cannot open shared object file"
    )
    message = unavailable_message(error)
    assert "libgomp.so.1" in message and "sudo apt install libgomp1" in message and "Traceback" not in message
    assert unavailable_message(RuntimeError("something else")).startswith("llama.cpp cannot run on this system")

    parent, child = mp.Pipe()
    request = Load("/m.gguf", LoadOptions())
    request.request_id = 7
    parent.send(request)
    parent.send(Shutdown())
    _answer_unavailable(child, error)
    answer = parent.recv()
    assert isinstance(answer, Error) and answer.kind == "unavailable" and answer.request_id == 7
    assert "libgomp1" in answer.message


APP_THAT_DIES = """
import sys
from localopen.engine.client import Engine
from localopen.core.options import LoadOptions, SamplingParams

if __name__ == "__main__":
    engine = Engine()
    engine.load(sys.argv[1], LoadOptions(n_ctx=4096))
    print(engine.process.pid, flush=True)
    long_prompt = [{"role": "user", "content": "word " * 3000}]  # ~10 s of prompt evaluation here
    for _ in engine.chat(long_prompt, SamplingParams(max_tokens=4), "gemma"):
        pass
"""


@pytest.mark.slow
def test_the_engine_ends_with_its_app_even_killed_mid_prompt(gemma_path: Path, tmp_path: Path) -> None:
    """An app killed with -9 while its engine evaluates a long prompt (it neither reads nor writes
    the pipe then): the engine is gone within seconds, not when the prompt is done."""
    import subprocess
    import sys

    import psutil

    script = tmp_path / "app.py"
    script.write_text(APP_THAT_DIES)
    app = subprocess.Popen([sys.executable, str(script), str(gemma_path)], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(app.stdout.readline())
        time.sleep(1.0)  # evaluating the prompt now
        assert psutil.pid_exists(pid)
        app.kill()
        app.wait(10)
        killed = time.monotonic()
        while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() - killed < 3, "the engine outlived its app"
            time.sleep(0.1)
    finally:
        app.kill()


def test_a_file_only_llama_cpp_rejects_is_damaged_in_every_face(tmp_path: Path) -> None:
    """Duplicate tensor names pass the header reader; llama.cpp's loader refuses them. verify says
    so in llama.cpp's words, and the verdict is 'damaged', never 'does not fit'."""
    from localopen.app.context import AppContext
    from localopen.app.conversation.chat import ChatSession
    from localopen.app.models import library
    from localopen.core.store.library_db import find, import_file

    path = write_tiny_llama(tmp_path / "twin-tensors.gguf")
    data = bytearray(path.read_bytes())
    at = data.find(b"blk.1.attn_q.weight")
    data[at : at + len(b"blk.1.attn_q.weight")] = b"blk.0.attn_q.weight"
    path.write_bytes(bytes(data))
    ctx = AppContext()
    import_file(ctx.db, path)  # the header reader has nothing against it
    result = library.verify(ctx, find(ctx.db, "twin-tensors"))
    assert result.ok is False
    assert "damaged" in result.message and "duplicate tensor name 'blk.0.attn_q.weight'" in result.message
    session = ChatSession(ctx)
    with pytest.raises(EngineError, match="damaged"):
        session.load(path, LoadOptions(n_ctx=256))
    profile = ctx.read_profile(measure=False)
    verdict = library.verdict_of(ctx, find(ctx.db, "twin-tensors"), profile)
    assert verdict is not None and verdict.band == "damaged" and "duplicate tensor name" in verdict.reason
    good = write_tiny_llama(tmp_path / "fine.gguf")
    import_file(ctx.db, good)
    assert "llama.cpp loads fine.gguf" in library.verify(ctx, find(ctx.db, "fine")).message


def test_what_llama_cpp_says_of_a_failed_load_is_read_as_memory_or_damage() -> None:
    from localopen.engine.model_load import _load_error

    path = Path("gemma.gguf")
    listed = ["print_info: rope_finetuned        = unknown", "llama_model_loader: - kv 3: general.type str = model"]
    out_of_memory = _load_error(
        [*listed, "llama_model_load: error loading model: mmap failed: Cannot allocate memory",
         "llama_model_load_from_file_impl: failed to load model"],
        path,
    )  # fmt: skip
    assert "Not enough memory" in str(out_of_memory) and not out_of_memory.damaged
    damaged = _load_error(
        [*listed, "llama_model_load: error loading model: missing tensor 'blk.0.attn_q.weight'",
         "llama_model_load_from_file_impl: failed to load model"],
        path,
    )  # fmt: skip
    assert damaged.damaged and "missing tensor 'blk.0.attn_q.weight'" in str(damaged)  # never print_info's words


@pytest.mark.parametrize("limit_mb", [300, 450, 500, 550, 600, 650])
def test_a_process_short_of_memory_is_told_so_never_that_the_file_is_damaged(
    gemma_path: Path, limit_mb: int, tmp_path: Path
) -> None:
    """A memory limit met at any step of a load (reading the header, mapping the file, a buffer, an
    allocation ggml aborts on) is said as memory; the healthy file is never called damaged, and no
    debugger backtrace or traceback reaches the terminal."""
    import resource
    import subprocess
    import sys

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_mb * 2**20, resource.RLIM_INFINITY))

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "localopen",
            "chat",
            str(gemma_path),
            "--template",
            "gemma",
            "-p",
            "hi",
            "--max-tokens",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limited,
        env={**os.environ, "LOCALOPEN_HOME": str(tmp_path)},
    )
    said = out.stderr
    assert "damaged" not in said and "Traceback" not in said and "Inferior" not in said, said
    assert out.returncode == 0 or "memory" in said.lower(), said
