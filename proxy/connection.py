"""Each client connection, with the limits that aiohttp's server lacks.

aiohttp's server already bounds the request target and each header field, counts header
fields (``max_line_size``, ``max_field_size``, ``max_headers``) and closes idle keep-alive
connections (``keepalive_timeout``). :class:`ClientConnection` adds what it lacks:

- **the head as a whole** (request line and headers) is counted as it arrives and refused
  once it is over ``max_header_bytes`` (431), finished or not, so that an unfinished head
  can hold no more than that;
- **a client header timeout**: from the moment a connection opens, or the first byte of a
  later request arrives, its head must be complete within ``client_header_timeout_seconds``
  (nginx's ``client_header_timeout``); else the client gets 408 and the connection closes;
- **the parser's refusals are answered from the one table** in :mod:`proxy.problems`,
  as problem+json (400, 414 for the request line, 431 for headers), not as aiohttp's text.

aiohttp offers no setting for a connection class: :mod:`proxy.runner` serves the application
through a server that makes one :class:`ClientConnection` for each client connection.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

from proxy.config import Config
from proxy.errors import (
    ClientFault,
    HeadTimeout,
    HeadTooLarge,
    MalformedRequest,
    RequestLineTooLong,
)
from proxy.limits import HeadMeter
from proxy.problems import answer, problem_for
from proxy.text import printable

READ_BUFFER_BYTES = 16384
NO_MESSAGES: tuple[tuple[Any, ...], bool, bytes] = ((), False, b"")


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_seconds: float
    max_header_bytes: int
    max_request_line_bytes: int
    max_headers: int

    @classmethod
    def of(cls, config: Config) -> ConnectionLimits:
        return cls(
            config.client_header_timeout_seconds,
            config.max_header_bytes,
            config.max_request_line_bytes,
            config.max_headers,
        )


def handler_settings(config: Config) -> dict[str, Any]:
    """aiohttp's own per-connection settings, as ``RequestHandler`` keyword arguments."""
    return {
        "keepalive_timeout": config.keepalive_timeout_seconds,
        "max_line_size": config.max_request_line_bytes,
        # One header field may take the whole head's budget: the meter bounds the sum.
        "max_field_size": config.max_header_bytes,
        "max_headers": config.max_headers,
        # A request body is buffered up to twice this before the socket is paused: aiohttp's
        # 64 KiB let 100 stalled uploads hold 70 MB, 16 KiB holds 26 MB, at the same upload
        # throughput (bench/streaming.py).
        "read_bufsize": READ_BUFFER_BYTES,
    }


class _HeadRefused(HttpProcessingError):
    """Raised into aiohttp's parsing as its own errors are, carrying the proxy's answer."""

    def __init__(self, fault: ClientFault) -> None:
        # The code only shows in the log line; the answer comes from the table.
        super().__init__(code=problem_for(fault).status, message=fault.detail)
        self.fault = fault


def parse_fault(exc: HttpProcessingError, limits: ConnectionLimits) -> ClientFault:
    """What a request that the parser refused gets."""
    if isinstance(exc, _HeadRefused):
        return exc.fault
    if isinstance(exc, LineTooLong):
        # aiohttp names the limit it applied: max_line_size for the request target,
        # max_field_size for a header field. Were both the same, the head is over its limit.
        if exc.args[1:2] == (limits.max_request_line_bytes,) != (limits.max_header_bytes,):
            return RequestLineTooLong(
                f"the request target is over {limits.max_request_line_bytes} bytes"
            )
        return HeadTooLarge(f"a header field is over {limits.max_header_bytes} bytes")
    if exc.message.startswith("Too many headers"):
        return HeadTooLarge(f"the request has more than {limits.max_headers} header fields")
    first_line = (exc.message.splitlines() or ["malformed request"])[0]
    return MalformedRequest(printable(first_line, 120))


