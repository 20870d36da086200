"""The model store: models loaded once and shared by every face of a process, several at once as
the memory budget allows, the least recently used unloaded first, idle ones unloaded after their
keep-alive. Real engines and tiny models; budgets set from the fit figures, never from timings."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import ollama
import psutil
import pytest

from localopen.app.context import AppContext
from localopen.app.conversation.chat import ChatSession
from localopen.app.model_store import ModelStore, NoRoomError
from localopen.core.estimate.budget import Budget
from localopen.core.machine.devices import Device
from localopen.core.options import LoadOptions, SamplingParams
from localopen.core.store.library_db import import_file
from test_server import Running

from tiny_gguf import REASONING_SPECIAL, write_scripted_llama, write_tiny_llama

pytest.importorskip("llama_cpp")
OPTIONS = LoadOptions(n_ctx=256)
TALK = LoadOptions(n_ctx=2048)  # the talkers' server: room for answers that last a while
USER = [{"role": "user", "content": "hi"}]


class Holder:
    """A face holding a model (the store only needs its identity)."""


def store_with_room(room: int) -> ModelStore:
    """A store whose models may take exactly `room` bytes together: all of a RAM with that much
    free when none of them is loaded (a figure set from the fit, never from this machine's RAM)."""
    return ModelStore(Budget(100), memory=lambda: Device("RAM", "RAM", room, room))


@pytest.fixture(scope="module")
def tinies(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("store")
    return [write_tiny_llama(folder / f"tiny-{n}.gguf", seed=n) for n in range(3)]


@pytest.fixture
def store() -> Iterator[ModelStore]:
    s = store_with_room(2**40)
    yield s
    s.close()


def alive(pid: int | None) -> bool:
    return pid is not None and psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE


def test_one_model_is_loaded_once_for_every_holder(store: ModelStore, tinies: list[Path]) -> None:
    a, b = Holder(), Holder()
    first = store.acquire(tinies[0], OPTIONS, a, "chat")
    second = store.acquire(tinies[0], OPTIONS, b, "server", keep_alive=60)
    assert first is second and len(store.residents()) == 1
    assert store.residents()[0].held_by == ["chat", "server"]
    store.release(first, a)
    store.release(second, b)
    assert store.residents()[0].unloads_in_s is not None  # the server's keep-alive keeps it a while
    pid = store.residents()[0].pid
    assert store.unload(tinies[0]) and not store.residents()
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)


def test_a_model_held_by_no_one_without_keep_alive_unloads_at_once(store: ModelStore, tinies: list[Path]) -> None:
    holder = Holder()
    resident = store.acquire(tinies[0], OPTIONS, holder, "cli")
    store.release(resident, holder)
    assert not store.residents() and resident.unloaded


def test_models_fit_together_within_the_budget_and_the_least_recently_used_goes(tinies: list[Path]) -> None:
    probe = store_with_room(2**40)
    holder = Holder()
    sizes = []
    for path in tinies:
        resident = probe.acquire(path, OPTIONS, holder, "server", keep_alive=-1)
        sizes.append(resident.size)
        probe.release(resident, holder)
    probe.close()
    need = [probe.estimate(str(p), OPTIONS) for p in tinies]
    # Room for the first two as loaded and the third as estimated, not for all three.
    store = store_with_room(sizes[0] + sizes[1] + need[2] - 1)
    try:
        for path in tinies[:2]:
            store.release(store.acquire(path, OPTIONS, holder, "server", keep_alive=-1), holder)
        assert [Path(v.path) for v in store.residents()] == tinies[:2]
        store.release(store.acquire(tinies[0], OPTIONS, holder, "server", keep_alive=-1), holder)  # used again
        store.release(store.acquire(tinies[2], OPTIONS, holder, "server", keep_alive=-1), holder)
        assert {Path(v.path) for v in store.residents()} == {tinies[0], tinies[2]}  # tiny-1 was least recent
        assert store.used() <= store.room()
    finally:
        store.close()


def test_a_model_that_can_never_fit_is_refused_with_the_numbers(tinies: list[Path]) -> None:
    store = store_with_room(1000)
    try:
        with pytest.raises(
            NoRoomError, match=r"needs about .* there is 1.0 KB for models \(100% of 1.0 KB available\), with no other"
        ) as refused:
            store.acquire(tinies[0], OPTIONS, Holder(), "server")
        assert refused.value.ever and refused.value.fitting_ctx is None and not store.residents()
    finally:
        store.close()


def test_a_model_answering_is_never_unloaded_to_make_room(tinies: list[Path]) -> None:
    probe = store_with_room(2**40)
    holder = Holder()
    size = probe.acquire(tinies[0], OPTIONS, holder, "chat").size
    probe.close()
    store = store_with_room(size + probe.estimate(str(tinies[1]), OPTIONS) - 1)
    try:
        busy = store.acquire(tinies[0], OPTIONS, holder, "chat")
        with store.turn(busy, holder):
            with pytest.raises(NoRoomError, match="answering now") as refused:
                store.acquire(tinies[1], OPTIONS, Holder(), "server")
            assert not refused.value.ever
        store.release(store.acquire(tinies[1], OPTIONS, Holder(), "server", keep_alive=-1), holder)  # now it may go
        assert [Path(v.path) for v in store.residents()] == [tinies[1]]
    finally:
        store.close()


def test_an_idle_model_unloads_after_its_keep_alive(store: ModelStore, tinies: list[Path]) -> None:
    holder = Holder()
    resident = store.acquire(tinies[0], OPTIONS, holder, "server", keep_alive=0.5)
    pid = store.residents()[0].pid
    store.release(resident, holder)
    assert store.residents() and store.residents()[0].unloads_in_s is not None
    deadline = time.monotonic() + 10
    while store.residents() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not store.residents()
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)


