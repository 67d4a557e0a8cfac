"""Soak: mixed traffic through the proxy, for a bounded time, with faults injected at random.

Starts, on 127.0.0.1 only, a token endpoint issuing short-lived tokens and an upstream (both in
this process, see soak_fakes.py) and the proxy as a real process (``python -m proxy run``).
Many clients (each with its own inbound key, when the proxy has ``--inbound-keys-file``) send
small JSON requests, uploads and downloads, checking every body, through several token
lifetimes, while a random schedule switches faults on and off: token endpoint 500s, HTML pages
and slow answers; upstream 5xx, slow answers, resets mid-answer and keep-alive connections
closed as they are reused; clients abandoning downloads. Then it reports requests, errors
explained by an injected fault, errors outside them (there must be none), token requests, and
the drift of the proxy's resident memory and open file descriptors. Exit status 0 when it
passed, 1 when not.

    .venv/bin/python bench/soak.py [--minutes 1] [--clients 40] [--token-lifetime-seconds 20]
                                   [--seed 1] [--proxy-src DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

import soak_proxy
import soak_report
from soak_fakes import TOKEN_FAULTS, UPSTREAM_FAULTS, TokenEndpoint, Upstream, serving
from soak_report import Run
from soak_traffic import Traffic, Window

MAX_MINUTES = 60.0  # a hard bound, whatever is asked
WARMUP_SECONDS = 10.0  # before the first fault, and before the first memory sample counts
QUIET_END_SECONDS = 20.0  # no fault lasts this close to the end: the run ends recovered
# A token fault longer than the token's lifetime (less the refresh time) reaches the clients.
WINDOW_SECONDS = {"token": (5.0, 25.0), "upstream": (3.0, 10.0), "client": (3.0, 10.0)}
GAP_SECONDS = (3.0, 10.0)
FAULTS = (
    *(f"token-{f}" for f in TOKEN_FAULTS),
    *(f"upstream-{f}" for f in UPSTREAM_FAULTS),
    "client-abort",
)


def schedule(
    rng: random.Random, start: float, seconds: float, kinds: tuple[str, ...] = FAULTS
) -> list[Window]:
    """Random fault windows, one at a time, from the warm-up to the quiet end."""
    windows, at, last = [], start + WARMUP_SECONDS, start + seconds - QUIET_END_SECONDS
    while True:
        kind = rng.choice(kinds)
        begin = at + rng.uniform(*GAP_SECONDS)
        end = begin + rng.uniform(*WINDOW_SECONDS[kind.partition("-")[0]])
        if end > last:
            return windows
        windows.append(Window(kind, begin, end))
        at = end


async def inject(windows: list[Window], tokens: TokenEndpoint, upstream: Upstream) -> None:
    """Switch each window's fault on and off on time (client faults need no switch)."""
    loop = asyncio.get_running_loop()
    for window in windows:
        side, _, fault = window.kind.partition("-")
        await asyncio.sleep(max(0.0, window.start - loop.time()))
        target = tokens if side == "token" else upstream if side == "upstream" else None
        if target is not None:
            target.fault = fault
        await asyncio.sleep(max(0.0, window.end - loop.time()))
        if target is not None:
            target.fault = None


async def soak(args: argparse.Namespace) -> soak_report.Report:
    rng = random.Random(args.seed)  # noqa: S311 (a reproducible schedule, not a secret)
    tokens = TokenEndpoint(lifetime_seconds=args.token_lifetime_seconds)
    upstream = Upstream(tokens, random.Random(rng.random()))  # noqa: S311
    async with serving(tokens, upstream) as (token_port, upstream_port):
        keys = soak_proxy.keys_if_supported(args.proxy_src, args.keys)
        async with soak_proxy.running(args.proxy_src, token_port, upstream_port, keys) as proxy:
            run = await drive(args, rng, proxy, tokens, upstream, list(keys.values()))
            stopped = await proxy.stop()
    return soak_report.Report(args, run, tokens, upstream, keys, proxy.log_summary(), stopped)


async def drive(
    args: argparse.Namespace,
    rng: random.Random,
    proxy: soak_proxy.ProxyProcess,
    tokens: TokenEndpoint,
    upstream: Upstream,
    keys: list[str],
) -> Run:
    """The clients and the fault schedule until the end, then a few idle seconds."""
    loop = asyncio.get_running_loop()
    start, seconds = loop.time(), args.minutes * 60
    keyless = await soak_proxy.status_without_key(proxy.url) if keys else None
    windows = schedule(rng, start, seconds, args.faults)
    traffic = Traffic(proxy.url, upstream, windows, rng, keys)
    sampler = soak_proxy.Sampler(proxy.pid, start + WARMUP_SECONDS, start + seconds)
    faults = inject(windows, tokens, upstream)
    background = [asyncio.create_task(sampler.run()), asyncio.create_task(faults)]
    await asyncio.gather(*(traffic.client(n, start + seconds) for n in range(args.clients)))
    ran = loop.time() - start
    await asyncio.sleep(soak_proxy.SETTLE_SECONDS)  # idle: connections close, tasks end
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    sampler.sample()
    return Run(ran, traffic, windows, sampler, keyless)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="length of the run (max 60)")
    parser.add_argument("--clients", type=int, default=40, help="concurrent clients")
    parser.add_argument("--keys", type=int, default=20, help="inbound keys, if the proxy has them")
    parser.add_argument("--token-lifetime-seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=1, help="of the fault schedule and traffic")
    parser.add_argument(
        "--faults", type=_kinds, default=FAULTS, help=f"some of {','.join(FAULTS)} (all by default)"
    )
    parser.add_argument(
        "--proxy-src",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="the checkout whose proxy to run (this one by default)",
    )
    args = parser.parse_args(argv)
    if not 0 < args.minutes <= MAX_MINUTES:
        parser.error(f"--minutes must be more than 0 and at most {MAX_MINUTES:g}")
    if args.minutes * 60 < WARMUP_SECONDS + QUIET_END_SECONDS:
        print("soak: a run this short has no room for faults", file=sys.stderr)
    return args


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(kind.strip() for kind in text.split(",") if kind.strip())
    unknown = set(kinds) - set(FAULTS)
    if not kinds or unknown:
        raise argparse.ArgumentTypeError(f"not a fault: {', '.join(sorted(unknown)) or text!r}")
    return kinds


def main(argv: list[str]) -> int:
    args = parse(argv)
    began = time.monotonic()
    bound = args.minutes * 60 + 180  # the run, the proxy's start and stop, and slack
    report = asyncio.run(asyncio.wait_for(soak(args), bound))
    print(report.text(time.monotonic() - began))
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
