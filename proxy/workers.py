"""``--workers N``: N processes serving the same addresses, each with its own token cache.

The process started as ``run --workers N`` is the supervisor (:mod:`proxy.supervisor`); it
serves nothing itself. It reserves every address (:func:`reserve`) and starts N workers, each a
fresh ``python -m proxy run`` with the same arguments and environment plus :data:`WORKER_ENV`:
the JSON of a :class:`Worker`, which says which worker it is, the addresses reserved for it,
the settings the run started with, and the directory this run's workers share. Each worker
binds the same addresses with ``SO_REUSEPORT`` and listens; the kernel spreads new connections
over them.

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

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from proxy.config import Config, Listen
from proxy.reload import NEEDS_RESTART
from proxy.sockets import Bound, Sockets, bind_sockets

# Set by the supervisor for each worker: the JSON of a Worker. Its presence makes `run` a worker.
WORKER_ENV = "SMARTDOC_PROXY_WORKER"
Addresses = Mapping[str, tuple[str, int]]
# The settings a worker takes from its supervisor, not from the files it reads: a worker that
# replaces one that died must run as the others do, whatever the file says by then. The
# addresses travel on their own (Worker.addresses).
FIXED = tuple(name for name in NEEDS_RESTART if name not in ("listen", "metrics_listen"))


@dataclass(frozen=True)
class Worker:
    """What a worker is told by its supervisor: which one it is, the addresses reserved for
    it (by option: ``listen``, ``metrics_listen`` and each organization's name), the
    directory this run's workers share, and its two pipes."""

    index: int  # 1 to count
    count: int
    directory: Path
    addresses: Addresses
    ready_fd: int  # written once the worker serves
    lifeline_fd: int  # ends when the supervisor does
    # FIXED's values as the run started: JSON numbers and strings, each of its field's type.
    fixed: Mapping[str, Any] = field(default_factory=dict)

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
                "fixed": dict(self.fixed),
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
            dict(fields.get("fixed", {})),
        )

    def bound(self, config: Config) -> Config:
        """``config`` as this worker runs it: on the addresses the supervisor reserved (port 0
        settled), with the settings the run started with."""
        return replace(at_addresses(config, self.addresses), **self.fixed)

    def changed(self, config: Config) -> list[str]:
        """The fixed settings that ``config`` (as read now) would change."""
        return [name for name, value in self.fixed.items() if getattr(config, name) != value]

    def serving(self) -> None:
        """Tell the supervisor this worker serves."""
        with contextlib.suppress(OSError):
            os.write(self.ready_fd, b"serving\n")
            os.close(self.ready_fd)


def fixed_settings(config: Config) -> dict[str, Any]:
    return {name: getattr(config, name) for name in FIXED}


def at_addresses(config: Config, addresses: Addresses) -> Config:
    """``config`` listening where ``addresses`` say (by option, and by organization name)."""

    def at(name: str, listen: Listen | None) -> Listen | None:
        if listen is None or name not in addresses:
            return listen
        return Listen(*addresses[name])

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


def reserve(config: Config) -> tuple[Sockets, dict[str, tuple[str, int]]]:
    """Bind every address of ``config`` for the workers (or raise ConfigError), and say what
    each got. The supervisor holds the sockets, unlistened, while it runs, so that a replaced
    worker gets the same port back and no other program takes it meanwhile."""
    # First without SO_REUSEPORT: a port another program listens on (another proxy's workers
    # included, which would otherwise share their connections with these) is refused here,
    # and port 0 is settled. Then reserved with it, for the workers to join.
    probe = bind_sockets(config, listening=False)
    settled = _addresses(probe)
    probe.close()
    sockets = bind_sockets(at_addresses(config, settled), shared=True, listening=False)
    return sockets, _addresses(sockets)


def _addresses(sockets: Sockets) -> dict[str, tuple[str, int]]:
    bound: dict[str, Bound] = {"listen": sockets.main, **sockets.organizations}
    if sockets.metrics is not None:
        bound["metrics_listen"] = sockets.metrics
    return {name: (each.listen.host, each.listen.port) for name, each in bound.items()}
