"""The soak's final report: what was sent, what was injected, what went wrong outside the
injected faults (which must be nothing), what the token endpoint saw, and how the proxy's
memory and descriptors moved from the end of the warm-up to the end of the run."""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass

from soak_fakes import TokenEndpoint, Upstream
from soak_proxy import LogSummary, Sample, Sampler
from soak_traffic import Traffic, Window

MIB = 1024 * 1024


@dataclass(frozen=True)
class Run:
    """What the traffic did: its length, its clients' tally, the fault schedule, the samples."""

    seconds: float
    traffic: Traffic
    windows: list[Window]
    sampler: Sampler
    keyless_status: int | None  # what a request without a key got, when keys are in use


@dataclass(frozen=True)
class Report:
    args: argparse.Namespace
    run: Run
    tokens: TokenEndpoint
    upstream: Upstream
    keys: dict[str, str]
    log: LogSummary
    stopped: tuple[int | None, float]  # the proxy's exit status after SIGTERM, and when

    @property
    def seconds(self) -> float:
        return self.run.seconds

    @property
    def passed(self) -> bool:
        return (
            self.run.traffic.tally.unexpected == 0
            and self.upstream.rejected == 0
            and self.upstream.key_leaked == 0
            and self.run.keyless_status != 200
            and self.log.tracebacks == 0
            and self.stopped[0] == 0
        )

    def text(self, wall_seconds: float) -> str:
        lines = [
            *self._setting(wall_seconds),
            *self._traffic(),
            *self._faults(),
            *self._tokens(),
            *self._proxy(),
            "PASS" if self.passed else "FAIL",
        ]
        return "\n".join(lines)

    def _setting(self, wall_seconds: float) -> list[str]:
        args = self.args
        keys = (
            f"{len(self.keys)} inbound keys (--inbound-keys-file), one per client in turn"
            if self.keys
            else "no inbound keys: this proxy has no --inbound-keys-file, clients sent none"
        )
        return [
            f"soak: {self.seconds / 60:.1f} min of traffic ({wall_seconds / 60:.1f} min in all), "
            f"{args.clients} clients, seed {args.seed}",
            f"  {keys}{self._keyless()}",
            f"  token lifetime {args.token_lifetime_seconds:g} s: "
            f"{self.seconds / args.token_lifetime_seconds:.0f} lifetimes",
        ]

    def _keyless(self) -> str:
        status = self.run.keyless_status
        return "" if status is None else f"; a request without a key got {status}"

    def _traffic(self) -> list[str]:
        tally = self.run.traffic.tally
        total = sum(tally.requests.values())
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(tally.requests.items()))
        return [
            f"requests: {total} ({total / self.seconds:.0f}/s): {kinds}",
            f"  uploaded {tally.bytes_up / MIB:.0f} MiB, downloaded {tally.bytes_down / MIB:.0f}"
            f" MiB, every body checked",
            f"  succeeded {tally.ok}; downloads abandoned by the client on purpose "
            f"{tally.abandoned}",
            f"  errors explained by an injected fault: {sum(tally.expected.values())} "
            f"({_counts(tally.expected)})",
            f"  errors outside injected faults: {tally.unexpected}",
            *(f"    {example}" for example in tally.examples),
        ]

    def _faults(self) -> list[str]:
        kinds: Counter[str] = Counter()
        seconds: Counter[str] = Counter()
        for window in self.run.windows:
            kinds[window.kind] += 1
            seconds[window.kind] += int(window.end - window.start)
        each = ", ".join(f"{kind} x{kinds[kind]} ({seconds[kind]} s)" for kind in sorted(kinds))
        upstream = self.upstream
        return [
            f"faults injected: {len(self.run.windows)} windows: {each or 'none'}",
            f"  upstream: {upstream.requests} requests, {len(upstream.injected)} with a fault",
            f"  upstream 401s (an expired or unknown token sent): {upstream.rejected}; requests "
            f"that still carried X-Proxy-Key: {upstream.key_leaked}",
        ]

    def _tokens(self) -> list[str]:
        tokens, lifetime = self.tokens, self.args.token_lifetime_seconds
        # With a lifetime this short the proxy refreshes half-way through it.
        steady = self.seconds / (lifetime / 2)
        return [
            f"token requests: {tokens.requests} ({tokens.faulted} answered with an injected "
            f"fault); refreshing every {lifetime / 2:g} s alone needs about {steady:.0f}",
        ]

    def _proxy(self) -> list[str]:
        sampler = self.run.sampler
        during, start, idle = sampler.during(), sampler.start(), sampler.samples[-1]
        end = during[-1]
        log = self.log
        warnings = _counts(Counter(dict(log.warnings.most_common(3))))
        return [
            f"proxy RSS: {start.rss_kib / 1024:.1f} MiB after the warm-up -> "
            f"{end.rss_kib / 1024:.1f} MiB at the end of the traffic "
            f"({(end.rss_kib - start.rss_kib) / 1024:+.1f} MiB), max "
            f"{max(s.rss_kib for s in during) / 1024:.1f} MiB; idle after: "
            f"{idle.rss_kib / 1024:.1f} MiB",
            f"  at 0, 25, 50, 75 and 100 % of that: {_fifths(during, 'rss_kib', 1024)} MiB",
            f"proxy open fds: {start.fds} -> {end.fds} ({end.fds - start.fds:+d}), max "
            f"{max(s.fds for s in during)}; idle after: {idle.fds}",
            f"  at 0, 25, 50, 75 and 100 % of that: {_fifths(during, 'fds', 1)}",
            f"proxy log ({log.path}): {sum(log.warnings.values())} warnings, {log.errors} errors,"
            f" {log.tracebacks} tracebacks; commonest warnings: {warnings}",
            f"SIGTERM: exit status {self.stopped[0]} after {self.stopped[1]:.1f} s",
        ]


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{key} {value}" for key, value in counter.most_common()) or "none"


def _fifths(samples: list[Sample], name: str, unit: int) -> str:
    """A figure at the start, the quarters and the end of the samples: its trend, if any."""
    picked = [samples[round(i * (len(samples) - 1) / 4)] for i in range(5)]
    return " ".join(f"{getattr(sample, name) / unit:.1f}".removesuffix(".0") for sample in picked)
