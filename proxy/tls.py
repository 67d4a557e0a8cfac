"""Which certificates the proxy trusts when it talks to the upstream and the token endpoint.

One context serves both, so a corporate network that inspects TLS (its egress proxy re-signs
every certificate with a CA of its own) needs its CA named once: ``--upstream-ca-file``.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from proxy.config import OPTIONS_BY_NAME, ConfigError


def client_context(ca_file: Path | None) -> ssl.SSLContext:
    """The system's trusted CAs, plus the PEM bundle ``ca_file`` when one is given.

    Added to, not instead of, the system's: a host that ``NO_PROXY`` sends around the
    inspecting proxy still presents its public certificate. Raises :class:`ConfigError` when
    the file holds no usable certificate, so a wrong file stops the proxy at start-up.
    """
    context = ssl.create_default_context()
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=ca_file)
        except ssl.SSLError as exc:
            option = OPTIONS_BY_NAME["upstream_ca_file"].sources
            raise ConfigError(
                f"{option}: {ca_file} holds no PEM CA certificate that could be loaded ({exc})"
            ) from exc
    return context
