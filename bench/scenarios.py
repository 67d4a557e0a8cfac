"""The scenarios of the performance issue, each a function from a :class:`Plan` to a table.

Every scenario starts its own stack (so peak memory and connection counts start fresh), runs
the contenders in alternating rounds, and states the issue's bars under its table. A scenario
that needs a feature this build of the proxy lacks is reported as not available.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench import load, report
from bench.contenders import (
    FEATURES,
    JSON_PATH,
    Contender,
    ProxySpec,
    Setup,
    Stack,
    has_feature,
    running,
)
from bench.load import Sample
from bench.report import Bar, Column, Result, Rounds, added, field_of, median_of, ratio
from proxy.options import OPTIONS_BY_NAME

# The proxy's upstream pool as shipped: its default --upstream-pool-size.
POOL_SIZE = int(OPTIONS_BY_NAME["upstream_pool_size"].default or 100)


@dataclass(frozen=True)
class Plan:
    rounds: int
    seconds: float
    warmup_seconds: float
    stream_bytes: int
    idle_connections: int
    rollover_seconds: float
    profile_seconds: float
    work: Path

    def rounds_of(self, what: str) -> str:
        """ "3 rounds of 5 s", for the titles."""
        return f"{self.rounds} round{'s' * (self.rounds != 1)} of {what}"

    def directory(self, name: str) -> Path:
        path = self.work / name
        path.mkdir(mode=0o755)
        return path


Measure = Callable[[Contender], Sample]

RPS = Column("req/s", field_of("rps"), spread=True)
P50 = Column("p50 ms", field_of("p50_ms"), 2)
P99 = Column("p99 ms", field_of("p99_ms"), 2)
ADDED_P50 = Column("p50 added ms", added(field_of("p50_ms"), "direct"), 2)
CPU = Column("CPU µs/req", field_of("cpu_us_per_request"))
RPS_VS_NGINX = Column("req/s ÷ nginx", ratio(field_of("rps"), "nginx"), 2)
RPS_VS_DIRECT = Column("req/s ÷ direct", ratio(field_of("rps"), "direct"), 2)
CPU_VS_MINIMAL = Column("CPU ÷ minimal", ratio(field_of("cpu_us_per_request"), "minimal"), 2)
CONNECTIONS = Column("upstream conns opened /10k req", field_of("upstream_connections_per_10k"), 1)
ERRORS = Column("errors", field_of("errors"))
WRK_COLUMNS = (RPS, P50, P99, ADDED_P50, CPU, RPS_VS_NGINX, CPU_VS_MINIMAL, CONNECTIONS, ERRORS)


def alternate(plan: Plan, contenders: list[Contender], measure: Measure) -> Rounds:
    """``plan.rounds`` rounds; each round measures every contender once, starting one further
    along than the round before, so that no contender always goes first."""
    rounds: Rounds = {c.name: [] for c in contenders}
    for number in range(plan.rounds):
        shift = number % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            rounds[contender.name].append(measure(contender))
    return rounds


Counters = dict[str, Any]  # the upstream's /_upstream/stats


def upstream_counters(stack: Stack) -> Counters:
    url = stack.upstream_http + "/_upstream/stats"
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
        counters: Counters = json.load(response)
    return counters


def _counters_window(stack: Stack, start: float, end: float) -> tuple[Counters, Counters]:
    time.sleep(start)
    before = upstream_counters(stack)
    time.sleep(end - start)
    return before, upstream_counters(stack)


def connections_per_10k(stack: Stack, before: Counters, after: Counters) -> float:
    """Connections the upstream accepted per 10 000 requests it served, between two reads of
    its counters (each read is one request, on a new plain-HTTP connection)."""
    scheme = "https" if stack.ca_file else "http"
    opened: int = after["connections"][scheme] - before["connections"][scheme] - (scheme == "http")
    served: int = after["requests"] - before["requests"] - 1
    return opened * 10_000 / max(served, 1)


def wrk_measure(plan: Plan, stack: Stack, path: str, connections: int, body_bytes: int) -> Measure:
    """Warm up, then one measured wrk run. The upstream's connections are counted in the
    steady part of the run: from a second in to half a second before the end, so that the
    connections a proxy replaces when the previous load's clients left are not counted."""

    def measure(contender: Contender) -> Sample:
        load.wrk(contender, path, connections=connections, seconds=plan.warmup_seconds,
                 body_bytes=body_bytes)  # fmt: skip
        with ThreadPoolExecutor(1) as pool:
            window = pool.submit(
                _counters_window, stack, min(1.0, plan.seconds / 4), plan.seconds - 0.5
            )
            sample = load.wrk(contender, path, connections=connections, seconds=plan.seconds,
                              body_bytes=body_bytes)  # fmt: skip
            per_10k = connections_per_10k(stack, *window.result())
        return replace(sample, extra={**sample.extra, "upstream_connections_per_10k": per_10k})

    return measure


def wrk_table(
    plan: Plan, name: str, title: str, setup: Setup, connections: int, *, path: str = JSON_PATH,
    body_bytes: int = 0, columns: tuple[Column, ...] = WRK_COLUMNS, bars: tuple[Bar, ...] = (),
) -> Result:  # fmt: skip
    """The usual scenario: the same wrk load on every contender, in alternating rounds."""
    with running(setup, plan.directory(name)) as stack:
        measure = wrk_measure(plan, stack, path, connections, body_bytes)
        rounds = alternate(plan, stack.contenders, measure)
    return Result(f"{title} ({_rounds_text(plan)})", rounds, columns, bars)


