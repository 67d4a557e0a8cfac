"""The supervisor of ``run --workers N``: starts the workers, watches, replaces and stops them,
and serves nothing itself (:mod:`proxy.workers` says what the workers share, and how).

- **Start.** Every address is reserved first (a busy port is one line and exit 2), then N
  workers start at once. The run begins when every one has said it serves, and ends, with its
  status, if one cannot start.
- **Signals.** SIGTERM and SIGINT are passed on as SIGTERM (each worker drains within the
  grace), SIGHUP as SIGHUP to the workers that serve (each reloads itself). Workers run in a
  process group of their own, so a terminal's Ctrl-C reaches the supervisor only, which then
  stops them: a second signal must not cut a drain short.
- **A worker that dies** while the run serves is replaced, after a pause that doubles with
  each replacement that fails to start (up to :data:`REPLACE_AT_MOST_SECONDS`); the others
  serve meanwhile.
- **A supervisor that dies** leaves no worker serving: each holds the read end of a pipe only
  the supervisor writes to, and the end of that pipe is its SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import multiprocess

from proxy.config import Config, Listen
from proxy.workers import WORKER_ENV, Addresses, Worker, fixed_settings, reserve

logger = logging.getLogger(__name__)

# Read by prometheus-client when it is imported: the worker's environment must have it.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# How long a worker may take to start serving.
START_SECONDS = 30.0
# The pause before a worker that died is replaced, doubled after each failed replacement.
REPLACE_AFTER_SECONDS = 1.0
REPLACE_AT_MOST_SECONDS = 30.0
# Beyond the grace, how long stopping workers get before they are killed.
STOP_MARGIN_SECONDS = 5.0
# A Unix socket's path has room for 107 bytes: a longer TMPDIR falls back to /tmp.
SOCKET_PATH_MOST = 100


def supervise(config: Config, argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Run ``config.workers`` workers of ``run`` with ``argv`` until a signal; the exit status
    is 0, or that of a worker that could not start (1 when one had to be killed)."""
    sockets, addresses = reserve(config)
    directory = _private_directory()
    try:
        (directory / "metrics").mkdir()
        supervisor = Supervisor(config, argv, env, directory, addresses)
        return asyncio.run(supervisor.run())
    finally:
        sockets.close()
        shutil.rmtree(directory, ignore_errors=True)


def _private_directory() -> Path:
    # mkdtemp makes it 0700: only this user reaches the metrics files and the socket.
    directory = Path(tempfile.mkdtemp(prefix="smartdoc-proxy-"))
    if len(str(directory / "inspector.sock").encode()) > SOCKET_PATH_MOST:
        directory.rmdir()
        directory = Path(tempfile.mkdtemp(prefix="smartdoc-proxy-", dir="/tmp"))
    return directory


def described(status: int | None) -> str:
    """A worker's end, as the log says it."""
    if status is not None and status < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-status).name}"
    return f"exit status {status}"


@dataclass
class _Running:
    worker: Worker
    process: asyncio.subprocess.Process
    serving: bool = False


