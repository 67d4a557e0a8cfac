"""A listen address, ``HOST:PORT``: a leaf module, so that every other one may import it."""

from __future__ import annotations

import ipaddress
from typing import NamedTuple


class Listen(NamedTuple):
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False
