"""The proxy under soak, as a real process (``python -m proxy run``) on 127.0.0.1, and what is
measured of it from /proc: resident memory and open file descriptors, sampled throughout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from soak_fakes import KEY_HEADER

SAMPLE_SECONDS = 2.0
SETTLE_SECONDS = 5.0
STARTUP_SECONDS = 15.0
STOP_SECONDS = 15.0
GRACE_SECONDS = "5"
KEYS_FLAG = "--inbound-keys-file"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def keys_if_supported(src: Path, count: int) -> dict[str, str]:
    """``count`` named client keys if this proxy takes ``--inbound-keys-file``, else none."""
    shown = subprocess.run(
        [sys.executable, "-m", "proxy", "run", "--help"],
        cwd=src, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if KEYS_FLAG not in shown.stdout:
        return {}
    return {f"client-{n:02d}": secrets.token_urlsafe(24) for n in range(1, count + 1)}


async def status_without_key(url: str) -> int:
    """What the proxy answers a client that presents no key."""
    async with aiohttp.ClientSession() as session, session.get(url + "/api/x") as response:
        return response.status


@dataclass
class ProxyProcess:
    process: asyncio.subprocess.Process
    port: int
    log: Path
    key: str | None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    async def wait_healthy(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_SECONDS
        headers = {KEY_HEADER: self.key} if self.key else {}
        async with aiohttp.ClientSession(headers=headers) as session:
            while loop.time() < deadline:
                if self.process.returncode is not None:
                    raise SystemExit(f"the proxy exited with {self.process.returncode}: {self.log}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(self.url + "/_proxy/readyz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise SystemExit(f"the proxy was not ready within {STARTUP_SECONDS:g} s: {self.log}")

    async def stop(self) -> tuple[int | None, float]:
        """SIGTERM; the exit status (None if it had to be killed) and how long it took."""
        loop = asyncio.get_running_loop()
        signalled = loop.time()
        self.process.send_signal(signal.SIGTERM)
        try:
            status: int | None = await asyncio.wait_for(self.process.wait(), STOP_SECONDS)
        except TimeoutError:
            status = None
        return status, loop.time() - signalled

    def log_summary(self) -> LogSummary:
        lines = self.log.read_text(errors="replace").splitlines()
        warnings = Counter(_kind(line) for line in lines if " WARNING " in line)
        errors = sum(" ERROR " in line for line in lines)
        tracebacks = sum(line.startswith("Traceback") for line in lines)
        return LogSummary(self.log, warnings, errors, tracebacks)


@dataclass(frozen=True)
class LogSummary:
    path: Path
    warnings: Counter[str]
    errors: int
    tracebacks: int


def _kind(line: str) -> str:
    # The message without its figures, so that lines of one kind count together.
    message = line.partition(" WARNING ")[2].partition(";")[0]
    return re.sub(r"\d+(\.\d+)?", "N", message)[:100]


@contextlib.asynccontextmanager
async def running(
    src: Path, token_port: int, upstream_port: int, keys: dict[str, str]
) -> AsyncIterator[ProxyProcess]:
    """The proxy in front of the fakes, with short timeouts so that faults show quickly;
    killed at the end if it has not stopped. Its log is kept in a temporary directory."""
    folder = Path(tempfile.mkdtemp(prefix="smartdoc-soak-"))
    port, flags = free_port(), []
    if keys:
        keys_file = folder / "inbound-keys"
        keys_file.write_text("".join(f"{name} {key}\n" for name, key in keys.items()))
        keys_file.chmod(0o600)
        flags = [KEYS_FLAG, str(keys_file)]
    command = [
        sys.executable, "-m", "proxy", "run", "--listen", f"127.0.0.1:{port}",
        "--upstream", f"http://127.0.0.1:{upstream_port}",
        "--token-url", f"http://127.0.0.1:{token_port}/connect/token", "--client-id", "soak",
        "--token-timeout-seconds", "1", "--upstream-read-timeout-seconds", "2",
        "--shutdown-grace-seconds", GRACE_SECONDS, "--log-level", "WARNING", *flags,
    ]  # fmt: skip
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SMARTDOC_CLIENT_SECRET": "soak"}
    log = folder / "proxy.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *command, cwd=src, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    proxy = ProxyProcess(process, port, log, next(iter(keys.values()), None))
    try:
        await proxy.wait_healthy()
        yield proxy
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@dataclass(frozen=True)
class Sample:
    at: float
    rss_kib: int
    fds: int


@dataclass
class Sampler:
    """The proxy's VmRSS and open descriptors every ``SAMPLE_SECONDS``. The drift runs from
    the first sample after ``counts_from`` (the end of the warm-up) to the last one before
    ``counts_until`` (the end of the traffic), both under load."""

    pid: int
    counts_from: float
    counts_until: float
    samples: list[Sample] = field(default_factory=list)

    async def run(self) -> None:
        for _ in range(int(3600 * 2 / SAMPLE_SECONDS)):  # beyond any run: cancelled at its end
            self.sample()
            await asyncio.sleep(SAMPLE_SECONDS)

    def sample(self) -> None:
        status = Path(f"/proc/{self.pid}/status").read_text()
        rss = int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
        fds = len(os.listdir(f"/proc/{self.pid}/fd"))
        self.samples.append(Sample(asyncio.get_running_loop().time(), rss, fds))

    def start(self) -> Sample:
        warm = (sample for sample in self.samples if sample.at >= self.counts_from)
        return next(warm, self.samples[0])

    def during(self) -> list[Sample]:
        """From the end of the warm-up to the end of the traffic."""
        first = self.start()
        return [s for s in self.samples if first.at <= s.at < self.counts_until] or [first]
