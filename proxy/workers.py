"""``--workers N``: N processes serving the same addresses, each with its own token cache.

The process started as ``run --workers N`` is the *supervisor*. It serves nothing itself:

1. it binds every listen address with ``SO_REUSEPORT`` without listening, which reserves the
   ports (a busy port is still one line and exit 2) and settles what port 0 picked;
2. it starts N workers, each a fresh ``python -m proxy run`` with the same arguments and
   environment plus :data:`WORKER_ENV`, which says which worker it is and where the
   reserved addresses and the shared directory are. Each worker binds the same addresses with
   ``SO_REUSEPORT`` and listens; the kernel spreads new connections over them;
3. it waits until every worker says it is serving, then until a signal: SIGTERM and SIGINT
   are passed on as SIGTERM (each worker drains within the grace), SIGHUP as SIGHUP (each
   worker reloads itself). A worker that dies after it was serving is replaced; one that
   fails to start stops them all, with its exit status.

A worker also stops on its own when the supervisor is gone (killed, say): it holds the read
end of a pipe only the supervisor writes to, and the end of that pipe is its SIGTERM.

How what the workers share stays right (the README says the same to operators):

- **tokens**: each worker fetches and refreshes its own, so N workers make N token requests
  a lifetime;
- **metrics**: prometheus-client's multiprocess mode, in a directory of this run's
  (:mod:`proxy.metrics`): any worker's ``/_proxy/metrics`` is the sum of all;
- **access log**: every worker writes whole lines to the same inherited stderr, in writes of
  at most ``PIPE_BUF`` bytes (:class:`proxy.logs.BatchingHandler`), which a pipe never
  interleaves and ``O_APPEND`` appends whole;
- **inspector**: worker 1 keeps it; the others send it what they record and pass it the
  page's requests (:mod:`proxy.inspector.shared`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from prometheus_client import multiprocess

from proxy.config import Config, Listen
from proxy.sockets import Bound, Sockets, bind_sockets

logger = logging.getLogger(__name__)

# Set by the supervisor for each worker: the JSON of a Worker. Its presence makes `run` a worker.
WORKER_ENV = "SMARTDOC_PROXY_WORKER"
# Read by prometheus-client when it is imported: the worker's environment must have it.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# How long a worker may take to start serving, and the wait before one that died is replaced.
START_SECONDS = 30.0
REPLACE_AFTER_SECONDS = 1.0
# Beyond the grace, how long stopping workers get before they are killed.
STOP_MARGIN_SECONDS = 5.0


@dataclass(frozen=True)
class Worker:
    """What a worker is told by its supervisor: which one it is, the addresses reserved for
    it (by option: ``listen``, ``metrics_listen`` and each organization's name), the
    directory this run's workers share, and its two pipes."""

    index: int  # 1 to count
    count: int
    directory: Path
    addresses: Mapping[str, tuple[str, int]]
    ready_fd: int  # written once the worker serves
    lifeline_fd: int  # ends when the supervisor does

    @property
    def metrics_directory(self) -> Path:
        return self.directory / "metrics"

    @property
    def inspector_socket(self) -> Path:
        """Where worker 1 takes the other workers' exchanges and the page's requests."""
        return self.directory / "inspector.sock"

    @property
    def keeps_inspector(self) -> bool:
        return self.index == 1

    def __str__(self) -> str:
        return f"worker {self.index} of {self.count}"

    def encode(self) -> str:
        return json.dumps(
            {
                "index": self.index,
                "count": self.count,
                "directory": str(self.directory),
                "addresses": dict(self.addresses),
                "ready_fd": self.ready_fd,
                "lifeline_fd": self.lifeline_fd,
            }
        )

    @classmethod
    def of(cls, env: Mapping[str, str]) -> Worker | None:
        """This process's description as a worker, or ``None`` when it is no worker."""
        given = env.get(WORKER_ENV)
        if not given:
            return None
        fields = json.loads(given)
        addresses = {name: (host, int(port)) for name, (host, port) in fields["addresses"].items()}
        return cls(
            int(fields["index"]),
            int(fields["count"]),
            Path(fields["directory"]),
            addresses,
            int(fields["ready_fd"]),
            int(fields["lifeline_fd"]),
        )

    def bound(self, config: Config) -> Config:
        """``config`` with the addresses the supervisor reserved (port 0 settled)."""

        def at(name: str, listen: Listen | None) -> Listen | None:
            if listen is None or name not in self.addresses:
                return listen
            return Listen(*self.addresses[name])

        organizations = tuple(
            replace(organization, listen=at(organization.name, organization.listen))
            for organization in config.organizations
        )
        return replace(
            config,
            listen=at("listen", config.listen) or config.listen,
            metrics_listen=at("metrics_listen", config.metrics_listen),
            organizations=organizations,
        )

    def serving(self) -> None:
        """Tell the supervisor this worker serves."""
        with contextlib.suppress(OSError):
            os.write(self.ready_fd, b"serving\n")
            os.close(self.ready_fd)


def reserve(config: Config) -> tuple[Sockets, dict[str, tuple[str, int]]]:
    """Bind every address of ``config`` for the workers (or raise ConfigError), and say what
    each got. The supervisor holds the sockets, unlistened, while it runs, so that a replaced
    worker gets the same port back and no other program takes it meanwhile."""
    sockets = bind_sockets(config, shared=True, listening=False)
    bound: dict[str, Bound] = {"listen": sockets.main, **sockets.organizations}
    if sockets.metrics is not None:
        bound["metrics_listen"] = sockets.metrics
    return sockets, {name: (each.listen.host, each.listen.port) for name, each in bound.items()}


def supervise(config: Config, argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Run ``config.workers`` workers of ``run`` with ``argv`` until a signal; the exit status
    is 0, or that of a worker that could not start."""
    sockets, addresses = reserve(config)
    with (
        contextlib.closing(sockets),
        tempfile.TemporaryDirectory(prefix="smartdoc-proxy-") as directory,
    ):
        # mkdtemp made it 0700: only this user reaches the metrics files and the socket.
        (Path(directory) / "metrics").mkdir()
        supervisor = Supervisor(config, argv, env, Path(directory), addresses)
        return asyncio.run(supervisor.run())


@dataclass
class _Running:
    worker: Worker
    process: asyncio.subprocess.Process
    started_at: float


class Supervisor:
    """Starts, watches, replaces and stops the workers; serves nothing itself."""

    def __init__(
        self,
        config: Config,
        argv: Sequence[str],
        env: Mapping[str, str],
        directory: Path,
        addresses: Mapping[str, tuple[str, int]],
    ) -> None:
        self.config, self.argv, self.env = config, list(argv), dict(env)
        self.directory, self.addresses = directory, addresses
        self.running: dict[int, _Running] = {}
        self.stopping = asyncio.Event()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        lifeline_read, self.lifeline = os.pipe()
        self.lifeline_read = lifeline_read
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop, signum)
        loop.add_signal_handler(signal.SIGHUP, self._pass_on, signal.SIGHUP)
        try:
            failed = await self._start_all()
            if failed is None:
                pids = ", ".join(str(each.process.pid) for each in self.running.values())
                listen = Listen(*self.addresses["listen"])
                logger.info(
                    "%d workers serve %s (SO_REUSEPORT), pids %s", self.config.workers, listen, pids
                )
                failed = await self._watch()
            await self._stop_all()
            return failed or 0
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            os.close(self.lifeline)
            os.close(lifeline_read)

    async def _start_all(self) -> int | None:
        """Start every worker at once; the exit status of one that could not start, if any."""
        started = await asyncio.gather(
            *(self._start(index) for index in range(1, self.config.workers + 1))
        )
        return next((status for status in started if status is not None), None)

    async def _start(self, index: int) -> int | None:
        ready_read, ready_write = os.pipe()
        worker = Worker(
            index,
            self.config.workers,
            self.directory,
            self.addresses,
            ready_write,
            self.lifeline_read,
        )
        env = self.env | {
            WORKER_ENV: worker.encode(),
            MULTIPROCESS_ENV: str(worker.metrics_directory),
        }
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "proxy",
                "run",
                *self.argv,
                env=env,
                pass_fds=(ready_write, self.lifeline_read),
                stdin=asyncio.subprocess.DEVNULL,
            )
        finally:
            os.close(ready_write)
        self.running[index] = _Running(worker, process, time.monotonic())
        said = await _first_line(ready_read, START_SECONDS)
        if said == b"serving\n":
            return None
        if said is None:
            logger.error("%s (pid %d) did not start within %.0f s", worker, process.pid,
                         START_SECONDS)  # fmt: skip
            process.kill()
        status = await process.wait()
        logger.error("%s (pid %d) could not start: exit status %d", worker, process.pid, status)
        return status if status > 0 else 1

    async def _watch(self) -> int | None:
        """Until a signal: replace each worker that dies. A replacement that cannot start
        ends the run, with its status."""
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
                if self.stopping.is_set():
                    break
                failed = await self._replace(waits[task])
                if failed is not None:
                    return failed
        return None

    async def _replace(self, index: int) -> int | None:
        gone = self.running.pop(index)
        pid, status = gone.process.pid, gone.process.returncode
        # Its live gauges (in flight, the inspector's count) must no longer count.
        multiprocess.mark_process_dead(pid, str(gone.worker.metrics_directory))  # type: ignore[no-untyped-call]
        logger.error("%s (pid %d) exited with status %s; starting another", gone.worker, pid,
                     status)  # fmt: skip
        with contextlib.suppress(TimeoutError):
            # A worker that dies at once must not be restarted in a tight loop.
            await asyncio.wait_for(self.stopping.wait(), REPLACE_AFTER_SECONDS)
        if self.stopping.is_set():
            return None
        return await self._start(index)

    def _stop(self, signum: int) -> None:
        logger.info("%s received: stopping the workers", signal.Signals(signum).name)
        self.stop()

    def stop(self) -> None:
        """Stop every worker and return from :meth:`run`, as SIGTERM does."""
        self.stopping.set()

    def _pass_on(self, signum: int) -> None:
        for each in self.running.values():
            if each.process.returncode is None:
                each.process.send_signal(signum)

    async def _stop_all(self) -> None:
        self._pass_on(signal.SIGTERM)
        allowed = self.config.shutdown_grace_seconds + STOP_MARGIN_SECONDS
        for each in self.running.values():
            try:
                await asyncio.wait_for(each.process.wait(), allowed)
            except TimeoutError:
                logger.error("%s (pid %d) did not stop in time: killed", each.worker,
                             each.process.pid)  # fmt: skip
                each.process.kill()
                await each.process.wait()
        logger.info("stopped: every worker has finished")


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
