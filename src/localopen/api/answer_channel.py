"""The pieces of one answer, from the server's engine thread to the HTTP event loop.

Per generated token this is the hot path of every API face, so it is kept lean: the engine thread
appends to a deque and wakes the loop only when no wake-up is pending (one self-pipe write per
batch of pieces, not per piece), and the loop awaits one plain future per wait (no task per piece).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque

from localopen.core.records import AnswerPiece


class ClientGone(Exception):
    """The client closed the connection while its answer streamed."""


class AnswerChannel:
    """Created on the event loop; `put` and `close` from any thread, `next` on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: deque[AnswerPiece | None] = deque()
        self._lock = threading.Lock()
        self._wake_pending = False
        self._waiter: asyncio.Future[None] | None = None

    def put(self, piece: AnswerPiece) -> None:
        self._push(piece)

    def close(self) -> None:
        """The answer has ended (after its last piece): `next` then returns None."""
        self._push(None)

    def _push(self, item: AnswerPiece | None) -> None:
        with self._lock:
            self._items.append(item)
            if self._wake_pending:
                return  # the loop has not woken for the earlier pieces yet: it takes this one too
            self._wake_pending = True
        self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        with self._lock:
            self._wake_pending = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next(self, gone: asyncio.Future[None]) -> AnswerPiece | None:
        """The next piece (None at the answer's end); ClientGone as soon as the client has left."""
        while True:
            if gone.done():
                raise ClientGone
            with self._lock:
                if self._items:
                    return self._items.popleft()
            waiter = self._waiter = self._loop.create_future()

            def wake(_: asyncio.Future[None], waiter: asyncio.Future[None] = waiter) -> None:
                if not waiter.done():
                    waiter.set_result(None)

            gone.add_done_callback(wake)
            try:
                await waiter
            finally:
                gone.remove_done_callback(wake)
                self._waiter = None
