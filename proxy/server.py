"""Sockets, TLS, signals, reload and draining: the proxy as a running process.

Order matters: every socket is bound first (a busy port is one line and exit 2, before any
token is fetched), then the application starts, then it serves until SIGTERM or SIGINT, when
it stops accepting, lets requests in flight finish within the grace, and says when it is done.
SIGHUP reloads the configuration file, the inbound keys and the TLS certificate.

An organization's own listen address is one more site of the same application; the handler
tells the sites apart by the local address of each connection (:class:`Listeners`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from proxy import loops
from proxy.access import access_of
from proxy.app import ops_app
from proxy.config import DEFAULT_ORGANIZATION, OPTIONS_BY_NAME, Config, ConfigError, Listen
from proxy.keys import LISTENERS, LIVE, TOKEN_CACHES
from proxy.organization_settings import where
from proxy.organizations import Listeners
from proxy.reload import reloaded

logger = logging.getLogger(__name__)

# What to print once every socket listens: given the addresses they really got, the shared
# one and each organization's own.
Announce = Callable[[Listen, Mapping[str, Listen]], str | None]
# How often the keys file and the certificate are checked for a change.
FILE_CHECK_SECONDS = 2.0
Loader = Callable[[], Config]


@dataclass(frozen=True)
class Bound:
    """A listening socket and the address it got (port 0 picks a free one)."""

    sock: socket.socket
    listen: Listen


@dataclass(frozen=True)
class Sockets:
    """Every socket the proxy listens on, bound before anything starts."""

    main: Bound
    # Each organization's own address, by name.
    organizations: Mapping[str, Bound]
    metrics: Bound | None

    @property
    def own_addresses(self) -> dict[str, Listen]:
        return {name: bound.listen for name, bound in self.organizations.items()}


def bind_all(app: web.Application, config: Config) -> Sockets:
    """Bind every listen address of the configuration (or raise :class:`ConfigError`), and
    tell ``app`` which socket serves which organization: before it starts, and freezes."""
    main = bind(config.listen, "listen")
    organizations = {
        organization.name: bind(organization.listen, f"{where(organization.name)} listen")
        for organization in config.organizations
        if organization.listen is not None
    }
    metrics = bind(config.metrics_listen, "metrics_listen") if config.metrics_listen else None
    sockets = Sockets(main, organizations, metrics)
    app[LISTENERS] = _listeners(config, sockets)
    return sockets


def _listeners(config: Config, sockets: Sockets) -> Listeners:
    # By the address each socket is bound to, as its connections' local address shows it.
    own = {
        (str(address[0]), int(address[1])): name
        for name, bound in sockets.organizations.items()
        if isinstance(address := bound.sock.getsockname(), tuple)
    }
    return Listeners(DEFAULT_ORGANIZATION if config.single_organization else None, own)


async def start_sites(runner: web.AppRunner, sockets: Sockets, tls: ssl.SSLContext | None) -> None:
    """Serve the application on the shared address and on each organization's own."""
    for bound in (sockets.main, *sockets.organizations.values()):
        await web.SockSite(runner, bound.sock, ssl_context=tls).start()


def bind(listen: Listen, option: str) -> Bound:
    """Bind and listen now, or raise :class:`ConfigError` naming the option (or, for an
    organization's own address, where its table says it)."""
    try:
        infos = socket.getaddrinfo(listen.host, listen.port, type=socket.SOCK_STREAM)
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        named = OPTIONS_BY_NAME[option].sources if option in OPTIONS_BY_NAME else option
        raise ConfigError(f"{named}: cannot listen on {listen}: {exc.strerror or exc}") from exc
    sock.setblocking(False)
    return Bound(sock, Listen(listen.host, sock.getsockname()[1]))


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
) -> None:
    """Serve until SIGTERM or SIGINT. ``load`` re-reads the configuration on SIGHUP;
    ``announce`` says what to print once every socket listens."""
    sockets = bind_all(app, config)
    tls = server_tls(config)
    # uvloop's loop when it is installed (proxy.loops says which, in the log).
    with asyncio.Runner(loop_factory=loops.new_event_loop) as runner:
        runner.run(_serve(app, config, sockets, tls, load, announce))


