"""The stack a scenario runs against: the fast upstream, and in front of it nginx, the minimal
aiohttp proxy and this proxy, each in its own process on 127.0.0.1.

Features of the proxy that are still being built are found in ``run --help``; a scenario that
needs one says "not available in this build" until the flag appears (:data:`FEATURES`).
"""

from __future__ import annotations

import contextlib
import functools
import string
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench import procs
from bench.upstream import STATIC_TOKEN

JSON_PATH = "/api/v1.0/external/sdtask/status?taskId=1"
STATIC_BEARER = {"Authorization": f"Bearer {STATIC_TOKEN}"}
NGINX_CONF = Path(__file__).with_name("nginx.conf.template")
START_SECONDS = 20.0

# A feature of the proxy -> the flag of `python -m proxy run` whose presence in --help shows
# that this build has it. A scenario names the feature it needs; nothing else is to change.
FEATURES = {
    "inbound keys": "--inbound-keys-file",
    "workers": "--workers",
    "upstream CA file": "--upstream-ca-file",
}


@functools.cache
def proxy_help() -> str:
    argv = [sys.executable, "-m", "proxy", "run", "--help"]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def has_feature(name: str) -> bool:
    return FEATURES[name] in proxy_help().split()


@dataclass(frozen=True)
class ProxySpec:
    """One instance of this proxy: its name in the tables and its extra ``run`` arguments."""

    name: str = "proxy"
    args: tuple[str, ...] = ()
    token_lifetime_seconds: float | None = None  # None: the upstream's default, 3600 s
    env: Mapping[str, str] = field(default_factory=dict)
    client_headers: Mapping[str, str] = field(default_factory=dict)  # what a client must send


@dataclass(frozen=True)
class Setup:
    """What a scenario's stack looks like."""

    tls: bool = False
    delay_ms: float = 0.0
    nginx: bool = True
    minimal: bool = True
    proxies: tuple[ProxySpec, ...] = (ProxySpec(),)


@dataclass(frozen=True)
class Contender:
    """Something a client can be pointed at. ``pid`` is whose CPU and memory count (none for
    the upstream itself); ``headers`` are what a client must send it."""

    name: str
    origin: str
    pid: int | None
    headers: Mapping[str, str]


@dataclass
class Stack:
    upstream: procs.Child
    upstream_http: str  # plain-HTTP origin: token endpoint and counters, even in the TLS setup
    contenders: list[Contender]
    ca_file: Path | None

    def by_name(self, name: str) -> Contender:
        return next(c for c in self.contenders if c.name == name)


