"""Token rollover: the same load on a proxy whose tokens never expire during the run and on one
whose tokens live a few seconds, so the run crosses several lifetimes."""

from __future__ import annotations

import dataclasses

from bench import load
from bench.contenders import JSON_PATH, Contender, ProxySpec, Setup, running
from bench.load import Sample
from bench.report import Bar, Column, Result, Rounds, field_of, median_of, ratio, worst_of
from bench.scenarios import P50, P99, RPS, Counters, Plan, alternate, upstream_counters
from proxy.tokens import schedule

LIFETIME_SECONDS = 4.0
STEADY_LIFETIME_SECONDS = 3600.0
# Small against the lifetime, so the proxy refreshes shortly before expiry (its rule is
# max(lifetime - margin, lifetime / 2)) and one refresh period is most of one lifetime.
MARGIN_SECONDS = 0.5
CONNECTIONS = 10
MARGIN = ("--refresh-margin-seconds", f"{MARGIN_SECONDS:g}")
STEADY = ProxySpec("proxy, 1 h tokens", MARGIN)
EXPIRING = ProxySpec(f"proxy, {LIFETIME_SECONDS:g} s tokens", MARGIN, LIFETIME_SECONDS)
LIFETIMES = {STEADY.name: STEADY_LIFETIME_SECONDS, EXPIRING.name: LIFETIME_SECONDS}


def rollover(plan: Plan) -> Result:
    with running(Setup(nginx=False, minimal=False, proxies=(STEADY, EXPIRING)),
                 plan.directory("rollover")) as stack:  # fmt: skip

        def measure(contender: Contender) -> Sample:
            load.wrk(contender, JSON_PATH, connections=CONNECTIONS, seconds=plan.warmup_seconds)
            before = upstream_counters(stack)
            sample = load.wrk(
                contender, JSON_PATH, connections=CONNECTIONS, seconds=plan.rollover_seconds
            )
            return _with_tokens(sample, contender.name, before, upstream_counters(stack))

        proxies = [c for c in stack.contenders if c.name in LIFETIMES]
        rounds = alternate(plan, proxies, measure)
    return _table(plan, rounds)


def _with_tokens(sample: Sample, name: str, before: Counters, after: Counters) -> Sample:
    lifetime = LIFETIMES[name]
    key = f"{lifetime:g}"
    tokens = after["tokens_by_lifetime"].get(key, 0) - before["tokens_by_lifetime"].get(key, 0)
    refresh_at, _ = schedule(0.0, lifetime, MARGIN_SECONDS)
    extra = {
        "token_requests": float(tokens),
        "lifetimes": sample.seconds / lifetime,
        "refresh_periods": sample.seconds / refresh_at,
        "unauthorized": float(after["unauthorized"] - before["unauthorized"]),
    }
    extra["beyond_one_per_period"] = tokens - extra["refresh_periods"]
    return dataclasses.replace(sample, extra=extra)


def _table(plan: Plan, rounds: Rounds) -> Result:
    p99_ratio = ratio(field_of("p99_ms"), STEADY.name)
    columns = (
        RPS, P50, Column("p90 ms", field_of("p90_ms"), 2), P99,
        Column("p99 ÷ 1 h tokens", p99_ratio, 2),
        Column("token requests", field_of("token_requests")),
        Column("lifetimes spanned", field_of("lifetimes"), 1),
        Column("refresh periods", field_of("refresh_periods"), 1),
        Column("upstream 401s", field_of("unauthorized")),
        Column("errors", field_of("errors")),
    )  # fmt: skip
    bars = (
        Bar("p99 within 1.1 x the run without expiry", median_of(p99_ratio, EXPIRING.name),
            1.1, at_least=False, unit="x"),
        Bar("one token request per lifetime, read as: at most one per refresh period "
            "(token requests beyond that, worst round)",
            worst_of("beyond_one_per_period", EXPIRING.name), 1.0, at_least=False),
    )  # fmt: skip
    title = (
        f"Token rollover: {LIFETIME_SECONDS:g} s tokens against 1 h tokens, {CONNECTIONS} "
        f"connections ({plan.rounds_of(f'{plan.rollover_seconds:g} s')})"
    )
    result = Result(title, rounds, columns, bars)
    refresh_at, _ = schedule(0.0, LIFETIME_SECONDS, MARGIN_SECONDS)
    result.notes.append(
        f"both proxies run with --refresh-margin-seconds {MARGIN_SECONDS:g}: a "
        f"{LIFETIME_SECONDS:g} s token is refreshed after {refresh_at:g} s; the upstream "
        "refuses expired tokens with 401, so a late refresh shows as 401s"
    )
    return result
