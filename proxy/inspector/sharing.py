"""One inspector for several workers, assembled: what :func:`proxy.app.create_app` adds to a
worker's application so that worker 1 keeps the inspector and the others feed and relay to it
(:mod:`.shared` has the parts and says how they work)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from proxy import tasks
from proxy.exchange import Observer
from proxy.inspector import routes, shared
from proxy.keys import INSPECTOR, INSPECTOR_RELAY, LIVE, METRICS, PEER_TOKENS, TOKEN_CACHES
from proxy.tokens import RECENT_TOKENS
from proxy.workers import Worker

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def across_workers(app: web.Application, worker: Worker) -> tuple[Observer, CleanupContext]:
    """The inspector's observer of finished exchanges in this worker, and what runs while its
    application does (to be started after the token caches, whose state the page shows)."""
    buffer = app[INSPECTOR]
    if worker.keeps_inspector:
        organizations = len(app[LIVE].config.organizations)
        app[PEER_TOKENS] = shared.PeerTokens(per_worker=RECENT_TOKENS * max(organizations, 1))
        return buffer.observe, _socket(worker)
    sender = shared.Sender(worker.index, buffer.capacity, lambda: recent_tokens(app))
    return sender.observe, _relay(worker, sender)


def recent_tokens(app: web.Application) -> list[str]:
    return [value for cache in app[TOKEN_CACHES].values() for value in cache.recent()]


def _socket(worker: Worker) -> CleanupContext:
    """Worker 1: the inspector's socket for the other workers."""

    async def socket(app: web.Application) -> AsyncIterator[None]:
        runner = web.AppRunner(inspector_app(app), access_log=None)
        await runner.setup()
        await web.UnixSite(runner, str(worker.inspector_socket)).start()
        yield
        await runner.cleanup()

    return socket


def inspector_app(app: web.Application) -> web.Application:
    """Worker 1's inspector for the other workers: sharing the running ``app``'s buffer,
    configuration, token caches, metrics and the other workers' tokens."""
    buffer = app[INSPECTOR]
    # A batch holds at most --inspect-exchanges snapshots, each with two kept bodies at most.
    largest = max(1 << 20, buffer.capacity * (256 << 10))
    served = web.Application(client_max_size=largest)
    served[INSPECTOR], served[LIVE], served[METRICS] = buffer, app[LIVE], app[METRICS]
    served[TOKEN_CACHES], served[PEER_TOKENS] = app[TOKEN_CACHES], app[PEER_TOKENS]
    served.router.add_post("/record", shared.record(buffer, app[PEER_TOKENS]))
    for name, endpoint in routes.UNGATED.items():
        served.router.add_route("*", f"/_proxy/{name}", endpoint)
    return served


def _relay(worker: Worker, sender: shared.Sender) -> CleanupContext:
    """Any worker but the first: sends worker 1 its exchanges, and passes it the requests for
    the inspector, each on a session of its own (many live streams must not hold up a batch)."""

    async def relay(app: web.Application) -> AsyncIterator[None]:
        path = str(worker.inspector_socket)
        async with shared.session(path) as sending, shared.session(path) as relaying:
            passing = app[INSPECTOR_RELAY] = shared.Relay(relaying)
            async with tasks.owned(sender.run(sending), "inspector sender"):
                yield
                passing.close()
            # What gathered since the last batch; worker 1 may have stopped first.
            await sender.send(sending, warn=False)

    return relay
