"""Where this proxy's CPU time goes: py-spy samples the proxy process under the small-JSON load
at 50 connections, and the stacks are summed by function (self time, and time including what
it calls) and by library."""

from __future__ import annotations

import collections
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import load
from bench.contenders import JSON_PATH, Setup, running
from bench.report import Result
from bench.scenarios import Plan

SAMPLES_PER_SECOND = 200
TOP = 20


def record(pid: int, seconds: float, output: Path) -> subprocess.CompletedProcess[str]:
    py_spy = Path(sys.executable).with_name("py-spy")
    argv = [str(py_spy), "record", "--nonblocking", "--pid", str(pid)]
    argv += ["--duration", f"{seconds:g}", "--rate", str(SAMPLES_PER_SECOND)]
    argv += ["--format", "raw", "--output", str(output)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)


def profile(plan: Plan) -> Result:
    title = (
        f"Profile: this proxy under small JSON GET at 50 connections "
        f"(py-spy --nonblocking, {plan.profile_seconds:g} s at {SAMPLES_PER_SECOND} Hz)"
    )
    work = plan.directory("profile")
    output = work / "py-spy.txt"
    with running(Setup(nginx=False, minimal=False), work) as stack, ThreadPoolExecutor(1) as pool:
        proxy = stack.by_name("proxy")
        wrk = pool.submit(
            load.wrk, proxy, JSON_PATH, connections=50, seconds=plan.profile_seconds + 2
        )
        time.sleep(1)
        assert proxy.pid is not None
        done = record(proxy.pid, plan.profile_seconds, output)
        wrk.result()
    if done.returncode != 0 or not output.exists():
        reason = (done.stderr or done.stdout).strip()[-600:]
        return Result(
            title, preformatted=f"py-spy could not sample the proxy here:\n\n    {reason}"
        )
    return Result(title, preformatted=summarize(output.read_text()))


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
    return path.split("/", 1)[0].removesuffix(".py")


def summarize(raw: str) -> str:
    own: collections.Counter[str] = collections.Counter()
    within: collections.Counter[str] = collections.Counter()
    libraries: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        if not line.strip():
            continue
        frames, count = _frames(line)
        total += count
        if frames:
            own[frames[-1]] += count
            libraries[_library(frames[-1])] += count
        for function in set(frames):
            within[function] += count
    if not total:
        return "py-spy recorded no samples."
    lines = [f"{total} samples of the proxy on CPU (idle waits excluded).", ""]
    lines += ["| self % | with callees % | function |", "|---:|---:|---|"]
    for function, count in own.most_common(TOP):
        lines.append(f"| {count / total:.1%} | {within[function] / total:.1%} | `{function}` |")
    lines += ["", "Self time by library:", ""]
    lines += [f"- {name}: {count / total:.1%}" for name, count in libraries.most_common()]
    # The command line's frames hold the event loop, so they are in nearly every sample.
    proxy_own = [f for f in within if "(proxy/" in f and "(proxy/cli.py" not in f]
    proxy_own = [f for f in proxy_own if "(proxy/__main__.py" not in f]
    proxy_own.sort(key=within.__getitem__, reverse=True)
    lines += ["", "The proxy's own functions, with what they call:", ""]
    lines += [f"- `{f}`: {within[f] / total:.1%}" for f in proxy_own[:12]]
    return "\n".join(lines)
