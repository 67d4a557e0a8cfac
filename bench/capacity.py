"""What the contenders hold: 1 GiB each way with bounded memory, and 10 000 idle keep-alive
connections while a load runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import uvloop

from bench import load
from bench.contenders import JSON_PATH, Contender, ProxySpec, Setup, running
from bench.load import Sample
from bench.report import Bar, Column, Result, Rounds, field_of, median, ratio, worst_of
from bench.scenarios import P99, RPS, Plan, alternate, proxy_ratio

PEAK_RSS_LIMIT_MIB = 64


WAYS = (("download", "down"), ("upload", "up"))


def _upload_source(plan: Plan) -> tuple[Path, Path]:
    """The stream scenario's directory, and a file of ``stream_bytes`` zeros to upload."""
    work = plan.directory("stream")
    source = work / "upload.bin"
    with source.open("wb") as sparse:
        sparse.truncate(plan.stream_bytes)  # reads as zeros, costs no disk
    with source.open("rb") as cached:
        # Read once, so that the first upload does not pay for filling the page cache.
        while cached.read(1 << 20):
            pass
    return work, source


def _both_ways(plan: Plan, source: Path) -> Callable[[Contender], Sample]:
    gib = plan.stream_bytes / 2**30

    def measure(contender: Contender) -> Sample:
        extra: dict[str, float] = {}
        seconds, errors = 0.0, 0
        for way, key in WAYS:
            sample = load.transfer(contender, way, plan.stream_bytes, source)
            extra |= {f"{key}_{name}": value for name, value in sample.extra.items()}
            if sample.cpu_us_per_request is not None:
                extra[f"{key}_cpu_s_per_gib"] = sample.cpu_us_per_request / 1e6 / gib
            seconds, errors = seconds + sample.seconds, errors + sample.errors
        return Sample(2, seconds, errors, extra=extra)

    return measure


def streaming(plan: Plan) -> Result:
    work, source = _upload_source(plan)
    # The proxy's --max-body-bytes (100 MiB by default) refuses a 1 GiB upload with 413 before
    # anything is sent: raised here, and the table says so.
    limit = max(2 * plan.stream_bytes, 2**31)
    setup = Setup(proxies=(ProxySpec(args=("--max-body-bytes", str(limit))),))
    with running(setup, work) as stack:
        rounds = alternate(plan, stack.contenders, _both_ways(plan, source))
    gib = plan.stream_bytes / 2**30
    title = f"Streaming {gib:g} GiB down and {gib:g} GiB up, one transfer at a time"
    result = Result(f"{title} (curl, {plan.rounds_of('one each')})", rounds, STREAM_COLUMNS,
                    STREAM_BARS)  # fmt: skip
    result.notes.append(f"the proxy runs with --max-body-bytes {limit} (its default is 100 MiB)")
    cumulative = any(s.extra.get("down_peak_is_cumulative") for r in rounds.values() for s in r)
    result.notes.append(
        "peak RSS is the process's VmHWM, "
        + (
            "since start: it could not be reset here"
            if cumulative
            else "reset before each transfer"
        )
    )
    return result


STREAM_COLUMNS = (
    *(Column(f"{w} MiB/s", field_of(f"{k}_mib_per_s"), spread=True) for w, k in WAYS),
    *(Column(f"{w} ÷ nginx", ratio(field_of(f"{k}_mib_per_s"), "nginx"), 2) for w, k in WAYS),
    *(Column(f"{w} peak RSS MiB", field_of(f"{k}_peak_rss_mib"), 1) for w, k in WAYS),
    *(Column(f"{w} CPU s/GiB", field_of(f"{k}_cpu_s_per_gib"), 2) for w, k in WAYS),
)
STREAM_BARS = (
    *(Bar(f"{way} peak RSS ≤ {PEAK_RSS_LIMIT_MIB} MiB (worst round)",
          worst_of(f"{key}_peak_rss_mib", "proxy"), PEAK_RSS_LIMIT_MIB, at_least=False,
          unit=" MiB") for way, key in WAYS),
    *(Bar(f"{way} throughput ≥ nginx's", proxy_ratio(field_of(f"{key}_mib_per_s"), "nginx"),
          1.0, at_least=True, unit="x") for way, key in WAYS),
)  # fmt: skip


def idle_connections(plan: Plan) -> Result:
    count = plan.idle_connections

    def measure(contender: Contender) -> Sample:
        def during() -> asyncio.Future[Sample]:
            return asyncio.ensure_future(asyncio.to_thread(
                load.wrk, contender, JSON_PATH, connections=50, seconds=plan.seconds))  # fmt: skip

        return uvloop.run(load.hold_idle(contender, count, JSON_PATH, during))

    with running(Setup(), plan.directory("idle")) as stack:
        rounds = alternate(plan, stack.contenders, measure)
    columns = (
        Column("opened", field_of("opened")), Column("held", field_of("held")),
        Column("RSS idle MiB", field_of("rss_idle_mib"), 1),
        Column("RSS under load MiB", field_of("rss_loaded_mib"), 1),
        RPS, P99, Column("errors", field_of("errors")),
    )  # fmt: skip
    held = Bar(f"all {count:,} idle connections held (fraction still answering afterwards)",
               lambda r: _held_fraction(r, count), 1.0, at_least=True)  # fmt: skip
    served = Bar("normal requests still served (req/s during, 50 connections)",
                 lambda r: median([s.rps if not s.errors else 0.0 for s in r.get("proxy", [])]),
                 1.0, at_least=True)  # fmt: skip
    title = f"{count:,} idle keep-alive connections held while 50 connections load"
    return Result(f"{title} ({plan.rounds_of(f'{plan.seconds:g} s')})", rounds, columns,
                  (held, served))  # fmt: skip


def _held_fraction(rounds: Rounds, count: int) -> float | None:
    with contextlib.suppress(KeyError, ValueError):
        return min(s.extra["held"] for s in rounds["proxy"]) / count
    return None