async def _serve(
    app: web.Application,
    config: Config,
    sockets: Sockets,
    tls: ssl.SSLContext | None,
    load: Loader | None,
    announce: Announce | None,
) -> None:
    grace = config.shutdown_grace_seconds or 0.001  # aiohttp reads 0 as "wait forever"
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=grace)
    await runner.setup()
    runners = [runner]
    try:
        await start_sites(runner, sockets, tls)
        if sockets.metrics is not None:
            runners.append(await _metrics_site(app, sockets.metrics))
        _say_what_runs(app, config, sockets, tls)
        said = announce(sockets.main.listen, sockets.own_addresses) if announce else None
        if said:
            print(said, flush=True)
        await _until_stopped(app, tls, load)
        logger.info("stopping: no new connections; requests in flight have %.0f s", grace)
    finally:
        for each in reversed(runners):
            await each.cleanup()
    logger.info("stopped: every request in flight has finished or was cut at the grace")


async def _metrics_site(app: web.Application, bound: Bound) -> web.AppRunner:
    """``/_proxy/metrics`` and the probes on their own address, without a key: for a scraper
    inside the cluster. The allow-list still applies."""
    runner = web.AppRunner(ops_app(app), access_log=None)
    await runner.setup()
    await web.SockSite(runner, bound.sock).start()
    return runner


async def _until_stopped(
    app: web.Application, tls: ssl.SSLContext | None, load: Loader | None
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _stopping(stop, signum))
    watcher = None
    if load is not None:
        loop.add_signal_handler(signal.SIGHUP, lambda: reload(app, tls, load))
        watcher = asyncio.create_task(_watch_files(app, tls, load), name="file watcher")
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


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


def _say_what_runs(
    app: web.Application, config: Config, sockets: Sockets, tls: ssl.SSLContext | None
) -> None:
    access = app[LIVE].access
    scheme = "https" if tls else "http"
    keys = "no keys" if access.keys is None else f"{len(access.keys)} client keys"
    allowed = "".join(f", {network}" for network in access.allow)
    main, metrics = sockets.main, sockets.metrics
    if config.single_organization:
        logger.info(
            "proxy for %s listening on %s://%s: token URL %s, client id %r, admitting this "
            "machine%s, %s%s",
            config.upstream,
            scheme,
            main.listen,
            config.token_url,
            config.client_id,
            allowed,
            keys,
            f", metrics on http://{metrics.listen}" if metrics else "",
        )
    else:
        _say_which_organizations(app, config, sockets, scheme)
    for listen, keyless, whom in _doors(app, config, sockets):
        _warn_about(listen, keyless, whom, config, tls)


def _say_which_organizations(
    app: web.Application, config: Config, sockets: Sockets, scheme: str
) -> None:
    access = app[LIVE].access
    metrics = sockets.metrics
    logger.info(
        "proxy for %s listening on %s://%s for %d organizations (a key chooses one), admitting "
        "this machine%s%s",
        config.upstream,
        scheme,
        sockets.main.listen,
        len(config.organizations),
        "".join(f", {network}" for network in access.allow),
        f", metrics on http://{metrics.listen}" if metrics else "",
    )
    for organization in config.organizations:
        own = sockets.organizations.get(organization.name)
        logger.info(
            "organization %s: client id %r, token URL %s, %s%s",
            organization.name,
            organization.client_id,
            organization.token_url,
            "keys" if organization.name in access.keyed else "no keys",
            f", its own address {scheme}://{own.listen}" if own else "",
        )


def _doors(
    app: web.Application, config: Config, sockets: Sockets
) -> list[tuple[Listen, bool, str]]:
    """Every address a client can come in by: whether it takes no key, and whom it serves."""
    access = app[LIVE].access
    shared_keyless = config.single_organization and DEFAULT_ORGANIZATION not in access.keyed
    doors = [(sockets.main.listen, shared_keyless, "the organization")]
    for name, bound in sockets.organizations.items():
        doors.append((bound.listen, name not in access.keyed, name))
    return doors


def _warn_about(
    listen: Listen, keyless: bool, whom: str, config: Config, tls: ssl.SSLContext | None
) -> None:
    if listen.is_loopback:
        return
    if keyless:
        logger.warning(
            "listening on %s, not a loopback address, without keys: anyone who can reach it "
            "from %s acts as %s on SmartDocumentor",
            listen,
            "anywhere" if config.insecure_open and not config.allow else "the allowed networks",
            whom,
        )
    elif tls is None:
        logger.warning(
            "inbound keys travel in clear over plain HTTP on %s: serve HTTPS with "
            "--tls-cert-file and --tls-key-file",
            listen,
        )
