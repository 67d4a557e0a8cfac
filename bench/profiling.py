"""Where this proxy's CPU time goes: py-spy samples the proxy, and then the minimal proxy,
under the same small-JSON load at 50 connections; the stacks are summed by function (self
time, and time including what it calls) and by library, in µs per request, so the two can be
set side by side."""

from __future__ import annotations

import collections
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench import load
from bench.contenders import JSON_PATH, Contender, Setup, Stack, running
from bench.report import Result
from bench.scenarios import Plan, upstream_counters

SAMPLES_PER_SECOND = 200
TOP = 20


@dataclass
class Profile:
    """Samples on CPU, by function and library, and the requests served while sampling."""

    requests: int
    total: int = 0
    own: collections.Counter[str] = field(default_factory=collections.Counter)
    within: collections.Counter[str] = field(default_factory=collections.Counter)
    libraries: collections.Counter[str] = field(default_factory=collections.Counter)

    def us_per_request(self, samples: int) -> float:
        return samples / SAMPLES_PER_SECOND / max(self.requests, 1) * 1e6


def record(pid: int, seconds: float, output: Path) -> subprocess.CompletedProcess[str]:
    py_spy = Path(sys.executable).with_name("py-spy")
    argv = [str(py_spy), "record", "--nonblocking", "--pid", str(pid)]
    argv += ["--duration", f"{seconds:g}", "--rate", str(SAMPLES_PER_SECOND)]
    argv += ["--format", "raw", "--output", str(output)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)


def _sample(plan: Plan, stack: Stack, contender: Contender, output: Path) -> Profile | str:
    """py-spy on ``contender`` under load: its profile, or why py-spy could not record."""
    assert contender.pid is not None
    with ThreadPoolExecutor(1) as pool:
        seconds = plan.profile_seconds + 2
        wrk = pool.submit(load.wrk, contender, JSON_PATH, connections=50, seconds=seconds)
        time.sleep(1)
        before = upstream_counters(stack)
        done = record(contender.pid, plan.profile_seconds, output)
        served = upstream_counters(stack)["requests"] - before["requests"] - 1
        wrk.result()
    if done.returncode != 0 or not output.exists():
        return (done.stderr or done.stdout).strip()[-600:]
    return summarize(output.read_text(), served)


def profile(plan: Plan) -> Result:
    title = (
        f"Profile: this proxy and the minimal one under small JSON GET at 50 connections "
        f"(py-spy --nonblocking, {plan.profile_seconds:g} s at {SAMPLES_PER_SECOND} Hz each)"
    )
    work = plan.directory("profile")
    with running(Setup(nginx=False), work) as stack:
        profiles = {
            name: _sample(plan, stack, stack.by_name(name), work / f"{name}.txt")
            for name in ("proxy", "minimal")
        }
    proxy, minimal = profiles["proxy"], profiles["minimal"]
    if isinstance(proxy, str) or isinstance(minimal, str):
        reason = proxy if isinstance(proxy, str) else minimal
        return Result(title, preformatted=f"py-spy could not sample here:\n\n    {reason}")
    return Result(title, preformatted=markdown(proxy, minimal))


def _frames(line: str) -> tuple[list[str], int]:
    stack, _, count = line.rpartition(" ")
    frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
    return [_function(f) for f in frames], int(count)


def _function(frame: str) -> str:
    """``name (path:line)`` -> ``name (short/path.py)``: samples add up over a whole function."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rpartition(":")[0] or where.rstrip(")")
    for marker in ("site-packages/", "/lib/python3.11/", "/wt-bench/", "/work/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def _library(function: str) -> str:
    """The top-level package or module a function lives in: aiohttp, asyncio, proxy, ..."""
    path = function.rpartition("(")[2].rstrip(")")
    return path.split("/", 1)[0].removesuffix(".py") or "(unknown)"


def summarize(raw: str, requests: int) -> Profile:
    profile = Profile(requests)
    for line in raw.splitlines():
        if not line.strip():
            continue
        frames, count = _frames(line)
        profile.total += count
        if frames:
            profile.own[frames[-1]] += count
            profile.libraries[_library(frames[-1])] += count
        for function in set(frames):
            profile.within[function] += count
    return profile


def markdown(proxy: Profile, minimal: Profile) -> str:
    """The proxy's hottest functions, then both proxies' time by library, in µs/request."""
    lines = [
        f"This proxy: {proxy.total} samples on CPU (idle waits excluded) over {proxy.requests:,} "
        f"requests, about {proxy.us_per_request(proxy.total):.0f} µs of CPU per request "
        f"(the minimal proxy: {minimal.us_per_request(minimal.total):.0f} µs).",
        "",
        "| self µs/req | self % | with callees % | minimal's self µs/req | function |",
        "|---:|---:|---:|---:|---|",
    ]
    for function, count in proxy.own.most_common(TOP):
        lines.append(
            f"| {proxy.us_per_request(count):.1f} | {count / proxy.total:.1%} "
            f"| {proxy.within[function] / proxy.total:.1%} "
            f"| {minimal.us_per_request(minimal.own[function]):.1f} | `{function}` |"
        )
    lines += ["", "Self time by library, µs per request:", ""]
    lines += ["| library | this proxy | minimal proxy |", "|---|---:|---:|"]
    for name, _ in (proxy.libraries + minimal.libraries).most_common():
        mine, theirs = proxy.libraries[name], minimal.libraries[name]
        lines.append(
            f"| {name} | {proxy.us_per_request(mine):.1f} | {minimal.us_per_request(theirs):.1f} |"
        )
    # The command line's frames hold the event loop, so they are in nearly every sample.
    own = [f for f in proxy.within if "(proxy/" in f and not f.endswith(("cli.py)", "main__.py)"))]
    own.sort(key=proxy.within.__getitem__, reverse=True)
    lines += ["", "The proxy's own functions, with what they call, µs per request:", ""]
    lines += [f"- `{f}`: {proxy.us_per_request(proxy.within[f]):.1f}" for f in own[:12]]
    return "\n".join(lines)
