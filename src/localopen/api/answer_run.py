"""One answer in flight for an API face, whatever its shape: submitted to the ModelServer, its first
piece awaited (a request that fails before it gets an HTTP error status, not a 200 stream), then its
pieces as they come. A client that leaves, streamed or not, stops it within one token."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import StreamingResponse

from localopen.api.answer_channel import AnswerChannel, ClientGone
from localopen.api.request_body import disconnected
from localopen.app.serving import ApiCall, ModelServer, ServerRequest, ServingError
from localopen.core.records import AnswerPiece, AnswerStats

log = logging.getLogger("localopen.server")


def event_stream(events: AsyncIterator[str]) -> StreamingResponse:
    """Server-sent events, never buffered by a proxy (OpenAI's, the Responses API's, Anthropic's)."""
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)


class AnswerRun:
    def __init__(
        self,
        server: ModelServer,
        job: ServerRequest,
        channel: AnswerChannel,
        gone: asyncio.Future[None],
        first: AnswerPiece | None,
    ) -> None:
        self.server, self.job, self._channel, self._gone, self._first = server, job, channel, gone, first

    @classmethod
    async def start(cls, server: ModelServer, request: Request, call: ApiCall) -> AnswerRun:
        """The answer begun: ServingError when it fails before its first piece, ClientGone when the
        client left before it (the job is then cancelled)."""
        channel = AnswerChannel(asyncio.get_running_loop())
        # on_done comes after the last piece, from the same thread
        job = await asyncio.to_thread(server.submit, call, channel.put, channel.close)
        gone = disconnected(request)
        try:
            first = await channel.next(gone)
        except BaseException as exc:  # the client left (or the task was cancelled): free the server
            gone.cancel()
            server.cancel(job)
            if isinstance(exc, ClientGone):
                log.info("Request %s: the client went away before its answer began", job.record.id)
            raise
        if first is None and job.error is not None:
            gone.cancel()
            raise job.error
        return cls(server, job, channel, gone, first)

    @property
    def call(self) -> ApiCall:
        assert isinstance(self.job.call, ApiCall)
        return self.job.call

    @property
    def model_id(self) -> str:
        assert self.job.model is not None
        return self.job.model.id

    @property
    def stats(self) -> AnswerStats:
        """After the pieces: how the answer went (raises the job's error if it failed midway)."""
        if self.job.error is not None:
            raise self.job.error
        assert self.job.stats is not None
        return self.job.stats

    @property
    def error(self) -> ServingError | None:
        return self.job.error

    async def pieces(self) -> AsyncIterator[AnswerPiece]:
        """The answer's pieces in order; ClientGone as soon as the client has left."""
        piece = self._first
        while piece is not None:
            yield piece
            piece = await self._channel.next(self._gone)

    def end(self, finished: bool) -> None:
        """Call once, when the face is done: an unfinished answer is stopped (a client that left).
        No await here: Starlette may be cancelling the face, and cancel() only sets flags."""
        self._gone.cancel()
        if not finished:
            self.server.cancel(self.job)

    async def collect(self) -> list[AnswerPiece]:
        """Every piece, for a non-streamed response; ClientGone (the answer stopped) if the client left."""
        out: list[AnswerPiece] = []
        finished = False
        try:
            async for piece in self.pieces():
                out.append(piece)
            finished = True
        except ClientGone:
            log.info("Request %s: the client went away; its answer stops", self.job.record.id)
            raise
        finally:
            self.end(finished)
        return out
