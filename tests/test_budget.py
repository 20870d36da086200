"""One memory rule (core/estimate/budget.py): Explore's fit, the model store and the engine's check
before a load name the same largest context for the same file, RAM and share of memory."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from conftest import real_model
from localopen.app.context import AppContext
from localopen.app.model_store import ModelStore, NoRoomError
from localopen.app.usable import usable_here
from localopen.core.estimate.budget import Budget
from localopen.core.estimate.memory import GiB
from localopen.core.gguf.header import GGUFTruncatedError, read_header
from localopen.core.machine.devices import Device
from localopen.core.options import LoadOptions
from localopen.engine import client
from localopen.engine.client import Engine
from localopen.engine.errors import ContextTooLongError

pytest.importorskip("llama_cpp")


class Holder:
    pass


def _zero_data_copy(head: Path, folder: Path) -> Path:
    """The real header with its tensor data as a hole (a sparse file of the full size): what the
    fit reads, without 4.7 GB on disk."""
    copy = folder / head.name.replace(".head", "")
    shutil.copyfile(head, copy)
    try:
        read_header(copy)
    except GGUFTruncatedError as short:
        with copy.open("r+b") as fh:
            fh.truncate(short.expected)
    return copy


@pytest.mark.parametrize("percent", [85, 60])
def test_explore_the_store_and_the_engine_name_the_same_largest_context(
    percent: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """DeepSeek-R1-Distill-Qwen-7B Q4_K_M (its real header: 4.4 GB of weights, 128k training
    context) on a machine with 8 GiB of RAM available (pinned, so the three faces read the same
    RAM): its full context does not fit, and all three name one context that does."""
    seven = _zero_data_copy(real_model("r1-distill-qwen-7b-head"), tmp_path)
    ram = Device("RAM", "RAM", 16 * GiB, 8 * GiB)
    budget = Budget(percent)

    ctx = AppContext()
    ctx.settings = dataclasses.replace(ctx.settings, models_memory_percent=percent)
    profile = dataclasses.replace(ctx.read_profile(), gpus=[], ram_total=ram.total, ram_available=ram.free)
    explore = usable_here.file_row(ctx, usable_here.MachineSnapshot.read(ctx, profile), seven)
    named = explore.largest_context["f16"]
    assert named is not None and 2048 < named < 131072

    store = ModelStore(budget, memory=lambda: ram)
    options = LoadOptions(n_ctx=131072, memory_percent=percent)
    try:
        with pytest.raises(NoRoomError) as refused:
            store.acquire(seven, options, Holder(), "server")
        assert refused.value.ever and refused.value.fitting_ctx == named
        assert f"A context of {named} tokens would fit" in str(refused.value)
    finally:
        store.close()

    monkeypatch.setattr(client, "ram_now", lambda: ram)
    engine = Engine()
    try:
        with pytest.raises(ContextTooLongError) as too_long:
            engine.load(str(seven), options)
        assert too_long.value.fitting_ctx == named
        assert f"({percent}% of 8.6 GB available)" in str(too_long.value)
    finally:
        engine.shutdown()

    # And the context they name is one the rule lets load: the engine's check passes it.
    fits = dataclasses.replace(options, n_ctx=named)
    client.check_room(seven, client.load_need(seven, fits), budget, ram)
    with pytest.raises(ContextTooLongError):
        client.check_room(seven, client.load_need(seven, dataclasses.replace(fits, n_ctx=named + 256)), budget, ram)


def test_the_model_store_counts_what_loaded_models_hold_as_free(tiny_gguf: Path) -> None:
    """Its room is the share of RAM as if none of its models were loaded: loading one does not
    shrink the room for the next (it would be unloaded to make room)."""
    store = ModelStore(Budget(85))
    try:
        before = store.room()
        holder = Holder()
        resident = store.acquire(tiny_gguf, LoadOptions(n_ctx=256), holder, "server", keep_alive=-1)
        assert resident.info.memory_actual.unmapped > 0
        after = store.room()
        assert abs(after - before) < 0.05 * before  # other programs' memory moves a little meanwhile
    finally:
        store.close()
