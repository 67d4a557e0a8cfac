"""Sockets, TLS, signals, reload and draining: the proxy as a running process.

Order matters: every socket is bound first (a busy port is one line and exit 2, before any
token is fetched), then the application starts, then it serves until SIGTERM or SIGINT, when
it stops accepting, lets requests in flight finish within the grace, and says when it is done.
SIGHUP reloads the configuration file, the inbound keys and the TLS certificate. Binding is
:mod:`proxy.sockets`' (an organization's own address is one more site of the application);
what the log says at start-up is :mod:`proxy.startup`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import ssl
from collections.abc import Callable, Mapping

from aiohttp import web

from proxy import limits, loops, startup
from proxy.access import access_of
from proxy.app import ops_app
from proxy.config import OPTIONS_BY_NAME, Config, ConfigError, Listen
from proxy.connection import ClientConnection
from proxy.keys import IN_FLIGHT, LIVE, TOKEN_CACHES
from proxy.limits import InFlight
from proxy.reload import reloaded
from proxy.runner import make_runner
from proxy.sockets import Bound, Sockets, bind_all, start_sites
from proxy.workers import Worker

logger = logging.getLogger(__name__)

# What to print once every socket listens: given the addresses they really got, the shared
# one and each organization's own.
Announce = Callable[[Listen, Mapping[str, Listen]], str | None]
# How often the keys file and the certificate are checked for a change.
FILE_CHECK_SECONDS = 2.0
# After the grace, how long aiohttp gives what is left (it reads 0 as "wait forever").
CUT_SECONDS = 0.05
Loader = Callable[[], Config]


def server_tls(config: Config) -> ssl.SSLContext | None:
    """HTTPS for clients: TLS 1.2 and 1.3 only, with the library's modern cipher defaults."""
    if config.tls_cert_file is None or config.tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    load_certificate(context, config)
    return context


def load_certificate(context: ssl.SSLContext, config: Config) -> None:
    assert config.tls_cert_file is not None
    assert config.tls_key_file is not None
    try:
        context.load_cert_chain(config.tls_cert_file, config.tls_key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"{OPTIONS_BY_NAME['tls_cert_file'].sources}: cannot use "
            f"{config.tls_cert_file.absolute()} with {config.tls_key_file.absolute()}: {exc}"
        ) from exc


