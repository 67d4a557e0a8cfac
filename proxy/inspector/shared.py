"""One inspector for several workers (``--workers N``): worker 1 keeps it, the others send it
what they record and pass it the page's requests.

Worker 1 serves, on a Unix socket in the run's own directory (mode 0700: reachable by this
user's processes only), a small application (assembled by :func:`proxy.app.inspector_app`):
``POST /record`` takes a batch of the other workers' snapshots, ``/_proxy/NAME`` is the
inspector's endpoint ``NAME`` without the gate, which the worker the request came to has
already passed it through.

Every other worker records as the buffer would (:meth:`Sender.observe`: a
:class:`~proxy.inspector.buffer.Snapshot`, no I/O), sends what gathered
:data:`BATCH_SECONDS` after the first exchange of a batch (an idle worker sends nothing and
does not wake to), and answers a request for the inspector by relaying it to worker 1
(:class:`Relay`), the live stream included. So the page, the exchanges and the HAR export show
every worker's exchanges, numbered in the order worker 1 received them; the page's token panel
is worker 1's token cache (each worker has its own).

Each batch also carries the sender's recent tokens (:meth:`proxy.tokens.TokenCache.recent`):
worker 1 keeps the last few of every worker's (:class:`PeerTokens`), so that its scrubber,
which replaces the secrets it knows wherever they appear, knows the other workers' tokens too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import cast

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from proxy.exchange import Exchange, Headers
from proxy.inspector.buffer import Buffer, Snapshot

logger = logging.getLogger(__name__)

BATCH_SECONDS = 0.05
# The host name of worker 1's socket, in URLs (the Unix socket decides where they go).
ORIGIN = URL("http://inspector")
# Headers of worker 1's answers that belong to that connection, not to the relayed answer.
NOT_RELAYED = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"}
)
# Said when worker 1 cannot be reached, at most once in this many seconds.
WARN_EVERY_SECONDS = 10.0
# The live stream says something every 2 s (routes.STATE_EVERY_SECONDS): a longer silence is
# a worker 1 that is stuck.
READ_SECONDS = 10.0


# Where a snapshot's headers are among its fields.
_HEADERS_AT = tuple(
    Snapshot._fields.index(name)
    for name in (
        "request_headers",
        "upstream_request_headers",
        "upstream_response_headers",
        "response_headers",
    )
)
# A snapshot on its way to worker 1: its fields in order, headers as (name, value) pairs.
Portable = list[object]


def portable(snapshot: Snapshot) -> Portable:
    """``snapshot`` as it travels to worker 1. Headers go as pairs: a request's are a
    read-only view, which pickle refuses, and pairs pickle and unpickle in less than half the
    time a CIMultiDict copy takes (this is paid for every exchange of every other worker)."""
    fields: Portable = list(snapshot)
    for at in _HEADERS_AT:
        headers = cast("Headers | None", fields[at])
        if headers is not None:
            fields[at] = tuple(headers.items())
    return fields


def arrived(fields: Portable) -> Snapshot:
    """What :func:`portable` made, a snapshot again."""
    for at in _HEADERS_AT:
        pairs = cast("tuple[tuple[str, str], ...] | None", fields[at])
        if pairs is not None:
            fields[at] = CIMultiDict(pairs)
    return Snapshot(*fields)  # type: ignore[arg-type]


def session(socket: str) -> aiohttp.ClientSession:
    """A session to worker 1's socket. No bound on the connections (the live streams hold
    one each, and the page's own requests must not wait behind them) nor on a whole answer
    (a live stream is long), only on a silence."""
    return aiohttp.ClientSession(
        connector=aiohttp.UnixConnector(path=socket, limit=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=READ_SECONDS),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


class PeerTokens:
    """Worker 1's memory of the other workers' recent tokens, for its scrubber: the last
    ``per_worker`` of each (as many as the worker's own caches remember, so that a worker
    replaced since keeps its tokens known for the exchanges it left in the buffer)."""

    def __init__(self, per_worker: int) -> None:
        self._per_worker = per_worker
        self._by_worker: dict[int, deque[str]] = {}

    def keep(self, worker: int, tokens: Iterable[str]) -> None:
        recent = self._by_worker.setdefault(worker, deque(maxlen=self._per_worker))
        for token in tokens:
            if token not in recent:
                recent.append(token)

    def __iter__(self) -> Iterator[str]:
        for recent in self._by_worker.values():
            yield from recent


class Sender:
    """An observer of finished exchanges, in a worker other than worker 1: keeps their
    snapshots (the last ``capacity``, as many as worker 1 would keep) until :meth:`run`
    sends them."""

    def __init__(
        self,
        worker: int,
        capacity: int,
        tokens: Callable[[], list[str]],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._worker, self._tokens = worker, tokens
        self._pending: deque[Snapshot] = deque(maxlen=max(capacity, 1))
        # Set while something waits to be sent: an idle worker does not wake to send nothing.
        self._gathered = asyncio.Event()
        self._wall_clock = wall_clock
        self._warned_at = -WARN_EVERY_SECONDS

    def observe(self, exchange: Exchange) -> None:
        if exchange.own:
            return  # as the buffer: the page would watch itself
        self._pending.append(Snapshot.of(0, exchange, self._wall_clock()))
        self._gathered.set()

    async def run(self, client: aiohttp.ClientSession) -> None:
        """Send what gathered to worker 1, :data:`BATCH_SECONDS` after the first exchange of
        a batch, until cancelled."""
        while True:
            await self._gathered.wait()
            await asyncio.sleep(BATCH_SECONDS)
            await self.send(client)

    async def send(self, client: aiohttp.ClientSession, *, warn: bool = True) -> None:
        """Send what gathered. ``warn``: say so when worker 1 cannot be reached (not at
        shutdown, when worker 1 may have stopped first)."""
        if not self._pending:
            return
        batch = [portable(snapshot) for snapshot in self._pending]
        self._pending.clear()
        self._gathered.clear()
        sent = pickle.dumps((self._worker, self._tokens(), batch))
        try:
            async with client.post(ORIGIN / "record", data=sent) as answer:
                answer.raise_for_status()
        except (aiohttp.ClientError, OSError) as exc:
            # Worker 1 is restarting, or gone: these exchanges are not in the inspector.
            now = time.monotonic()
            if warn and now - self._warned_at >= WARN_EVERY_SECONDS:
                self._warned_at = now
                logger.warning(
                    "the inspector's worker cannot be reached (%s): %d exchanges not recorded",
                    type(exc).__name__,
                    len(batch),
                )


def record(
    buffer: Buffer, peers: PeerTokens
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Worker 1's ``POST /record``: keep a batch from another worker, and its tokens."""

    async def taken(request: web.Request) -> web.StreamResponse:
        # Only this user's processes reach the socket: the other workers of this run.
        worker, tokens, batch = pickle.loads(await request.read())  # noqa: S301
        peers.keep(worker, tokens)
        for fields in batch:
            buffer.take(arrived(fields))
        return web.Response(status=204)

    return taken


