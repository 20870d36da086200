"""The models loaded in this process, one engine each, lent to every face that answers with them
(the Chat view, the local server, `localopen chat`): a model is loaded once and handed out, never
loaded twice (GPT4All's model store is the example).

Several models stay loaded while localopen's fit estimate says they fit together within the one
memory rule (core/estimate/budget.py: the `models_memory_percent` setting's share of RAM, what
loaded models hold counted as free); a model that needs room unloads the least recently used
idle ones first (models nobody holds before models a chat holds); a model that can never fit is
refused with the numbers. A model with a keep-alive (the server's, per request as Ollama's
keep_alive) unloads once nobody holds it and it has been idle that long. One request at a time
runs on an engine: two faces using one model take turns.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from localopen.core.errors import LocalopenError
from localopen.core.estimate.budget import Budget
from localopen.core.estimate.memory import human_bytes
from localopen.core.machine.devices import Device, ram_now
from localopen.core.options import LoadOptions
from localopen.core.records import LoadInfo
from localopen.engine.client import Engine
from localopen.engine.load_need import LoadNeed, load_need

log = logging.getLogger("localopen.models")


class NoRoomError(LocalopenError):
    """A model does not fit within the memory budget, now (busy models hold it) or ever."""

    def __init__(self, message: str, *, ever: bool, fitting_ctx: int | None = None) -> None:
        super().__init__(message)
        self.ever = ever  # True: it would not fit even alone
        self.fitting_ctx = fitting_ctx  # then: the largest context that fits alone (None: none)


@dataclass(eq=False)
class Resident:
    """One loaded model: its engine and who uses it."""

    path: str
    options: LoadOptions
    engine: Engine
    info: LoadInfo
    size: int  # bytes it holds: llama.cpp's own buffer report (its estimate before the load)
    lock: threading.Lock = field(default_factory=threading.Lock)  # one request at a time
    holders: dict[int, str] = field(default_factory=dict)  # id(holder) -> its kind: chat, server…
    last_used: float = field(default_factory=time.monotonic)
    # Idle seconds before it unloads once nobody holds it (inf: only to make room); None: at once.
    keep_alive: float | None = None
    answering: object | None = None  # the holder whose request runs now
    unloaded: bool = False

    @property
    def name(self) -> str:
        return Path(self.path).name

    def expires_in(self, now: float | None = None) -> float | None:
        """Seconds until it unloads on its own (None: it does not, now)."""
        if self.keep_alive is None or self.keep_alive == math.inf or self.holders or self.answering is not None:
            return None
        return max(0.0, self.last_used + self.keep_alive - (now if now is not None else time.monotonic()))


@dataclass(frozen=True)
class ResidentView:
    """What `ps` shows of a loaded model."""

    path: str
    n_ctx: int
    size: int
    held_by: list[str]
    busy: bool
    idle_s: float
    unloads_in_s: float | None
    info: LoadInfo
    pid: int | None  # the engine process

    @property
    def label(self) -> str:
        """Who uses it, what it holds, when it goes: for `ps` and the Local server view."""
        who = "answering" if self.busy else f"held by {', '.join(self.held_by)}" if self.held_by else "idle"
        if self.unloads_in_s is None:
            when = "stays loaded while held" if self.held_by or self.busy else "stays until room is needed"
        else:
            minutes, seconds = divmod(int(self.unloads_in_s), 60)
            when = f"unloads in {minutes}:{seconds:02d}"
        return f"{who} · {human_bytes(self.size)} · context {self.n_ctx} · {when}"


def _view(r: Resident, now: float) -> ResidentView:
    process = r.engine.process  # read once: a kill elsewhere sets it to None
    return ResidentView(
        r.path,
        r.info.n_ctx,
        r.size,
        sorted(set(r.holders.values())),
        r.answering is not None,
        round(now - r.last_used, 1),
        r.expires_in(now),
        r.info,
        process.pid if process is not None else None,
    )


class ModelStore:
    def __init__(self, budget: Budget | None = None, memory: Callable[[], Device] | None = None) -> None:
        """`budget`: the share of memory models may take (the settings'); `memory`: this machine's
        RAM with this store's models counted as free (default: as the OS reports it, plus what
        the loaded models hold outside the page cache)."""
        self.budget = budget or Budget()
        self._memory = memory or self._ram_without_models
        self._residents: list[Resident] = []
        self._pending: dict[tuple[str, LoadOptions], int] = {}  # models loading now, and the room they take
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._closed = False
        self._reaper = threading.Thread(target=self._reap_forever, name="model-store", daemon=True)
        self._reaper.start()

    # -- lending -----------------------------------------------------------------------------------
    def acquire(
        self, path: str | Path, options: LoadOptions, holder: object, kind: str, keep_alive: float | None = None
    ) -> Resident:
        """The model loaded for `holder` (loaded now if it is not, making room if needed). An
        explicit keep_alive replaces the model's; the holder keeps it loaded until release()."""
        path = str(path)
        key = (path, options)
        with self._lock:
            while True:
                resident = self._find(path, options)
                if resident is not None or key not in self._pending:
                    break
                self._changed.wait()  # another face is loading this very model: share it
            if resident is None:
                if self._closed:
                    raise LocalopenError("The app is closing.")
                need = load_need(path, options)
                self._make_room(path, need)
                self._pending[key] = need.total  # counted while it loads, outside the lock
        if resident is None:
            resident = self._load(key, holder, kind)
        with self._lock:
            resident.holders[id(holder)] = kind
            resident.last_used = time.monotonic()
            if keep_alive is not None:
                resident.keep_alive = math.inf if keep_alive < 0 else keep_alive
            return resident

    def release(self, resident: Resident, holder: object) -> None:
        """The holder is done with it: unloaded now when nobody else holds it and it has no
        keep-alive, else when its keep-alive runs out or room is needed."""
        with self._lock:
            resident.holders.pop(id(holder), None)
            resident.last_used = time.monotonic()
            if not resident.holders and resident.keep_alive is None:
                self._unload(resident, "no one holds it")
            elif resident.keep_alive is not None:
                self._changed.notify_all()  # the reaper looks again

    @contextmanager
    def turn(self, resident: Resident, holder: object) -> Iterator[Engine]:
        """The engine for one request (a turn: requests on one model run one after another)."""
        with resident.lock:
            if resident.unloaded:
                raise LocalopenError(f"{resident.name} was unloaded to make room; load it again.")
            resident.answering = holder
            try:
                yield resident.engine
            finally:
                resident.answering = None
                resident.last_used = time.monotonic()
                with self._lock:
                    self._changed.notify_all()

    def stop(self, resident: Resident, holder: object) -> None:
        """Stop the holder's request in progress (another holder's request is never stopped)."""
        if resident.answering is holder:
            resident.engine.stop()

    # -- what is loaded ------------------------------------------------------------------------------
    def residents(self) -> list[ResidentView]:
        """What is loaded now. Without the store's lock (a view's timer asks this on the UI thread,
        and the lock is held while an engine is shut down): a copy of the list, read as it is."""
        now = time.monotonic()
        return [_view(r, now) for r in list(self._residents)]

    def used(self) -> int:
        """Bytes held by loaded models and reserved by those loading."""
        with self._lock:
            return sum(r.size for r in self._residents) + sum(self._pending.values())

    def unload(self, path: str | Path) -> bool:
        """Unload a model now if no request runs on it (Ollama's keep_alive 0, a person's choice)."""
        with self._lock:
            for resident in [r for r in self._residents if r.path == str(path)]:
                if resident.lock.acquire(blocking=False):
                    try:
                        self._unload(resident, "asked")
                    finally:
                        resident.lock.release()
                    return True
        return False

    def close(self) -> None:
        """End every engine (the process is ending)."""
        with self._lock:
            self._closed = True
            for resident in list(self._residents):
                self._unload(resident, "the app is closing", kill=True)
            self._changed.notify_all()

    # -- inside --------------------------------------------------------------------------------------
    def _find(self, path: str, options: LoadOptions) -> Resident | None:
        for resident in self._residents:
            if resident.path == path and resident.options == options and resident.engine.alive:
                return resident
        for resident in [r for r in self._residents if not r.engine.alive]:
            self._unload(resident, "its engine ended")
        return None

    def estimate(self, path: str, options: LoadOptions) -> int:
        """Bytes the model will hold at these options: localopen's fit (weights, cache, buffers)."""
        return load_need(path, options).total

    def room(self) -> int:
        """Bytes models may hold together: the budget's share of RAM, the memory this store's
        models hold counted as free (it unloads them to make room)."""
        return self.budget.room(self._memory())

    def _ram_without_models(self) -> Device:
        ram = ram_now()
        held = sum(r.info.memory_actual.unmapped or r.size for r in list(self._residents))
        return dataclasses.replace(ram, free=ram.free + held)

    def _make_room(self, path: str, need: LoadNeed) -> None:
        name = Path(path).name
        memory = self._memory()
        room = self.budget.room(memory)
        if need.total > room:
            fitting = need.largest_context(room)
            hint = f" A context of {fitting} tokens would fit." if fitting else " Use a smaller file."
            raise NoRoomError(
                f"{name} needs about {human_bytes(need.total)} at a context of {need.options.n_ctx} tokens; "
                f"there is {self.budget.in_words(memory)}, with no other model loaded.{hint}",
                ever=True,
                fitting_ctx=fitting,
            )
        # Idle models nobody holds go first, then idle models a chat holds; least recently used first.
        candidates = sorted(self._residents, key=lambda r: (bool(r.holders), r.last_used))
        for resident in candidates:
            if self.used() + need.total <= room:
                return
            if resident.lock.acquire(blocking=False):  # never a model answering now
                try:
                    self._unload(resident, f"room for {name}")
                finally:
                    resident.lock.release()
        used = self.used()
        if used + need.total > room:
            busy = ", ".join([r.name for r in self._residents] + [Path(p).name for p, _ in self._pending])
            raise NoRoomError(
                f"{name} needs about {human_bytes(need.total)}; {human_bytes(used)} of the {human_bytes(room)} "
                f"for models is held by models answering now ({busy}). Try again when they finish.",
                ever=False,
            )

    def _load(self, key: tuple[str, LoadOptions], holder: object, kind: str) -> Resident:
        """Load outside the lock (other models answer and `ps` answers meanwhile); the room was
        reserved by acquire(). It is held from the moment it is listed: never evicted unheld."""
        path, options = key
        engine = Engine()
        try:
            info = engine.load(path, options)
        except BaseException:
            engine.kill()
            with self._lock:
                self._pending.pop(key, None)
                self._changed.notify_all()
            raise
        resident = Resident(path, options, engine, info, info.memory_actual.total or self._pending[key])
        resident.holders[id(holder)] = kind
        with self._lock:
            self._pending.pop(key, None)
            self._residents.append(resident)
            self._changed.notify_all()
        log.info("Loaded %s (%s; %s of %s used)", resident.name, human_bytes(resident.size), self.used(), self.room())
        return resident

    def _unload(self, resident: Resident, why: str, kill: bool = False) -> None:
        if resident in self._residents:
            self._residents.remove(resident)
        resident.unloaded = True
        log.info("Unloading %s: %s", resident.name, why)
        if kill:
            resident.engine.kill()
        else:
            resident.engine.shutdown()

    def _reap_forever(self) -> None:
        """Unload models whose keep-alive ran out; sleeps until the next one is due."""
        with self._lock:
            while not self._closed:
                now = time.monotonic()
                due = [(r.expires_in(now), r) for r in self._residents]
                waits = []
                for left, resident in due:
                    if left is None:
                        continue
                    if left <= 0 and resident.lock.acquire(blocking=False):
                        try:
                            self._unload(resident, "idle past its keep-alive")
                        finally:
                            resident.lock.release()
                    else:
                        waits.append(max(left, 0.05))
                self._changed.wait(min(waits) if waits else None)