class _MeteredParser:
    """aiohttp's request parser, with each head counted before the parser sees it.

    No more than the head's limit is fed to the parser while a head is incomplete: a longer
    read is split there, as if the network had delivered it in two parts. Bytes that follow
    a complete head in the same read (a pipelined request) go uncounted: the next head may
    exceed the limit by up to one read, never more.
    """

    def __init__(self, parser: Any, connection: ClientConnection) -> None:
        self._parser, self._connection = parser, connection
        self._meter = HeadMeter(connection.limits.max_header_bytes)
        self._payload: Any = None  # the body of the last request parsed
        self._refused = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)

    def feed_data(self, data: bytes) -> Any:
        if self._refused:
            return NO_MESSAGES  # the connection closes after its one answer
        if not data or not self._in_head():
            return self._feed(data)
        room = self._meter.room()
        if room == 0:
            self._refused = True
            self._connection.answer_queued()
            raise _HeadRefused(HeadTooLarge(
                f"the request line and headers are over {self._meter.max_bytes} bytes"
            ))  # fmt: skip
        if self._meter.size == 0:
            self._connection.head_started()
        self._meter.received(min(len(data), room))
        messages, upgraded, tail = self._feed(data[:room])
        if len(data) <= room:
            return messages, upgraded, tail
        if upgraded:  # the rest belongs to the protocol switched to
            return messages, True, tail + data[room:]
        more, upgraded, tail = self.feed_data(data[room:])
        return [*messages, *more], upgraded, tail

    def _in_head(self) -> bool:
        return self._payload is None or self._payload.is_eof()

    def head_pending(self) -> bool:
        """Whether part of a head has arrived and the rest has not."""
        return self._meter.size > 0

    def _feed(self, data: bytes) -> Any:
        try:
            result = self._parser.feed_data(data)
        except HttpProcessingError:
            self._refused = True
            self._connection.answer_queued()
            raise
        if result[0]:
            self._payload = result[0][-1][1]
            self._meter.completed()
            self._connection.heads_completed(len(result[0]))
        return result


class ClientConnection(RequestHandler):
    """aiohttp's connection handler with the head metered and timed (see the module)."""

    def __init__(self, manager: web.Server, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.limits = limits
        # Requests parsed (or refused) and not yet answered on this connection.
        self._unanswered = 0
        self._draining = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._parser = _MeteredParser(self._parser, self)  # type: ignore[assignment]
        self._metered: _MeteredParser = self._parser  # type: ignore[assignment]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.head_started()

    def drain(self) -> None:
        """Shutdown: close now if nothing is being answered, else once the answer is out."""
        self._draining = True
        if not self._unanswered:
            self.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def head_started(self) -> None:
        # Behind a request still being answered, a pipelined head waits its turn: it is timed
        # once that answer is out (see finish_response).
        if self._head_timer is None and not self._unanswered:
            self._head_timer = self._loop.call_later(
                self.limits.header_timeout_seconds, self._head_timed_out
            )

    def heads_completed(self, count: int) -> None:
        self._stop_head_timer()
        self._unanswered += count

    def answer_queued(self) -> None:
        self._stop_head_timer()
        self._unanswered += 1

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self._unanswered = max(self._unanswered - 1, 0)
            if self._draining:
                self.close()
            elif resp.status == 408:
                # A 408 ends the connection (RFC 9110 §15.5.9). When it is the proxy's, the
                # client stalled: aiohttp would wait up to 10 s for the rest of its body before
                # closing (lingering, for a client still sending), but none is coming.
                self.force_close()
            elif self._metered.head_pending():
                self.head_started()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # aiohttp's own handling logs the event and refuses to answer once output has begun;
        # only its text/plain answer is replaced.
        plain = super().handle_error(request, status, exc, message)
        if not isinstance(exc, HttpProcessingError):
            return plain
        return answer(parse_fault(exc, self.limits))

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport is None or self._unanswered:
            return
        seconds = self.limits.header_timeout_seconds
        fault = HeadTimeout(f"the request's headers were not complete within {seconds:g} s")
        # Logged as aiohttp logs what the parser refuses, so that the same one-line-per-event
        # filter applies (proxy.logs).
        self.logger.warning("Client header timeout from %s", self.peername,
                            exc_info=_HeadRefused(fault))  # fmt: skip
        # Nothing is being answered on this connection, so a whole answer can go out first
        # (RFC 9110 §15.5.9: a 408 closes the connection).
        self.transport.write(raw_answer(answer(fault)))
        self.force_close()


def raw_answer(response: web.Response) -> bytes:
    """An answer of the proxy's own as bytes on the wire, for a connection that has no request
    to answer through aiohttp (a head that never arrived)."""
    body = response.body if isinstance(response.body, bytes) else b""
    lines = [f"HTTP/1.1 {response.status} {response.reason}"]
    lines += [f"{name}: {value}" for name, value in response.headers.items()]
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    lines.append(f"Date: {formatdate(usegmt=True)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
