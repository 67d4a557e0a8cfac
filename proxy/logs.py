"""Logging set-up: text or JSON lines on stderr, and the access log's one line per request."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from proxy.exchange import Exchange

ACCESS_LOGGER = "proxy.access"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass(frozen=True)
class AccessRecord:
    """What the access log says about one request. The query is left out: it may carry ids
    that belong to customers, and it is not needed to tell what the proxy did."""

    method: str
    path: str
    status: int
    duration_ms: float
    bytes: int
    resent: bool

    def __str__(self) -> str:
        resent = " resent" if self.resent else ""
        return (
            f"{self.method} {self.path} {self.status} {self.duration_ms:.1f}ms "
            f"{self.bytes}B{resent}"
        )


class JsonFormatter(logging.Formatter):
    """One JSON object per line; an access record's fields become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        access = getattr(record, "access", None)
        if isinstance(access, AccessRecord):
            line |= asdict(access)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


def configure(log_format: str, level: str) -> None:
    """Send every logger's records to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def log_exchange(exchange: Exchange) -> None:
    """The access log's observer of finished exchanges: one line each."""
    record = AccessRecord(
        method=exchange.method,
        path=exchange.path,
        status=exchange.status,
        duration_ms=exchange.duration_seconds * 1000,
        bytes=exchange.body_bytes,
        resent=exchange.resent,
    )
    logging.getLogger(ACCESS_LOGGER).info("%s", record, extra={"access": record})