def _rounds_text(plan: Plan) -> str:
    return f"{plan.rounds_of(f'{plan.seconds:g} s')} after {plan.warmup_seconds:g} s warm-up"


def proxy_ratio(value: report.Value, reference: str) -> Callable[[Rounds], float | None]:
    return median_of(ratio(value, reference), "proxy")


CPU_BAR = Bar("CPU per proxied request ≤ 1.3 x the minimal aiohttp proxy's",
              proxy_ratio(field_of("cpu_us_per_request"), "minimal"), 1.3, at_least=False,
              unit="x")  # fmt: skip
NGINX_BAR = Bar("one process ≥ 0.25 x nginx's req/s", proxy_ratio(field_of("rps"), "nginx"),
                0.25, at_least=True, unit="x")  # fmt: skip


def json_one(plan: Plan) -> Result:
    added_bar = Bar("p50 added over direct ≤ 0.6 ms",
                    median_of(added(field_of("p50_ms"), "direct"), "proxy"), 0.6,
                    at_least=False, unit=" ms")  # fmt: skip
    return wrk_table(plan, "json-1", "Small JSON GET, 1 connection", Setup(), 1,
                     bars=(added_bar,))  # fmt: skip


def json_fifty(plan: Plan) -> Result:
    return wrk_table(plan, "json-50", "Small JSON GET, 50 connections", Setup(), 50,
                     bars=(CPU_BAR, NGINX_BAR))  # fmt: skip


def blob_fifty(plan: Plan) -> Result:
    return wrk_table(plan, "64k-50", "64 KiB responses, 50 connections", Setup(), 50,
                     path=f"/bytes/{64 * 1024}")  # fmt: skip


def post_mib(plan: Plan) -> Result:
    return wrk_table(plan, "post-1m", "1 MiB POST bodies, 10 connections", Setup(), 10,
                     body_bytes=1 << 20)  # fmt: skip


def https_latency(plan: Plan) -> Result:
    columns = (RPS, RPS_VS_DIRECT, P50, P99, ADDED_P50, CPU, CPU_VS_MINIMAL, CONNECTIONS, ERRORS)
    bars = (
        Bar("≥ 0.95 x direct throughput", proxy_ratio(field_of("rps"), "direct"), 0.95,
            at_least=True, unit="x"),
        Bar("p50 added ≤ 1 ms", median_of(added(field_of("p50_ms"), "direct"), "proxy"), 1.0,
            at_least=False, unit=" ms"),
        Bar(f"upstream connections opened per 10 000 requests ≤ the pool size "
            f"({POOL_SIZE})",
            median_of(field_of("upstream_connections_per_10k"), "proxy"),
            POOL_SIZE, at_least=False),
    )  # fmt: skip
    # With --workers 2 as well, once built: the bars are the one-process proxy's; the second
    # row shows what a second core buys on this shape of traffic.
    proxies: tuple[ProxySpec, ...] = (ProxySpec(),)
    if has_feature("workers"):
        proxies += (ProxySpec(name="proxy-w2", args=(FEATURES["workers"], "2")),)
    result = wrk_table(plan, "https", "HTTPS upstream, 20 ms added latency, 50 connections",
                       Setup(tls=True, delay_ms=20, proxies=proxies), 50, columns=columns,
                       bars=bars)  # fmt: skip
    result.notes.append(
        "the upstream holds every answer 20 ms before its first byte (think time, not network "
        "round trips)"
    )
    if len(proxies) > 1:
        result.notes.append("proxy-w2 is this proxy with --workers 2")
    return result


# A scenario that needs a feature of the proxy still being built: it runs once `run --help`
# shows the feature's flag (bench.contenders.FEATURES), and is reported as not available before.
INBOUND_KEY = "bench-inbound-key-0123456789"
# As a client presents its key to the proxy (README, "Who gets in").
INBOUND_KEY_HEADERS = {"X-Proxy-Key": INBOUND_KEY}


def unavailable(title: str, feature: str) -> Result:
    flag = FEATURES[feature]
    return Result(title, unavailable=f"not available in this build (`run --help` has no {flag})")


def inbound_keys(plan: Plan) -> Result:
    title = "Small JSON GET, 50 connections, inbound keys on"
    if not has_feature("inbound keys"):
        return unavailable(title, "inbound keys")
    keys = plan.work / "inbound-keys"
    keys.write_text(f"bench {INBOUND_KEY}\n")
    spec = ProxySpec(args=(FEATURES["inbound keys"], str(keys)), client_headers=INBOUND_KEY_HEADERS)
    return wrk_table(plan, "keys", title, Setup(proxies=(spec,)), 50, bars=(CPU_BAR, NGINX_BAR))


def two_workers(plan: Plan) -> Result:
    title = "Small JSON GET, 50 connections, this proxy with --workers 2"
    if not has_feature("workers"):
        return unavailable(title, "workers")
    spec = ProxySpec(args=(FEATURES["workers"], "2"))
    bar = Bar("with --workers 2 ≥ 0.35 x nginx's req/s", proxy_ratio(field_of("rps"), "nginx"),
              0.35, at_least=True, unit="x")  # fmt: skip
    return wrk_table(plan, "workers", title, Setup(proxies=(spec,)), 50, bars=(bar,))
