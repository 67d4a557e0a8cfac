"""Snapshots as a HAR 1.2 document (http://www.softwareishard.com/blog/har-12-spec/): pure.

Each entry is the exchange as the client saw it: the URL is the upstream's origin with the
target exactly as the client sent it (the proxy changes neither), the request headers are
the client's and the response headers those it received, all redacted by name. What passed
on the other side of the proxy is kept in the custom fields HAR allows (``_upstream``), with
the client's name and organization. Bodies are there only if they were kept
(``--inspect-bodies``), redacted; ``smartdoc-proxy standin --replay`` answers with them.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from urllib.parse import parse_qsl

from yarl import URL

from proxy.exchange import CLIENT_CLOSED, Headers
from proxy.inspector import redact
from proxy.inspector.buffer import Snapshot
from proxy.inspector.views import Document, header_list, iso_time, upstream_request

HAR_VERSION = "1.2"
HTTP_VERSION = "HTTP/1.1"


def document(snapshots: Iterable[Snapshot], *, upstream: URL, version: str) -> Document:
    """A HAR log of ``snapshots``, in the order given (oldest first reads best)."""
    return {
        "log": {
            "version": HAR_VERSION,
            "creator": {"name": "smartdoc-proxy", "version": version},
            "pages": [],
            "entries": [entry(snapshot, upstream) for snapshot in snapshots],
        }
    }


def entry(snapshot: Snapshot, upstream: URL) -> Document:
    total_ms = round(snapshot.duration_seconds * 1000, 3)
    wait_ms = min(round(sum(snapshot.upstream_seconds) * 1000, 3), total_ms)
    har: Document = {
        "startedDateTime": iso_time(snapshot.started_at),
        "time": total_ms,
        "request": request(snapshot, upstream),
        "response": response(snapshot),
        "cache": {},
        "timings": {"send": 0, "wait": wait_ms, "receive": round(total_ms - wait_ms, 3)},
        "_id": snapshot.id,
        "_client": snapshot.client,
        "_organization": snapshot.organization,
        "_resent": snapshot.resent,
        "_upstream": {
            "request": {"headers": _named(upstream_request(snapshot))},
            "response": {"headers": _headers(snapshot.upstream_response_headers)},
        },
    }
    comment = _comment(snapshot)
    if comment:
        har["comment"] = comment
    return har


def url(snapshot: Snapshot, upstream: URL) -> str:
    target = snapshot.raw_target
    if target.startswith(("http://", "https://")):  # absolute-form, for the upstream's origin
        return target
    return str(upstream.origin()) + (target if target.startswith("/") else "/")


def request(snapshot: Snapshot, upstream: URL) -> Document:
    query = snapshot.raw_target.partition("?")[2]
    har: Document = {
        "method": snapshot.method,
        "url": url(snapshot, upstream),
        "httpVersion": HTTP_VERSION,
        # Cookies are credentials: their header is redacted, and none is listed.
        "cookies": [],
        "headers": _headers(snapshot.request_headers),
        "queryString": [{"name": name, "value": value} for name, value in parse_qsl(query, True)],
        "headersSize": -1,
        "bodySize": snapshot.request_bytes,
    }
    headers = snapshot.request_headers
    if snapshot.request_body is not None and headers is not None:
        content_type = headers.get("Content-Type", "")
        body = redact.body(snapshot.request_body, content_type)
        har["postData"] = {"mimeType": content_type, "text": body.text}
    return har


def response(snapshot: Snapshot) -> Document:
    headers = snapshot.response_headers
    content_type = headers.get("Content-Type", "") if headers is not None else ""
    content: Document = {"size": snapshot.response_bytes, "mimeType": content_type}
    if snapshot.response_body is not None:
        content["text"] = redact.body(snapshot.response_body, content_type).text
    return {
        "status": snapshot.status,
        "statusText": _reason(snapshot.status),
        "httpVersion": HTTP_VERSION,
        "cookies": [],
        "headers": _headers(headers),
        "content": content,
        "redirectURL": headers.get("Location", "") if headers is not None else "",
        "headersSize": -1,
        "bodySize": snapshot.response_bytes,
    }


def _headers(headers: Headers | None) -> list[dict[str, str]]:
    return _named(header_list(headers))


def _named(pairs: list[list[str]] | None) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in pairs or []]


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _comment(snapshot: Snapshot) -> str:
    notes = []
    if snapshot.status == CLIENT_CLOSED and snapshot.cut is None:
        notes.append("the client left before the answer")
    if snapshot.cut:
        notes.append(f"cut after {snapshot.response_bytes} bytes: {snapshot.cut}")
    if snapshot.resent:
        notes.append("resent with a fresh token after a 401")
    return "; ".join(notes)
