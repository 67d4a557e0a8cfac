"""A client's request body, taken under the limits.

:func:`prepare` decides, before any token is fetched, what happens to a body: refused at once
when its announced length is over the limit (413); kept in memory for a resend when
:func:`proxy.policy.replayable` allows it and the :class:`~proxy.limits.ReplayBudget` has
room; else streamed upstream, holding one of the pooled connections that streamed bodies may
use (:func:`proxy.limits.streaming_share`). Either way each read may stall for at most the
idle timeout and the whole body may take at most the total timeout (408), and a streamed
body of unknown length is cut when it grows over the limit (413).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from aiohttp import StreamReader, web

from proxy.config import Config
from proxy.errors import BodyTimeout, BodyTooLarge, ClientFault, UpstreamBusy
from proxy.keys import LIVE, REPLAY_BUDGET, STREAMING_SLOTS
from proxy.limits import BodyWait, ReplayBudget, body_wait
from proxy.policy import replayable

Body = bytes | AsyncIterator[bytes] | None
# The interim answer to Expect: 100-continue (RFC 9110 §15.2.1).
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass(frozen=True)
class BodyLimits:
    idle_seconds: float
    total_seconds: float
    max_bytes: int

    @classmethod
    def of(cls, config: Config) -> BodyLimits:
        return cls(
            config.client_body_timeout_seconds,
            config.client_body_total_timeout_seconds,
            config.max_body_bytes,
        )


async def prepare(request: web.Request, held: contextlib.AsyncExitStack) -> tuple[Body, bool]:
    """The body to send upstream, and whether it can be sent again. What the body holds (a
    share of the replay budget, a streaming connection) is given back when ``held`` closes."""
    config = request.app[LIVE].config
    length = request.content_length
    if length is not None and length > config.max_body_bytes:
        raise BodyTooLarge(f"the body's Content-Length is over {config.max_body_bytes} bytes")
    if not request.body_exists:
        return None, True
    await send_for(request)
    limits = BodyLimits.of(config)
    keep = replayable(length, True, config.replay_limit_bytes) and held.enter_context(
        _reserved(request.app[REPLAY_BUDGET], length or 0)
    )
    if keep:
        return await read(request.content, limits), True
    await held.enter_async_context(_streaming_connection(request.app))
    return chunks(request.content, limits), False


async def send_for(request: web.Request) -> None:
    """Ask a client that waits for it (``Expect: 100-continue``) to send its body: only now,
    once the request has passed every check, so that one refused is not sent for nothing."""
    expect = request.headers.get("Expect")
    if expect is not None and request.version >= (1, 1):
        await request.writer.write(CONTINUE)


async def read(content: StreamReader, limits: BodyLimits) -> bytes:
    return b"".join([chunk async for chunk in chunks(content, limits)])


async def chunks(content: StreamReader, limits: BodyLimits) -> AsyncIterator[bytes]:
    """The body as it arrives (``readany``: whatever is there, without re-cutting it), each
    read bounded by the idle timeout and all of them by the total one."""
    deadline = asyncio.get_running_loop().time() + limits.total_seconds
    received = 0
    while chunk := await _next_chunk(content, deadline, limits):
        received += len(chunk)
        if received > limits.max_bytes:
            raise BodyTooLarge(f"the body grew over {limits.max_bytes} bytes")
        yield chunk


async def _next_chunk(content: StreamReader, deadline: float, limits: BodyLimits) -> bytes:
    wait, bound = body_wait(asyncio.get_running_loop().time(), deadline, limits.idle_seconds)
    try:
        async with asyncio.timeout(wait):
            return await content.readany()
    except TimeoutError:
        if bound is BodyWait.IDLE:
            detail = f"the body stalled: nothing arrived for {limits.idle_seconds:g} s"
        else:
            detail = f"the body was not complete within {limits.total_seconds:g} s"
        raise BodyTimeout(detail) from None


def fault_of(exc: BaseException) -> ClientFault | None:
    """The client's fault behind a failed upstream request, if there is one: aiohttp's client
    wraps what the body raised while it was being sent in a connection error of its own."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ClientFault):
            return cause
        cause = cause.__cause__
    return None


@contextlib.contextmanager
def _reserved(budget: ReplayBudget, size: int) -> Iterator[bool]:
    granted = budget.grant(size)
    try:
        yield granted
    finally:
        if granted:
            budget.release(size)


@contextlib.asynccontextmanager
async def _streaming_connection(app: web.Application) -> AsyncIterator[None]:
    slots, timeout = app[STREAMING_SLOTS], app[LIVE].config.upstream_pool_timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            await slots.acquire()
    except TimeoutError:
        raise UpstreamBusy(
            "no upstream connection came free in time for a streamed body: streamed bodies may "
            "hold half of the pool, and that half is busy",
            retry_after_seconds=1,
        ) from None
    try:
        yield
    finally:
        slots.release()
