"""Logging set-up: text or JSON lines on stderr, and the access log's one line per request."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import select
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NamedTuple, TextIO

from aiohttp.http_exceptions import HttpProcessingError

from proxy.clock import Clock
from proxy.exchange import Exchange
from proxy.text import printable

ACCESS_LOGGER = "proxy.access"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers that report what the outside world did to the server: malformed requests (aiohttp),
# a full file table on accept (asyncio).
OUTSIDE_EVENT_LOGGERS = ("aiohttp.server", "aiohttp.web", "asyncio")
OUTSIDE_EVENTS = (OSError, HttpProcessingError)
BATCH_SECONDS = 0.05
# An access line stays within one write of PIPE_BUF (4096) bytes, which a pipe shared by
# several workers never interleaves, even as JSON (the path twice, each escaped character
# doubled): a longer path or method (aiohttp admits request lines of 8 KiB) is cut, saying so.
LONGEST_PATH = 800
LONGEST_METHOD = 32


class AccessRecord(NamedTuple):
    """What the access log says about one request. The query is left out: it may carry ids
    that belong to customers, and it is not needed to tell what the proxy did.

    A named tuple: immutable, and made several times faster than a frozen dataclass (which
    sets each field through ``object.__setattr__``), for one line per request."""

    method: str
    path: str
    status: int
    duration_ms: float
    bytes: int
    resent: bool
    # Who did it: the client's name (from the keys file, or "anonymous") and its TCP peer.
    client: str = "anonymous"
    peer: str = "-"
    # With several organizations, the one the request acted as ("-": none was chosen); with
    # the single-organization settings, None, and the line is as it always was.
    organization: str | None = None

    def __str__(self) -> str:
        resent = " resent" if self.resent else ""
        who = self.client if self.organization is None else f"{self.client}@{self.organization}"
        return (
            f"{self.peer} {who} {self.method} {self.path} {self.status} "
            f"{self.duration_ms:.1f}ms {self.bytes}B{resent}"
        )


class TextFormatter(logging.Formatter):
    """:data:`TEXT_FORMAT`, with the date and time formatted once a second rather than once a
    line: ``localtime`` and ``strftime`` cost about as much as the rest of an access line."""

    def __init__(self, process: str | None = None) -> None:
        # With several workers, which one wrote the line, before the logger's name.
        fmt = (
            TEXT_FORMAT
            if process is None
            else TEXT_FORMAT.replace("%(name)s", f"{process} %(name)s")
        )
        super().__init__(fmt)
        self._stamped: tuple[int, str] = (-1, "")  # (second, its text): replaced as one

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second, stamp = self._stamped
        if int(record.created) != second:
            second = int(record.created)
            stamp = time.strftime(self.default_time_format, self.converter(record.created))
            self._stamped = (second, stamp)
        return f"{stamp},{int(record.msecs):03d}"  # as logging.Formatter's default


class JsonFormatter(logging.Formatter):
    """One JSON object per line; an access record's fields become top-level keys. With
    several workers, ``process`` says which one wrote the line."""

    def __init__(self, process: str | None = None) -> None:
        super().__init__()
        self._process = {} if process is None else {"process": process}

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            **self._process,
            "message": record.getMessage(),
        }
        access = getattr(record, "access", None)
        if isinstance(access, AccessRecord):
            line |= {key: value for key, value in access._asdict().items() if value is not None}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


class OneLinePerEvent(logging.Filter):
    """For events caused from outside (a malformed request, EMFILE on accept): one line each,
    no traceback, and at most one line a second per kind of event, the next one saying how
    many were held back. A client sending garbage must not be able to flood the log, and a
    traceback says nothing about a fault that is not the proxy's."""

    def __init__(self, interval_seconds: float = 1.0, clock: Clock = time.monotonic) -> None:
        super().__init__()
        self._interval, self._clock = interval_seconds, clock
        self._next: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, OUTSIDE_EVENTS):
            return True
        key, now = (record.name, str(record.msg)), self._clock()
        if now < self._next.get(key, -1.0):
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._next[key] = now + self._interval
        held = self._held.pop(key, 0)
        first_line = record.getMessage().splitlines()[0]
        summary = printable(f"{first_line}: {exc}", 300)
        record.msg = summary + (f" ({held} more like it held back)" if held else "")
        record.args, record.exc_info, record.exc_text = None, None, None
        return True


class BatchingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes lines in batches: one write every ``interval_seconds``
    while an event loop runs, instead of one per line.

    A write per access-log line costs about 0.1 ms of CPU, as much as a third of the proxy's
    own work per request (bench/ measures it); a batch costs one. Lines of WARNING and above,
    and every line when no loop runs, are written at once, and ``flush`` (on exit too) writes
    what is waiting, so nothing is lost and an error is never held back.
    """

    def __init__(self, stream: TextIO, interval_seconds: float = BATCH_SECONDS) -> None:
        super().__init__(stream)
        self._interval = interval_seconds
        self._pending: list[str] = []
        self._scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._pending.append(line)
        if record.levelno >= logging.WARNING or not self._schedule():
            self.flush()

    def _schedule(self) -> bool:
        if self._scheduled:
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        loop.call_later(self._interval, self._flush_scheduled)
        self._scheduled = True
        return True

    def _flush_scheduled(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            lines, self._pending = self._pending, []
            # Each write whole lines of at most PIPE_BUF bytes, which a pipe never interleaves
            # with another writer's: several workers share this stderr (proxy.workers).
            for chunk in chunks(lines, select.PIPE_BUF):
                self.stream.write(chunk)
                self.stream.flush()
            self.stream.flush()


def chunks(lines: list[str], most_bytes: int) -> list[str]:
    """``lines`` joined into as few strings as possible of at most ``most_bytes`` bytes each
    (in UTF-8); a line longer than that is a string of its own."""
    joined: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        length = len(line) if line.isascii() else len(line.encode())
        if current and size + length > most_bytes:
            joined.append("".join(current))
            current, size = [], 0
        current.append(line)
        size += length
    if current:
        joined.append("".join(current))
    return joined


def configure(log_format: str, level: str, process: str | None = None) -> None:
    """Send every logger's records to stderr in the chosen format; ``process`` names the
    process in each line (``worker 2``, ``supervisor``) where several share stderr."""
    handler = BatchingHandler(sys.stderr)
    formatter = JsonFormatter(process) if log_format == "json" else TextFormatter(process)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in OUTSIDE_EVENT_LOGGERS:
        logging.getLogger(name).addFilter(OneLinePerEvent())


_ACCESS = logging.getLogger(ACCESS_LOGGER)


def access_log(*, several: bool) -> Callable[[Exchange], None]:
    """The access log's observer: with ``several`` organizations, naming the organization."""
    return functools.partial(log_exchange, several=several)


def _cut(text: str, most: int) -> str:
    return text if len(text) <= most else f"{text[:most]}…(+{len(text) - most} chars)"


def log_exchange(exchange: Exchange, *, several: bool = False) -> None:
    """The access log's observer of finished exchanges: one line each."""
    if not _ACCESS.isEnabledFor(logging.INFO):
        return
    record = AccessRecord(
        method=_cut(exchange.method, LONGEST_METHOD),
        path=_cut(exchange.path, LONGEST_PATH),
        status=exchange.status,
        duration_ms=exchange.duration_seconds * 1000,
        bytes=exchange.body_bytes,
        resent=exchange.resent,
        client=exchange.client,
        peer=exchange.peer or "-",
        organization=exchange.organization if several else None,
    )
    # The record is made here rather than through Logger.info, which walks the stack to find
    # the caller's file and line for every line: the access line always comes from this
    # function, and no format the proxy writes shows them. The message is the AccessRecord
    # itself, with no arguments to merge into it (getMessage gives the same line). Handlers
    # and filters see the record as before.
    _ACCESS.handle(
        _ACCESS.makeRecord(ACCESS_LOGGER, logging.INFO, __file__, 0, record, (), None,
                           func="log_exchange", extra={"access": record})
    )  # fmt: skip
