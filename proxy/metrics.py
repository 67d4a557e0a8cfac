"""Prometheus metrics, in a registry of the application's own (so tests don't share one).

With ``--workers N`` every worker's series are summed by prometheus-client's multiprocess
mode: each worker writes its values to files in a directory the supervisor made (and named in
``PROMETHEUS_MULTIPROC_DIR`` before the worker started, which is when the library reads it),
and whichever worker is scraped reads them all. Counters and histograms add up; the gauges say
how they combine (``multiprocess_mode``); a gauge computed when scraped is, there, sampled
each second instead (:meth:`Metrics.follow`), since a scrape cannot call into another process.

:meth:`Metrics.observe` is an observer of finished exchanges (:mod:`proxy.exchange`). With
several organizations, the request, token and secret series carry an ``organization`` label;
with the single-organization settings they have none, so that the output, and every query and
alert written for it, stays as it was.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.multiprocess import MultiProcessCollector

from proxy.endpoints import operation
from proxy.exchange import Exchange

# *_created series double every counter's and histogram's output and nobody alerts on them.
# (A process-wide switch of prometheus-client; the proxy is its only user in the process.)
disable_created_metrics()  # type: ignore[no-untyped-call]

__all__ = ["Metrics", "method_label"]

# Any token is a valid method, so the label is bounded: one series per method a client may
# send could otherwise grow the registry without limit.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# How often a worker samples the gauges that are computed (see Metrics.follow).
SAMPLE_SECONDS = 1.0
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "OTHER"


class Metrics:
    """Every series the proxy exports; ``several``: labelled by organization.
    ``shared_directory``: the multiprocess mode's files, when this is one of several workers."""

    def __init__(self, *, several: bool = False, shared_directory: Path | None = None) -> None:
        self.registry = CollectorRegistry()
        # Several workers: the series are written to files, not kept in a registry, and what
        # is scraped is every worker's files, read and combined.
        registry: CollectorRegistry | None = self.registry
        if shared_directory is not None:
            MultiProcessCollector(self.registry, path=str(shared_directory))  # type: ignore[no-untyped-call]
            registry = None
        self.shared = shared_directory is not None
        self._followed: list[tuple[Gauge, Callable[[], float]]] = []
        self._several = several
        by_organization = ["organization"] if several else []
        self.requests = Counter(
            "smartdoc_proxy_requests",
            "API requests answered, by method, documented operation, status and client (a name "
            "from the keys file, or anonymous); the proxy's own /_proxy/ endpoints not included",
            ["method", "operation", "status", "client", *by_organization],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "smartdoc_proxy_request_duration_seconds",
            "Whole request, as the client sees it",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.upstream_seconds = Histogram(
            "smartdoc_proxy_upstream_duration_seconds",
            "From sending a request upstream to receiving its response headers",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.token_fetches = Counter(
            "smartdoc_proxy_token_fetches",
            "Token requests, by outcome (success, rejected, unavailable, secret_unreadable)",
            [*by_organization, "outcome"],
            registry=registry,
        )
        self.token_expiry = Gauge(
            "smartdoc_proxy_token_expires_in_seconds",
            "Seconds until the cached token expires (0 when none is held); with several "
            "workers, the soonest of their tokens",
            by_organization,
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.resends = Counter(
            "smartdoc_proxy_resends",
            "Requests resent with a fresh token after a 401",
            registry=registry,
        )
        self.secret_expiry_days = Gauge(
            "smartdoc_proxy_secret_expires_in_days",
            "Days until the client secret expires, from --secret-expires (NaN when not set)",
            by_organization,
            registry=registry,
            multiprocess_mode="livemin",
        )
        self._request_children: dict[tuple[str, ...], Counter] = {}
        self.in_flight = Gauge(
            "smartdoc_proxy_requests_in_flight",
            "Requests being handled",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.inspector_exchanges = Gauge(
            "smartdoc_proxy_inspector_exchanges",
            "Exchanges the inspector holds in memory (at most --inspect-exchanges)",
            registry=registry,
            multiprocess_mode="livesum",
        )

    def follow(self, gauge: Gauge, value: Callable[[], float]) -> None:
        """Export ``value()`` as ``gauge``: computed when scraped, or, with several workers,
        sampled every :data:`SAMPLE_SECONDS` by :meth:`sample`."""
        if self.shared:
            gauge.set(value())
            self._followed.append((gauge, value))
        else:
            gauge.set_function(value)

    async def sample(self) -> None:
        """With several workers, keep the followed gauges current, until cancelled."""
        while True:
            await asyncio.sleep(SAMPLE_SECONDS)
            for gauge, value in self._followed:
                gauge.set(value())

    def _of(self, organization: str) -> list[str]:
        return [organization] if self._several else []

    def token_fetches_of(self, organization: str, outcome: str) -> Counter:
        return self.token_fetches.labels(*self._of(organization), outcome)

    def token_expiry_of(self, organization: str) -> Gauge:
        return self.token_expiry.labels(organization) if self._several else self.token_expiry

    def secret_expiry_days_of(self, organization: str) -> Gauge:
        gauge = self.secret_expiry_days
        return gauge.labels(organization) if self._several else gauge

    def observe(self, exchange: Exchange) -> None:
        if exchange.own:
            return  # probes and scrapes are not API traffic
        labels = (method_label(exchange.method), operation(exchange.path), str(exchange.status),
                  exchange.client, *self._of(exchange.organization))  # fmt: skip
        # Children bound once per label set: labels() takes a lock and builds a tuple each call.
        child = self._request_children.get(labels)
        if child is None:
            child = self._request_children[labels] = self.requests.labels(*labels)
        child.inc()
        self.request_seconds.observe(exchange.duration_seconds)
        for seconds in exchange.upstream_seconds:
            self.upstream_seconds.observe(seconds)
        if exchange.resent:
            self.resends.inc()