class Relay:
    """In a worker other than worker 1: the inspector's endpoints, answered by worker 1."""

    def __init__(self, client: aiohttp.ClientSession) -> None:
        self._client = client
        self._open: set[aiohttp.ClientResponse] = set()

    async def pass_on(self, request: web.Request, name: str) -> web.StreamResponse:
        url = (ORIGIN / "_proxy" / name).with_query(request.query)
        headers = {
            key: request.headers[key] for key in ("Last-Event-ID",) if key in request.headers
        }
        try:
            answer = await self._client.request(request.method, url, headers=headers)
        except (aiohttp.ClientError, OSError) as exc:
            raise web.HTTPServiceUnavailable(
                text="the inspector is kept by worker 1, which is not answering; try again"
            ) from exc
        self._open.add(answer)
        try:
            response = web.StreamResponse(status=answer.status, reason=answer.reason)
            for key, value in answer.headers.items():
                if key.lower() not in NOT_RELAYED:
                    response.headers.add(key, value)
            await response.prepare(request)
            with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                async for chunk in answer.content.iter_any():
                    await response.write(chunk)
            return response
        finally:
            self._open.discard(answer)
            answer.release()

    def close(self) -> None:
        """``on_shutdown``: end the relayed live streams, which would hold shutdown up."""
        for answer in list(self._open):
            answer.close()