class Supervisor:
    """Starts, watches, replaces and stops the workers; serves nothing itself."""

    def __init__(
        self,
        config: Config,
        argv: Sequence[str],
        env: Mapping[str, str],
        directory: Path,
        addresses: Addresses,
    ) -> None:
        self.config, self.argv, self.env = config, list(argv), dict(env)
        self.directory, self.addresses = directory, addresses
        self.running: dict[int, _Running] = {}
        self.stopping = asyncio.Event()
        self._lifeline_read, self._lifeline = -1, -1

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self._lifeline_read, self._lifeline = os.pipe()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop, signum)
        loop.add_signal_handler(signal.SIGHUP, self._pass_on, signal.SIGHUP)
        try:
            failed = await self._start_all()
            if failed is None:
                self._announce()
                await self._watch()
            return await self._stop_all() or failed or 0
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            os.close(self._lifeline)
            os.close(self._lifeline_read)

    def stop(self) -> None:
        """Stop every worker and return from :meth:`run`, as SIGTERM does."""
        self.stopping.set()

    def _announce(self) -> None:
        pids = ", ".join(str(self.running[index].process.pid) for index in sorted(self.running))
        listen = Listen(*self.addresses["listen"])
        logger.info("%d workers serve %s (SO_REUSEPORT), pids %s", len(self.running), listen, pids)

    async def _start_all(self) -> int | None:
        """Start every worker at once; the exit status of one that could not start, if any."""
        started = await asyncio.gather(
            *(self._start(index) for index in range(1, self.config.workers + 1))
        )
        return next((status for status in started if status is not None), None)

    async def _start(self, index: int) -> int | None:
        """Start worker ``index`` and wait until it serves: ``None``, or the status it ended
        with (at least 1) when it could not start."""
        ready_read, ready_write = os.pipe()
        worker = Worker(
            index,
            self.config.workers,
            self.directory,
            self.addresses,
            ready_write,
            self._lifeline_read,
            fixed_settings(self.config),
        )
        try:
            process = await asyncio.create_subprocess_exec(
                # -P: the installed proxy, never a "proxy" package in the working directory.
                *(sys.executable, "-P", "-m", "proxy", "run", *self.argv),
                env=self.env | {
                    WORKER_ENV: worker.encode(),
                    MULTIPROCESS_ENV: str(worker.metrics_directory),
                },
                pass_fds=(ready_write, self._lifeline_read),
                stdin=asyncio.subprocess.DEVNULL,
                process_group=0,
            )  # fmt: skip
        finally:
            os.close(ready_write)
        running = self.running[index] = _Running(worker, process)
        said = await _first_line(ready_read, START_SECONDS)
        if said == b"serving\n":
            running.serving = True
            return None
        if said is None:
            logger.error("%s (pid %d) did not start within %.0f s", worker, process.pid,
                         START_SECONDS)  # fmt: skip
            process.kill()
        status = await process.wait()
        logger.error("%s (pid %d) could not start: %s", worker, process.pid, described(status))
        return status if status > 0 else 1

    async def _watch(self) -> None:
        """Until a signal: replace each worker that dies."""
        while not self.stopping.is_set():
            waits = {
                asyncio.ensure_future(each.process.wait()): index
                for index, each in self.running.items()
            }
            stop = asyncio.ensure_future(self.stopping.wait())
            done, _ = await asyncio.wait({*waits, stop}, return_when=asyncio.FIRST_COMPLETED)
            for task in (*waits, stop):
                if task not in done:
                    task.cancel()
            for task in done & waits.keys():
                if not self.stopping.is_set():
                    await self._replace(waits[task])

    async def _replace(self, index: int) -> None:
        """Replace worker ``index``, which died, until a replacement serves or the run stops."""
        gone = self.running.pop(index)
        pause = REPLACE_AFTER_SECONDS
        while True:
            self._forget(gone)
            with contextlib.suppress(TimeoutError):
                # Not in a tight loop: a worker that cannot start may be fine in a while (a
                # keys file being rewritten), and each start costs a token request.
                await asyncio.wait_for(self.stopping.wait(), pause)
            if self.stopping.is_set() or await self._start(index) is None:
                return
            gone = self.running.pop(index)
            pause = min(pause * 2, REPLACE_AT_MOST_SECONDS)
            logger.error("%s: trying again in %.0f s; the others serve", gone.worker, pause)

    def _forget(self, gone: _Running) -> None:
        pid = gone.process.pid
        # Its live gauges (in flight, the inspector's count) must no longer count.
        multiprocess.mark_process_dead(pid, str(gone.worker.metrics_directory))  # type: ignore[no-untyped-call]
        if gone.serving:
            logger.error("%s (pid %d) ended (%s); starting another", gone.worker, pid,
                         described(gone.process.returncode))  # fmt: skip

    def _stop(self, signum: int) -> None:
        logger.info("%s received: stopping the workers", signal.Signals(signum).name)
        self.stop()

    def _pass_on(self, signum: int) -> None:
        for each in self.running.values():
            # A worker still starting has no handler yet: SIGHUP would end it.
            if each.process.returncode is None and (each.serving or signum != signal.SIGHUP):
                each.process.send_signal(signum)

    async def _stop_all(self) -> int | None:
        """Stop every worker; 1 if one had to be killed or ended other than by exiting 0."""
        self._pass_on(signal.SIGTERM)
        allowed = self.config.shutdown_grace_seconds + STOP_MARGIN_SECONDS
        failed = None
        for each in self.running.values():
            try:
                status = await asyncio.wait_for(each.process.wait(), allowed)
            except TimeoutError:
                logger.error("%s (pid %d) did not stop in time: killed", each.worker,
                             each.process.pid)  # fmt: skip
                each.process.kill()
                status = await each.process.wait()
            if status != 0 and each.serving:
                logger.error("%s (pid %d) stopped: %s", each.worker, each.process.pid,
                             described(status))  # fmt: skip
                failed = 1
        logger.info("stopped: every worker has finished")
        return failed


async def _first_line(fd: int, timeout_seconds: float) -> bytes | None:
    """The first line written to the pipe ``fd`` (closed after): ``b""`` when its writer
    ended first, ``None`` when nothing came within ``timeout_seconds``."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    try:
        return await asyncio.wait_for(reader.readline(), timeout_seconds)
    except TimeoutError:
        return None
    finally:
        transport.close()
