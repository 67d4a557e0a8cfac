"""``python -m bench``: run the scenarios; print one table per scenario, then every bar.

``bench/run`` installs what this needs and calls it; see ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import aiohttp

from bench import capacity, contenders, procs, profiling, rollover, scenarios
from bench.report import Result
from bench.scenarios import Plan

SCENARIOS: dict[str, Callable[[Plan], Result]] = {
    "json-1": scenarios.json_one,
    "json-50": scenarios.json_fifty,
    "64k-50": scenarios.blob_fifty,
    "post-1m": scenarios.post_mib,
    "stream": capacity.streaming,
    "https": scenarios.https_latency,
    "rollover": rollover.rollover,
    "idle": capacity.idle_connections,
    "keys": scenarios.inbound_keys,
    "workers": scenarios.two_workers,
    "profile": profiling.profile,
}
FULL = {"rounds": 3, "seconds": 5.0, "warmup": 1.0, "rollover_seconds": 20.0, "profile": 10.0}
QUICK = {"rounds": 1, "seconds": 3.0, "warmup": 1.0, "rollover_seconds": 12.0, "profile": 5.0}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, from: {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="one short round of each (a few minutes in all)"
    )
    parser.add_argument("--rounds", type=int, help="rounds per scenario (3; quick: 1)")
    parser.add_argument("--seconds", type=float, help="seconds per measured run (5; quick: 3)")
    parser.add_argument("--stream-mib", type=int, default=1024, help="size of each transfer")
    parser.add_argument("--idle-connections", type=int, default=10_000)
    parser.add_argument("--markdown", type=Path, help="also write the report to this file")
    parser.add_argument("--keep", action="store_true", help="keep the logs and working files")
    return parser  # fmt: skip


def plan_from(args: argparse.Namespace, work: Path) -> Plan:
    preset = QUICK if args.quick else FULL
    return Plan(
        rounds=args.rounds or int(preset["rounds"]),
        seconds=args.seconds or preset["seconds"],
        warmup_seconds=preset["warmup"],
        stream_bytes=args.stream_mib * 2**20,
        idle_connections=args.idle_connections,
        rollover_seconds=preset["rollover_seconds"],
        profile_seconds=preset["profile"],
        work=work,
    )


def _version(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return next(iter((done.stdout + done.stderr).strip().splitlines()), "")


def tool_versions() -> str:
    nginx = _version(["nginx", "-v"]).removeprefix("nginx version: ")
    wrk = _version(["wrk", "--version"]).split(" [")[0]
    curl = " ".join(_version(["curl", "--version"]).split()[:2])
    uvloop = metadata.version("uvloop")
    loops = f"uvloop {uvloop} (the upstream's and the proxy's loop)"
    return f"aiohttp {aiohttp.__version__}, {nginx}, {wrk}, {curl}, {loops}"


def describe_machine(command: str) -> str:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.machine(),
    )  # fmt: skip
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    commit = _version(["git", "log", "-1", "--format=%h %s"])
    dirty = " (with uncommitted changes)" if _version(["git", "status", "--short"]) else ""
    features = [f"{name} ({flag})" for name, flag in contenders.FEATURES.items()
                if contenders.has_feature(name)]  # fmt: skip
    return "\n".join([
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} cores ({model}), {memory:.0f} GiB, "
        f"Linux {platform.release()}",
        f"- Python {platform.python_version()}, {tool_versions()}",
        f"- proxy: {commit}{dirty}",
        f"- features found in `run --help`: {', '.join(features) or 'none'}",
        f"- command: `{command}`",
        f"- load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    chosen = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        print(f"bench: unknown scenario(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    procs.raise_open_files_limit()
    command = shlex.join(["bench/run", *(sys.argv[1:] if argv is None else argv)])
    work = Path(tempfile.mkdtemp(prefix="smartdoc-bench-"))
    work.chmod(0o755)  # nginx's worker reads and writes below it as another user
    parts = ["## Benchmark", "", describe_machine(command), ""]
    print("\n".join(parts), flush=True)
    started = time.monotonic()
    bars = ["### The bars, reached or not", ""]
    try:
        for name in chosen:
            result = _run(name, plan_from(args, work), parts)
            bars += [f"- {result.title.split(' (')[0]}: {v.removeprefix('- ')}"
                     for v in result.verdicts()]  # fmt: skip
            if result.unavailable:
                bars.append(f"- {result.title}: {result.unavailable}")
    finally:
        if args.keep:
            print(f"logs and working files: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    parts += [*bars, "", f"Whole run: {(time.monotonic() - started) / 60:.1f} min."]
    print("\n".join([*bars, "", parts[-1]]))
    if args.markdown:
        args.markdown.write_text("\n".join(parts) + "\n")
    return 0


def _run(name: str, plan: Plan, parts: list[str]) -> Result:
    started = time.monotonic()
    try:
        result = SCENARIOS[name](plan)
    except Exception as exc:  # one scenario failing must not end a long run
        traceback.print_exc()
        result = Result(name, unavailable=f"it failed: {type(exc).__name__}: {exc}")
    # Other work on the machine shows in the spread; the load average says how much there was.
    took = f"{name}: {time.monotonic() - started:.0f} s, load average {os.getloadavg()[0]:.2f}"
    parts.append(result.markdown() + f"\n({took})\n")
    print(parts[-1], flush=True)
    return result
