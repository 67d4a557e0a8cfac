"""Text from outside (token endpoint answers, request bytes) made safe to print on one line."""

from __future__ import annotations

DEFAULT_LIMIT = 200


def printable(text: str, limit: int = DEFAULT_LIMIT) -> str:
    """``text`` with control characters escaped (a newline could forge a log line, an escape
    sequence repaint a terminal) and cut to ``limit`` characters."""
    escaped = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    return escaped[:limit] + "…" if len(escaped) > limit else escaped
