"""The inspector's endpoints under ``/_proxy/``, for :mod:`proxy.ops`'s table.

================================  ===============================================================
``/_proxy/``                      the page (``inspector.js`` and ``inspector.css`` beside it)
``/_proxy/state``                 tokens, readiness, request counts (JSON)
``/_proxy/exchanges``             the last exchanges, newest first, filtered (JSON)
``/_proxy/exchange?id=N``         one exchange: headers on both sides, bodies if kept (JSON)
``/_proxy/events``                the same, live: Server-Sent Events ``exchange`` and ``state``
``/_proxy/exchanges.har``         the (filtered) exchanges as a HAR 1.2 download
================================  ===============================================================

Filters are query parameters: ``status`` (``4xx`` or ``404``), ``client``, ``path``. Each
endpoint first asks :mod:`.gate` whether the request may see it; every document is redacted by
name (:mod:`.views`) and scrubbed by value (:class:`.redact.Scrubber`) on its way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web

from proxy.inspector import gate, har, page, views
from proxy.inspector.buffer import Buffer, Filter, FilterError
from proxy.inspector.redact import Scrubber
from proxy.inspector.state import held_secrets, state
from proxy.keys import INSPECTOR, INSPECTOR_RELAY, LIVE
from proxy.problems import SERVER

Endpoint = Callable[[web.Request], Awaitable[web.StreamResponse]]
View = Callable[[web.Request, Buffer], Awaitable[web.StreamResponse]]

# The live stream sends the state with every batch of exchanges and at least this often
# (which keeps an idle connection open), and lets a burst gather this long into one write.
STATE_EVERY_SECONDS = 2.0
GATHER_SECONDS = 0.1
RECONNECT_MS = 2000

HEADERS = {
    "Server": SERVER,
    "Content-Security-Policy": page.CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _version() -> str:
    try:
        return version("smartdoc-proxy")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree never installed
        return "unknown"


def guarded(name: str, view: View) -> Endpoint:
    """``view`` behind the gate, with the inspector's headers on its answer; answered by
    worker 1 when another worker keeps none (:mod:`.shared`)."""

    async def endpoint(request: web.Request) -> web.StreamResponse:
        buffer = request.app.get(INSPECTOR)
        if buffer is None:  # the --metrics-listen address serves no inspector
            raise web.HTTPNotFound(text="the inspector is not served on this address")
        gate.check(request)
        relay = request.app.get(INSPECTOR_RELAY)
        if relay is not None:
            return await relay.pass_on(request, name)
        return await _headed(view, request, buffer)

    return endpoint


def ungated(view: View) -> Endpoint:
    """``view`` for worker 1's socket, which only the other workers reach, with requests
    that passed the gate there."""

    async def endpoint(request: web.Request) -> web.StreamResponse:
        return await _headed(view, request, request.app[INSPECTOR])

    return endpoint


async def _headed(view: View, request: web.Request, buffer: Buffer) -> web.StreamResponse:
    response = await view(request, buffer)
    if not response.prepared:
        response.headers.update(HEADERS)
    return response


def _json(request: web.Request, document: object) -> web.Response:
    scrubbed = Scrubber(held_secrets(request.app)).tree(document)
    return web.json_response(scrubbed)


def _filter(request: web.Request) -> Filter:
    try:
        return Filter.of(request.query)
    except FilterError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc


async def show_page(request: web.Request, buffer: Buffer) -> web.StreamResponse:
    return web.Response(body=page.HTML, content_type="text/html", charset="utf-8")


async def script(request: web.Request, buffer: Buffer) -> web.StreamResponse:
    return web.Response(body=page.SCRIPT, content_type="text/javascript", charset="utf-8")


async def style(request: web.Request, buffer: Buffer) -> web.StreamResponse:
    return web.Response(body=page.STYLE, content_type="text/css", charset="utf-8")


async def show_state(request: web.Request, buffer: Buffer) -> web.StreamResponse:
    return _json(request, state(request.app, buffer))


async def exchanges(request: web.Request, buffer: Buffer) -> web.StreamResponse:
    shown = [views.summary(snapshot) for snapshot in buffer.snapshots(_filter(request))]
    return _json(request, {"exchanges": shown, "capacity": buffer.capacity})


async def exchange(request: web.Request, buffer: Buffer) -> web.StreamResponse:
    wanted = request.query.get("id", "")
    if not wanted.isdigit():
        raise web.HTTPBadRequest(text="id must be the number of an exchange")
    snapshot = buffer.find(int(wanted))
    if snapshot is None:
        raise web.HTTPNotFound(text=f"exchange {wanted} is not (or no longer) in the buffer")
    kept = request.app[LIVE].config.keeps_bodies
    return _json(request, views.detail(snapshot, kept))


async def har_file(request: web.Request, buffer: Buffer) -> web.StreamResponse:
    chosen = buffer.snapshots(_filter(request))
    chosen.reverse()  # a HAR file reads oldest first, as it was recorded
    document = har.document(chosen, upstream=request.app[LIVE].config.upstream, version=_version())
    response = _json(request, document)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    response.headers["Content-Disposition"] = f'attachment; filename="smartdoc-proxy-{stamp}.har"'
    return response


async def events(request: web.Request, buffer: Buffer) -> web.StreamResponse:
    """The live stream: every kept exchange newer than ``Last-Event-ID`` (all of them on a
    first connection), then each new one as it is recorded, and the state now and then. It
    ends when the client leaves or the application shuts down."""
    headers = HEADERS | {"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
    if request.method == "HEAD":
        return web.Response(headers=headers)
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    with contextlib.suppress(ConnectionError):
        await response.write(f"retry: {RECONNECT_MS}\n\n".encode())
        await _stream(request, buffer, response, _last_event_id(request, buffer))
    return response


def _last_event_id(request: web.Request, buffer: Buffer) -> int:
    given = request.headers.get("Last-Event-ID", "")
    last = int(given) if given.isdigit() else 0
    # An id from before a restart of the proxy: ids count from 1 again, so send everything.
    return last if last <= buffer.last_id else 0


async def _stream(
    request: web.Request, buffer: Buffer, response: web.StreamResponse, last_id: int
) -> None:
    loop = asyncio.get_running_loop()
    next_state = loop.time()
    while not buffer.closed:
        newer = buffer.after(last_id)
        if newer or loop.time() >= next_state:
            # The secrets are looked up again with the state: the token may have changed.
            scrubber = Scrubber(held_secrets(request.app))
            events = [_event("exchange", views.summary(each), scrubber, each.id) for each in newer]
            events.append(_event("state", state(request.app, buffer), scrubber))
            await response.write(b"".join(events))
            last_id = newer[-1].id if newer else last_id
            next_state = loop.time() + STATE_EVERY_SECONDS
        await buffer.wait(last_id, max(0.0, next_state - loop.time()))
        if buffer.last_id > last_id and not buffer.closed:
            await asyncio.sleep(GATHER_SECONDS)


def _event(kind: str, document: object, scrubber: Scrubber, id: int | None = None) -> bytes:
    data = json.dumps(scrubber.tree(document))  # one line: JSON escapes every newline
    head = f"id: {id}\n" if id is not None else ""
    return f"{head}event: {kind}\ndata: {data}\n\n".encode()


async def end_streams(app: web.Application) -> None:
    """``on_shutdown``: end the live streams, which would otherwise hold shutdown up."""
    app[INSPECTOR].close()
    relay = app.get(INSPECTOR_RELAY)
    if relay is not None:
        relay.close()


VIEWS: dict[str, View] = {
    "": show_page,
    "inspector.js": script,
    "inspector.css": style,
    "state": show_state,
    "exchanges": exchanges,
    "exchange": exchange,
    "events": events,
    "exchanges.har": har_file,
}
ENDPOINTS: dict[str, Endpoint] = {name: guarded(name, view) for name, view in VIEWS.items()}
UNGATED: dict[str, Endpoint] = {name: ungated(view) for name, view in VIEWS.items()}