# --- through the server and the Chat view's session ---------------------------------------------------
@pytest.fixture
def talkers(tmp_path: Path) -> Iterator[Running]:
    """Two models that never stop talking, served together."""
    ctx = AppContext()
    for name, words in (("left", [" one", " two"]), ("right", [" three", " four"])):
        path = write_scripted_llama(tmp_path / f"{name}.gguf", words, REASONING_SPECIAL, loop=True, context_length=4096)
        import_file(ctx.db, path)
    r = Running(ctx, options=TALK)
    yield r
    r.stop()
    ctx.close_models()


def test_two_models_answer_at_once(talkers: Running) -> None:
    times: dict[str, list[float]] = {"left": [], "right": []}
    for model in times:  # both loaded first: a load takes longer than a tiny model's whole answer
        talkers.client.chat.completions.create(model=model, messages=USER, max_tokens=1)

    def ask(model: str) -> None:
        stream = talkers.client.chat.completions.create(model=model, messages=USER, max_tokens=400, stream=True)
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                times[model].append(time.monotonic())

    threads = [threading.Thread(target=ask, args=(m,)) for m in times]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    left, right = times["left"], times["right"]
    assert len(left) > 100 and len(right) > 100
    # Each streamed while the other did: tokens of one arrived between the other's first and last.
    assert any(left[0] < t < left[-1] for t in right) and any(right[0] < t < right[-1] for t in left)
    pids = {v.pid for v in talkers.server.ctx.models.residents()}
    assert len(pids) == 2  # an engine each


def test_the_chat_and_the_server_share_one_engine(talkers: Running) -> None:
    ctx = talkers.server.ctx
    path = next(m.path for m in talkers.server.models() if m.id == "left")
    session = ChatSession(ctx)
    session.load(path, TALK)  # the server's own options: the same loaded model
    try:
        reply = talkers.client.chat.completions.create(model="left", messages=USER, max_tokens=3)
        assert reply.usage.completion_tokens == 3
        loaded = [v for v in ctx.models.residents() if v.path == str(path)]
        assert len(loaded) == 1 and loaded[0].pid == session.engine_pid  # one process for both faces
        assert loaded[0].held_by == ["chat"]  # the server lets go between requests; the chat holds on
        answer = session.answer(USER, SamplingParams(max_tokens=3), None)
        assert answer.completion_tokens == 3
        assert [v.pid for v in ctx.models.residents() if v.path == str(path)] == [session.engine_pid]
    finally:
        session.shutdown()


def test_ollama_keep_alive_unloads_when_asked(talkers: Running) -> None:
    client = ollama.Client(host=f"http://127.0.0.1:{talkers.config.port}")
    client.generate(model="left", prompt="hi", options={"num_predict": 2}, keep_alive="1s")
    assert "left:latest" in {m.model for m in client.ps().models}
    deadline = time.monotonic() + 10
    while "left:latest" in {m.model for m in client.ps().models} and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "left:latest" not in {m.model for m in client.ps().models}  # idle past its 1 s keep-alive
    client.generate(model="right", prompt="hi", options={"num_predict": 2}, keep_alive=-1)
    assert client.ps().models[0].expires_at is None  # kept until room is needed
    stopped = client.generate(model="right", keep_alive=0)  # `ollama stop`
    assert stopped.done_reason == "unload" and not client.ps().models


def test_localopen_ps_shows_what_the_server_holds(talkers: Running, capsys: pytest.CaptureFixture[str]) -> None:
    from localopen.cli.main import run_cli

    talkers.client.chat.completions.create(model="right", messages=USER, max_tokens=2)
    assert run_cli(["ps", "--port", str(talkers.config.port)]) == 0
    out = capsys.readouterr().out
    assert "right:latest" in out and "idle" in out and "unloads at" in out
    assert run_cli(["ps", "--port", "1"]) == 1  # no server there: said in words
    assert "No localopen server answers" in capsys.readouterr().err