def serve(
    app: web.Application,
    config: Config,
    *,
    load: Loader | None = None,
    announce: Announce | None = None,
    worker: Worker | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT. ``load`` re-reads the configuration on SIGHUP;
    ``announce`` says what to print once every socket listens; ``worker``: as one of the
    workers of a supervisor (:mod:`proxy.workers`), on the addresses it reserved."""
    if worker is not None:
        # Until the reload handler is installed: the default action of SIGHUP ends a process.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    sockets = bind_all(app, config, shared=worker is not None)
    # Thousands of client connections must not fail with EMFILE (nginx does the same).
    limits.raise_open_files_limit()
    tls = server_tls(config)
    loops.settle_collector()  # start-up is done: see proxy.loops
    # uvloop's loop when it is installed (proxy.loops says which, in the log).
    with asyncio.Runner(loop_factory=loops.new_event_loop) as runner:
        runner.run(_serve(app, config, sockets, tls, load, announce, worker))


async def _serve(
    app: web.Application,
    config: Config,
    sockets: Sockets,
    tls: ssl.SSLContext | None,
    load: Loader | None,
    announce: Announce | None,
    worker: Worker | None,
) -> None:
    grace = config.shutdown_grace_seconds
    # The runner whose connections count request heads and time them out (proxy.connection).
    # The grace is waited out by _drain: aiohttp's own shutdown timeout would wait for a
    # handler, cancel it, then wait as long again, so it only cuts what is left.
    runner = make_runner(
        app, config, handler_cancellation=True, access_log=None, shutdown_timeout=CUT_SECONDS
    )
    await runner.setup()
    runners: list[web.AppRunner] = [runner]
    try:
        await start_sites(runner, sockets, tls)
        if sockets.metrics is not None:
            runners.append(await _metrics_site(app, sockets.metrics))
        startup.say_what_runs(app, config, sockets, tls)
        said = announce(sockets.main.listen, sockets.own_addresses) if announce else None
        if said:
            print(said, flush=True)
        if worker is not None:
            logger.info("%s (pid %d) serving", worker, os.getpid())
            worker.serving()
        orphaned = await _until_stopped(app, tls, load, worker)
        logger.info("stopping: no new connections; requests in flight have %.0f s", grace)
        await _drain(runners, app[IN_FLIGHT], grace)
    finally:
        for each in reversed(runners):
            await each.cleanup()
    logger.info("stopped: every request in flight has finished or was cut at the grace")
    if worker is not None and orphaned:
        # No supervisor is left to remove the run's directory.
        shutil.rmtree(worker.directory, ignore_errors=True)


async def _drain(runners: list[web.AppRunner], in_flight: InFlight, grace: float) -> None:
    """Stop accepting on every address (the metrics one too), close idle keep-alive
    connections (the others once their answer is out, their request bodies still read), and
    wait until no request is being forwarded, at most ``grace``."""
    for runner in runners:
        for site in list(runner.sites):
            await site.stop()
        for connection in runner.server.connections if runner.server is not None else ():
            # aiohttp's own pre_shutdown would close busy connections too, which then drop
            # the rest of a request body on its way in.
            if isinstance(connection, ClientConnection):
                connection.drain()
            else:
                connection.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(in_flight.drained(), grace)
    # What is cut from here on is cut by the shutdown, not by its client (proxy.handler).
    in_flight.stopping = True


async def _metrics_site(app: web.Application, bound: Bound) -> web.AppRunner:
    """``/_proxy/metrics`` and the probes on their own address, without a key: for a scraper
    inside the cluster. The allow-list still applies."""
    runner = make_runner(
        ops_app(app), app[LIVE].config, access_log=None, shutdown_timeout=CUT_SECONDS
    )
    await runner.setup()
    await web.SockSite(runner, bound.sock).start()
    return runner


async def _until_stopped(
    app: web.Application, tls: ssl.SSLContext | None, load: Loader | None, worker: Worker | None
) -> bool:
    """Wait for a signal (or, for a worker, the end of its supervisor); whether the
    supervisor ended."""
    loop = asyncio.get_running_loop()
    stop, orphaned = asyncio.Event(), asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _stopping(stop, signum))
    if worker is not None:
        # Nothing is ever written to the lifeline: it is readable only once the supervisor
        # is gone, and then this worker must not serve on alone.
        loop.add_reader(worker.lifeline_fd, _orphaned(stop, orphaned, worker))
    watcher = None
    if load is not None:
        loop.add_signal_handler(signal.SIGHUP, lambda: reload(app, tls, load))
        watcher = asyncio.create_task(_watch_files(app, tls, load), name="file watcher")
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            if worker is None:
                loop.remove_signal_handler(signum)
            else:
                # The supervisor passes on a signal the worker may have had already (systemd
                # signals every process of the unit): a second one must not cut the drain.
                loop.add_signal_handler(signum, _again, signum)
        if worker is not None:
            loop.remove_reader(worker.lifeline_fd)
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    return orphaned.is_set()


def _stamp(config: Config) -> tuple[object, ...]:
    """What identifies the files a reload would read: a Kubernetes Secret update swaps a
    symlink, which changes the inode the path resolves to."""
    stamps: list[object] = []
    keys = [organization.inbound_keys_file for organization in config.organizations]
    for path in (*keys, config.tls_cert_file, config.tls_key_file):
        try:
            info = path.stat() if path is not None else None
        except OSError:
            info = None
        stamps.append(None if info is None else (info.st_ino, info.st_mtime_ns, info.st_size))
    return tuple(stamps)


async def _watch_files(app: web.Application, tls: ssl.SSLContext | None, load: Loader) -> None:
    # The kubelet sends no SIGHUP when a mounted Secret changes: notice a changed keys file
    # or certificate and reload as SIGHUP would.
    seen = _stamp(app[LIVE].config)
    while True:
        await asyncio.sleep(FILE_CHECK_SECONDS)
        now = _stamp(app[LIVE].config)
        if now != seen:
            logger.info("the keys file or the certificate changed: reloading")
            reload(app, tls, load)
            seen = _stamp(app[LIVE].config)


def _stopping(stop: asyncio.Event, signum: int) -> Callable[[], None]:
    def received() -> None:
        logger.info("%s received", signal.Signals(signum).name)
        stop.set()

    return received


def _again(signum: int) -> None:
    logger.info("%s received again: already stopping", signal.Signals(signum).name)


def _orphaned(stop: asyncio.Event, orphaned: asyncio.Event, worker: Worker) -> Callable[[], None]:
    def gone() -> None:
        logger.error("%s: the supervisor is gone; stopping", worker)
        asyncio.get_running_loop().remove_reader(worker.lifeline_fd)
        orphaned.set()
        stop.set()

    return gone


def reload(app: web.Application, tls: ssl.SSLContext | None, load: Loader) -> bool:
    """Apply a re-read configuration, all or nothing: a bad one keeps the running one."""
    live = app[LIVE]
    try:
        config, ignored = reloaded(live.config, load())
        access = access_of(config)
        if tls is not None:
            load_certificate(ssl.create_default_context(ssl.Purpose.CLIENT_AUTH), config)
            load_certificate(tls, config)
    except ConfigError as exc:
        logger.error("reload failed, the running configuration stays: %s", exc)
        return False
    live.config, live.access = config, access
    for name in ignored:
        logger.warning("reload: %s changed, which needs a restart; ignored", name)
    # A fixed secret is tried at once, not after the backoff: every organization's.
    for cache in app[TOKEN_CACHES].values():
        cache.end_backoff()
    keys = "no keys" if access.keys is None else f"{len(access.keys)} client keys"
    logger.info("reloaded the configuration: %s, %d allowed networks", keys, len(access.allow))
    return True
