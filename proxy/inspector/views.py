"""Snapshots as the page sees them: plain, JSON-ready documents, redacted by name.

:func:`summary` is one row of the list (also what the live stream sends); :func:`detail` adds
the headers on both sides of the proxy and the bodies, if kept. The caller scrubs the finished
document by value (:class:`proxy.inspector.redact.Scrubber`) before it leaves the proxy.
"""

from __future__ import annotations

from datetime import UTC, datetime

from proxy.exchange import BODY_LIMIT_BYTES, Headers, textual
from proxy.inspector import redact
from proxy.inspector.buffer import Snapshot

Document = dict[str, object]
# The token the proxy put on the upstream request is no part of the record: it is shown as
# this line, where it was sent.
TOKEN_LINE = ("Authorization", redact.REDACTED)


def iso_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


def summary(snapshot: Snapshot) -> Document:
    return {
        "id": snapshot.id,
        "started": iso_time(snapshot.started_at),
        "client": snapshot.client,
        "organization": snapshot.organization,
        "peer": snapshot.peer,
        "method": snapshot.method,
        "target": snapshot.raw_target,
        "status": snapshot.status,
        "durationMs": round(snapshot.duration_seconds * 1000, 1),
        "bytesIn": snapshot.request_bytes,
        "bytesOut": snapshot.response_bytes,
        "resent": snapshot.resent,
        "retried": snapshot.retried,
        "cut": snapshot.cut,
    }


def header_list(headers: Headers | None) -> list[list[str]] | None:
    return None if headers is None else [list(pair) for pair in redact.headers(headers.items())]


def upstream_request(snapshot: Snapshot) -> list[list[str]] | None:
    sent = header_list(snapshot.upstream_request_headers)
    return None if sent is None else [*sent, list(TOKEN_LINE)]


def detail(snapshot: Snapshot, bodies_kept: bool) -> Document:
    """Everything the inspector knows of one exchange. ``bodies_kept``: is --inspect-bodies
    on (it says why a body is missing)."""
    return summary(snapshot) | {
        "upstreamMs": [round(seconds * 1000, 1) for seconds in snapshot.upstream_seconds],
        "headers": {
            "client": header_list(snapshot.request_headers),
            "upstreamRequest": upstream_request(snapshot),
            "upstreamResponse": header_list(snapshot.upstream_response_headers),
            "response": header_list(snapshot.response_headers),
        },
        "bodies": {
            "request": body_view(
                snapshot.request_body, snapshot.request_headers, snapshot.request_bytes, bodies_kept
            ),
            "response": body_view(
                snapshot.response_body,
                snapshot.upstream_response_headers,
                snapshot.response_bytes,
                bodies_kept,
            ),
        },
    }


def body_view(data: bytes | None, headers: Headers | None, size: int, kept: bool) -> Document:
    """A body for the page: its redacted text, or a note saying why it is not there."""
    content_type = headers.get("Content-Type", "") if headers is not None else ""
    if data is not None:
        return {"mimeType": content_type, "text": redact.body(data, content_type).pretty}
    return {"mimeType": content_type, "note": missing_body(headers, size, kept)}


def missing_body(headers: Headers | None, size: int, kept: bool) -> str:
    if size == 0:
        return "no body"
    if headers is None:
        return f"{size} bytes: the proxy's own answer, not kept"
    if not kept:
        return f"{size} bytes, not kept: bodies are kept only with --inspect-bodies"
    if not textual(headers):
        return f"{size} bytes, not kept: only text (JSON, text, forms) is"
    if size > BODY_LIMIT_BYTES:
        return f"{size} bytes, not kept: over {BODY_LIMIT_BYTES // 1024} KiB"
    return f"{size} bytes, not kept: it streamed past (over the replay limit, or cut short)"
