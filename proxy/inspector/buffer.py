"""The inspector's memory: the last N exchanges, as immutable snapshots, in a ring buffer.

:meth:`Buffer.observe` is an observer of finished exchanges (:mod:`proxy.exchange`). It runs
for every request, so it only copies references and numbers into a :class:`Snapshot` and
appends it: no copying of headers, no JSON, no I/O. Everything costly (redaction, encoding)
happens when someone looks, in :mod:`proxy.inspector.views`.

Listeners (the page's live stream) wait with :meth:`Buffer.wait`; a new exchange, or
:meth:`Buffer.close` at shutdown, wakes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from proxy.exchange import Exchange, Headers

STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


class Snapshot(NamedTuple):
    """One finished exchange, as the inspector keeps it. ``id`` counts up from 1.

    A named tuple, as immutable as a frozen dataclass and made about ten times faster (a
    frozen dataclass sets each of its fields through ``object.__setattr__``): one is made for
    every request.
    """

    id: int
    started_at: float  # wall-clock seconds
    method: str
    raw_target: str
    peer: str | None
    client: str
    organization: str
    status: int
    duration_seconds: float
    upstream_seconds: tuple[float, ...]
    request_bytes: int
    response_bytes: int
    resent: bool
    retried: bool
    cut: str | None
    request_headers: Headers | None
    upstream_request_headers: Headers | None
    upstream_response_headers: Headers | None
    response_headers: Headers | None
    request_body: bytes | None
    response_body: bytes | None

    @property
    def path(self) -> str:
        return self.raw_target.partition("?")[0]

    def __repr__(self) -> str:
        # Not the headers nor the bodies: a client's key, or a token an upstream said back,
        # must not reach a log line or a traceback through a repr.
        return f"Snapshot(id={self.id}, {self.method} {self.path} {self.status})"

    @property
    def status_class(self) -> str:
        return f"{self.status // 100}xx"

    @classmethod
    def of(cls, id: int, exchange: Exchange, now: float) -> Snapshot:
        return cls(
            id,
            now - exchange.duration_seconds,
            exchange.method,
            exchange.raw_target,
            exchange.peer,
            exchange.client,
            exchange.organization,
            exchange.status,
            exchange.duration_seconds,
            tuple(exchange.upstream_seconds),
            exchange.request_bytes,
            exchange.body_bytes,
            exchange.resent,
            exchange.retried,
            exchange.cut,
            exchange.request_headers,
            exchange.upstream_request_headers,
            exchange.upstream_response_headers,
            exchange.response_headers,
            exchange.request_body,
            exchange.response_body,
        )


class FilterError(ValueError):
    """A filter parameter that means nothing (``status=6xx``)."""


@dataclass(frozen=True)
class Filter:
    """Which exchanges to show: a status class (``4xx``) or status (``404``), a client's
    exact name, and text the path and query contain (ignoring case). Empty: any."""

    status: str = ""
    client: str = ""
    path: str = ""

    @classmethod
    def of(cls, query: Mapping[str, str]) -> Filter:
        status = query.get("status", "").strip().lower()
        if status and status not in STATUS_CLASSES and not (status.isdigit() and len(status) == 3):
            raise FilterError(f"status={status!r}: use 1xx … 5xx or a status such as 404")
        return cls(status, query.get("client", "").strip(), query.get("path", "").strip())

    def __call__(self, snapshot: Snapshot) -> bool:
        if self.status and self.status not in (snapshot.status_class, str(snapshot.status)):
            return False
        if self.client and snapshot.client != self.client:
            return False
        return self.path.lower() in snapshot.raw_target.lower()


class Buffer:
    """The last ``capacity`` exchanges, oldest first, and whoever waits for the next."""

    def __init__(self, capacity: int, wall_clock: Callable[[], float] = time.time) -> None:
        self._snapshots: deque[Snapshot] = deque(maxlen=capacity)
        self._wall_clock = wall_clock
        self._last_id = 0
        self._arrived: asyncio.Event | None = None  # made only while someone waits
        self.closed = False

    @property
    def capacity(self) -> int:
        return self._snapshots.maxlen or 0

    @property
    def last_id(self) -> int:
        return self._last_id

    def __len__(self) -> int:
        return len(self._snapshots)

    def observe(self, exchange: Exchange) -> None:
        """Keep a finished exchange (not the proxy's own endpoints: the page would watch
        itself)."""
        if exchange.own:
            return
        self._last_id += 1
        self._keep(Snapshot.of(self._last_id, exchange, self._wall_clock()))

    def take(self, snapshot: Snapshot) -> None:
        """Keep a snapshot another worker recorded (:mod:`proxy.inspector.shared`), numbered
        as the next one here."""
        self._last_id += 1
        self._keep(snapshot._replace(id=self._last_id))

    def _keep(self, snapshot: Snapshot) -> None:
        self._snapshots.append(snapshot)
        if self._arrived is not None:
            self._arrived.set()
            self._arrived = None

    def snapshots(self, keep: Filter = Filter()) -> list[Snapshot]:
        """The kept exchanges that pass ``keep``, newest first."""
        return [snapshot for snapshot in reversed(self._snapshots) if keep(snapshot)]

    def after(self, last_id: int) -> list[Snapshot]:
        """The kept exchanges newer than ``last_id``, oldest first."""
        newer = []
        for snapshot in reversed(self._snapshots):
            if snapshot.id <= last_id:
                break
            newer.append(snapshot)
        newer.reverse()
        return newer

    def find(self, id: int) -> Snapshot | None:
        if not self._snapshots:
            return None
        # Ids are consecutive, so the position follows from the oldest one's id.
        index = id - self._snapshots[0].id
        return self._snapshots[index] if 0 <= index < len(self._snapshots) else None

    async def wait(self, last_id: int, timeout_seconds: float) -> None:
        """Return when an exchange newer than ``last_id`` is kept, the buffer is closed, or
        ``timeout_seconds`` have passed."""
        if self._last_id > last_id or self.closed:
            return
        if self._arrived is None:
            self._arrived = asyncio.Event()
        arrived = self._arrived
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrived.wait(), timeout_seconds)

    def close(self) -> None:
        """Wake every listener for good: the application is shutting down."""
        self.closed = True
        if self._arrived is not None:
            self._arrived.set()
            self._arrived = None
