"""The benchmark's fast upstream: a hand-rolled HTTP/1.1 server on uvloop, on loopback only.

Not a general server. It understands exactly what the benchmark's clients and proxies send
(requests with a ``Content-Length`` or no body, keep-alive, one request at a time per
connection) and spends as little CPU per request as Python allows, so that the upstream is not
what the contenders are measured against. Routes:

    POST /connect/token[?lifetime=S]  a Bearer token valid for S s (default 3600); counted
    GET  /_upstream/stats             counters as JSON (connections, tokens, requests, 401s)
    GET  /bytes/N                     N bytes of body, written with flow control
    PUT|POST /upload                  reads the whole body, then answers {"bytes": N}
    anything else                     a small JSON answer

Every route but the token endpoint and the stats wants ``Authorization: Bearer T`` with a
token it issued (or the static one) that has not expired, else 401: so a proxy that sends an
expired token is caught. ``--delay-ms`` holds every answer that long before its first byte.

    python -m bench.upstream --port P [--tls-port Q --cert C --key K] [--delay-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import ssl
import time
from email.utils import formatdate

import uvloop

STATIC_TOKEN = "bench-static"  # accepted for ever: the one nginx, the minimal proxy and wrk send
PAYLOAD = b'{"taskId": 1, "taskStatus": 34, "taskStatusText": "PreProcessingSuccessful"}'
BLOCK = b"x" * (1 << 20)
MAX_HEAD = 64 * 1024


class Counters:
    def __init__(self) -> None:
        self.connections = {"http": 0, "https": 0}
        self.open = 0
        self.requests = 0
        self.unauthorized = 0
        self.tokens_by_lifetime: dict[str, int] = {}
        self.tokens: dict[bytes, float] = {STATIC_TOKEN.encode(): float("inf")}


class Date:
    """The ``Date`` header, formatted once a second."""

    def __init__(self) -> None:
        self.second, self.value = 0, b""

    def __call__(self) -> bytes:
        now = int(time.time())
        if now != self.second:
            self.second, self.value = now, formatdate(now, usegmt=True).encode()
        return self.value


def head(status: bytes, date: bytes, length: int, content_type: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\nDate: " + date + b"\r\nContent-Type: " + content_type
        + b"\r\nContent-Length: " + str(length).encode() + b"\r\n\r\n"
    )  # fmt: skip


def header_value(lowered_head: bytes, name: bytes) -> bytes | None:
    start = lowered_head.find(b"\r\n" + name + b":")
    if start < 0:
        return None
    start += len(name) + 3
    end = lowered_head.find(b"\r\n", start)
    return lowered_head[start : end if end >= 0 else None].strip()


class Connection(asyncio.Protocol):
    """One client connection: requests are parsed and answered one at a time."""

    def __init__(self, app: Upstream, scheme: str) -> None:
        self.app, self.scheme = app, scheme
        self.buffer = bytearray()
        self.busy = False  # an answer is being delayed or streamed
        self.body_left = 0
        self.pending: tuple[bytes, bytes] = (b"", b"")  # (target, head) waiting for its body
        self.body_seen = 0
        self.download_left = 0
        self.downloading = False
        self.paused = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.app.counters.connections[self.scheme] += 1
        self.app.counters.open += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.app.counters.open -= 1
        self.transport = None

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._pump()

    def data_received(self, data: bytes) -> None:
        if self.body_left:
            taken = min(len(data), self.body_left)
            self.body_left -= taken
            self.body_seen += taken
            if self.body_left:
                return
            data = data[taken:]
            self._answer(*self.pending)
        self.buffer += data
        self._advance()

    def _advance(self) -> None:
        while not self.busy and not self.body_left and self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self.transport.close()
                return
            raw = bytes(self.buffer[:end])
            del self.buffer[: end + 4]
            lowered = raw.lower()
            target = raw.split(b" ", 2)[1]
            if header_value(lowered, b"transfer-encoding") is not None:
                self._write(b"411 Length Required", b"chunked bodies are not understood")
                self.transport.close()
                return
            length = int(header_value(lowered, b"content-length") or 0)
            taken = min(len(self.buffer), length)
            del self.buffer[:taken]
            self.body_seen = taken
            self.body_left = length - taken
            if self.body_left:
                self.pending = (target, lowered)
                return
            self._answer(target, lowered)

    def _answer(self, target: bytes, lowered: bytes) -> None:
        app = self.app
        app.counters.requests += 1
        path, _, query = target.partition(b"?")
        if path == b"/connect/token":
            self._later(self._token, query)
        elif path == b"/_upstream/stats":
            self._write(b"200 OK", app.stats(), b"application/json")
        elif not app.authorized(header_value(lowered, b"authorization")):
            app.counters.unauthorized += 1
            self._later(self._write, b"401 Unauthorized", b"")
        elif path.startswith(b"/bytes/"):
            self._later(self._download, int(path[len(b"/bytes/") :]))
        elif path == b"/upload":
            self._later(self._write, b"200 OK", b'{"bytes": %d}' % self.body_seen)
        else:
            self._later(self._write, b"200 OK", PAYLOAD, b"application/json")

    def _later(self, answer: object, *args: object) -> None:
        delay = self.app.delay_seconds
        if not delay:
            answer(*args)  # type: ignore[operator]
            return
        self.busy = True

        def now() -> None:
            self.busy = False
            answer(*args)  # type: ignore[operator]
            self._advance()

        asyncio.get_running_loop().call_later(delay, now)

    def _write(self, status: bytes, body: bytes, content_type: bytes = b"text/plain") -> None:
        if self.transport is not None:
            self.transport.write(head(status, self.app.date(), len(body), content_type) + body)

    def _token(self, query: bytes) -> None:
        self._write(b"200 OK", self.app.issue(query), b"application/json")

    def _download(self, size: int) -> None:
        assert self.transport is not None
        self.transport.write(head(b"200 OK", self.app.date(), size, b"application/octet-stream"))
        self.download_left = size
        self.busy = self.downloading = True
        self._pump()

    def _pump(self) -> None:
        while self.download_left and not self.paused and self.transport is not None:
            chunk = min(self.download_left, len(BLOCK))
            self.transport.write(BLOCK if chunk == len(BLOCK) else BLOCK[:chunk])
            self.download_left -= chunk
        if self.downloading and not self.download_left:
            self.busy = self.downloading = False
            self._advance()


class Upstream:
    def __init__(self, delay_seconds: float) -> None:
        self.delay_seconds = delay_seconds
        self.counters = Counters()
        self.date = Date()
        self.issued = 0

    def authorized(self, value: bytes | None) -> bool:
        if value is None or not value.startswith(b"bearer "):
            return False
        expires_at = self.counters.tokens.get(value[7:].strip())
        return expires_at is not None and time.monotonic() < expires_at

    def issue(self, query: bytes) -> bytes:
        fields = dict(part.partition(b"=")[::2] for part in query.split(b"&") if part)
        lifetime = float(fields.get(b"lifetime", b"3600"))
        self.issued += 1
        token = f"bench-{self.issued}".encode()
        # Lower case: the Authorization value is matched in the lowered head.
        self.counters.tokens[token] = time.monotonic() + lifetime
        key = f"{lifetime:g}"
        self.counters.tokens_by_lifetime[key] = self.counters.tokens_by_lifetime.get(key, 0) + 1
        answer = {"access_token": token.decode(), "token_type": "Bearer", "expires_in": lifetime}
        return json.dumps(answer).encode()

    def stats(self) -> bytes:
        counters = self.counters
        return json.dumps(
            {
                "connections": counters.connections,
                "open": counters.open,
                "requests": counters.requests,
                "unauthorized": counters.unauthorized,
                "tokens_by_lifetime": counters.tokens_by_lifetime,
            }
        ).encode()


def listening_socket(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4096)
    return sock


async def serve(args: argparse.Namespace) -> None:
    app = Upstream(args.delay_ms / 1000)
    loop = asyncio.get_running_loop()
    await loop.create_server(lambda: Connection(app, "http"), sock=listening_socket(args.port))
    if args.tls_port:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        await loop.create_server(
            lambda: Connection(app, "https"), sock=listening_socket(args.tls_port), ssl=context
        )
    await asyncio.Event().wait()  # until the harness terminates the process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-port", type=int)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    uvloop.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