def make_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 and localhost: (ca, cert, key)."""
    ca, ca_key, cert, key = (directory / n for n in ("ca.pem", "ca.key", "cert.pem", "key.pem"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    extensions = directory / "server.ext"
    extensions.write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "extendedKeyUsage=serverAuth\n"
    )
    for argv in (
        ["req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=bench CA"],
        ["req", *ec, "-keyout", key, "-out", directory / "cert.csr", "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", directory / "cert.csr", "-CA", ca, "-CAkey", ca_key,
         "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", extensions],
    ):  # fmt: skip
        subprocess.run(["openssl", *map(str, argv)], check=True, capture_output=True)
    return ca, cert, key


def _start_upstream(setup: Setup, work: Path) -> tuple[procs.Child, str, str, Path | None]:
    port, tls_port = procs.free_port(), procs.free_port()
    argv = [sys.executable, "-m", "bench.upstream", "--port", str(port)]
    argv += ["--delay-ms", str(setup.delay_ms)]
    ca = None
    if setup.tls:
        ca, cert, key = make_ca(work)
        argv += ["--tls-port", str(tls_port), "--cert", str(cert), "--key", str(key)]
    child = procs.Child("upstream", argv, work)
    http = f"http://127.0.0.1:{port}"
    try:
        procs.wait_until_answers(child, http + JSON_PATH, STATIC_BEARER, START_SECONDS)
    except Exception:
        child.stop()
        raise
    origin = f"https://127.0.0.1:{tls_port}" if setup.tls else http
    return child, http, origin, ca


Started = tuple[procs.Child, str, Mapping[str, str]]  # process, origin, what clients send


def _start_nginx(origin: str, ca: Path | None, work: Path) -> Started:
    port, (scheme, upstream) = procs.free_port(), origin.split("://")
    prefix = work / "nginx"
    prefix.mkdir()
    ssl_lines = ""
    if ca is not None:
        ssl_lines = (
            f"proxy_ssl_trusted_certificate {ca}; proxy_ssl_verify on; "
            "proxy_ssl_name localhost; proxy_ssl_session_reuse on;"
        )
    conf = string.Template(NGINX_CONF.read_text()).substitute(
        prefix=prefix, port=port, upstream=upstream, scheme=scheme, token=STATIC_TOKEN,
        ssl_lines=ssl_lines, open_files=procs.raise_open_files_limit(),
    )  # fmt: skip
    (prefix / "nginx.conf").write_text(conf)
    argv = ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", "stderr"]
    return procs.Child("nginx", argv, work), f"http://127.0.0.1:{port}", {}


def _start_minimal(origin: str, ca: Path | None, work: Path) -> Started:
    port = procs.free_port()
    argv = [sys.executable, "-m", "bench.minimal_proxy", "--port", str(port)]
    argv += ["--upstream", origin, "--token", STATIC_TOKEN]
    if ca is not None:
        argv += ["--ca-file", str(ca)]
    return procs.Child("minimal", argv, work), f"http://127.0.0.1:{port}", {}


def _start_proxy(
    spec: ProxySpec, origin: str, token_origin: str, ca: Path | None, work: Path
) -> Started:
    port = procs.free_port()
    token_url = token_origin + "/connect/token"
    if spec.token_lifetime_seconds is not None:
        token_url += f"?lifetime={spec.token_lifetime_seconds:g}"
    argv = [sys.executable, "-m", "proxy", "run", "--listen", f"127.0.0.1:{port}"]
    argv += ["--upstream", origin, "--token-url", token_url, "--client-id", "bench", *spec.args]
    env = {"SMARTDOC_CLIENT_SECRET": "bench-secret", **spec.env}
    if ca is not None:
        if has_feature("upstream CA file"):
            argv += [FEATURES["upstream CA file"], str(ca)]
        else:
            # Until the flag exists: OpenSSL's default verify paths honour SSL_CERT_FILE, and
            # aiohttp's default context loads them.
            env["SSL_CERT_FILE"] = str(ca)
    child = procs.Child(spec.name, argv, work, env)
    return child, f"http://127.0.0.1:{port}", spec.client_headers


@contextlib.contextmanager
def running(setup: Setup, work: Path) -> Iterator[Stack]:
    """Start the stack for ``setup``, wait until every part answers, stop it all afterwards."""
    procs.raise_open_files_limit()
    upstream, http, origin, ca = _start_upstream(setup, work)
    children = [upstream]
    with procs.started(children):
        starters: list[Callable[[], Started]] = []
        if setup.nginx:
            starters.append(functools.partial(_start_nginx, origin, ca, work))
        if setup.minimal:
            starters.append(functools.partial(_start_minimal, origin, ca, work))
        for spec in setup.proxies:
            starters.append(functools.partial(_start_proxy, spec, origin, http, ca, work))
        started: list[Started] = []
        for start in starters:
            started.append(start())
            children.append(started[-1][0])  # stopped at the end even if a later one fails
        contenders = [Contender("direct", origin, None, STATIC_BEARER)]
        for child, address, headers in started:
            ready = JSON_PATH if child.name in ("nginx", "minimal") else "/_proxy/readyz"
            procs.wait_until_answers(child, address + ready, headers, START_SECONDS)
            contenders.append(Contender(child.name, address, child.pid, headers))
        yield Stack(upstream, http, contenders, ca)
