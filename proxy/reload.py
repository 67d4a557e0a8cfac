"""What a SIGHUP may change while the proxy serves, and what needs a restart.

:class:`Live` holds the rules in force, read per request; :func:`reloaded` is the pure rule
that decides which of a new configuration's changes take effect now.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from proxy.access import Access
from proxy.config import Config, Listen

# Settings bound into sockets, sessions or the process at start-up.
NEEDS_RESTART = (
    "listen",
    "metrics_listen",
    "upstream_pool_size",
    "upstream_pool_timeout_seconds",
    "upstream_connect_timeout_seconds",
    "upstream_read_timeout_seconds",
    "shutdown_grace_seconds",
    "log_format",
    "workers",
    # The inspector's buffer and its place among the observers are made at start-up.
    "inspector",
    "inspect_exchanges",
)


@dataclass
class Live:
    """The configuration and access rules in force; a reload replaces them whole."""

    config: Config
    access: Access


def reloaded(running: Config, new: Config) -> tuple[Config, list[str]]:
    """The configuration to run after a reload, and the settings whose change was ignored
    because it needs a restart. TLS can be reloaded, but not switched on or off; an
    organization's credentials and keys can, but not which organizations there are, nor
    their listen addresses."""
    ignored = [name for name in NEEDS_RESTART if getattr(running, name) != getattr(new, name)]
    if (running.tls_cert_file is None) != (new.tls_cert_file is None):
        ignored.append("tls_cert_file")
    if _addresses(running) != _addresses(new):
        # Each organization has its token cache and its sockets from the start: a new set
        # of organizations, or an address moved, takes a restart. The running ones stay.
        ignored.append("organizations")
    kept = {name: getattr(running, name) for name in ignored}
    if "tls_cert_file" in kept:
        kept["tls_key_file"] = running.tls_key_file
    return dataclasses.replace(new, **kept), ignored


def _addresses(config: Config) -> list[tuple[str, Listen | None]]:
    return [(organization.name, organization.listen) for organization in config.organizations]
