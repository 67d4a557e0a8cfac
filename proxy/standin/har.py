"""HAR 1.2 files, read and checked for `--replay`: pure functions and the values they give.

A HAR file is what browsers' developer tools export: `log.entries[]`, each with a `request`
(`method`, `url`) and the `response` it got (`status`, `statusText`, `headers`, `content.text`,
optionally base64 per `content.encoding`). `parse_har` checks a parsed document and keeps, per
entry, the method, the raw path and query of the URL (its host is of no use to a stand-in), and
the response with only the headers that can be replayed on another connection. Every problem is a
`HarError` saying where it is (`log.entries[3].response.status: missing`).

Only final statuses (200 to 599) can be replayed: a browser's status 0 (no answer) or 101 (a
WebSocket) is refused rather than skipped, so a file never replays less than it seems to.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import hdrs

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 section 5.6.2
_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # controls other than tab break framing
# Hop-by-hop (RFC 9110 section 7.6.1) and framing: aiohttp frames the replayed body itself, and
# HAR keeps the body decoded, so a recorded Content-Encoding would be a lie.
_DROPPED = frozenset(
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "content-encoding",
    ]
)
FINAL_STATUSES = range(200, 600)


class HarError(ValueError):
    """A HAR document is malformed at `where` (a path like `log.entries[3].response.status`)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}" if where else problem)


@dataclass(frozen=True)
class RecordedResponse:
    """One recorded answer, with the headers it may be replayed with."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = field(repr=False)


@dataclass(frozen=True)
class RecordedExchange:
    """A recorded request (method and raw target) and the answer it got."""

    method: str
    target: str
    response: RecordedResponse


@dataclass(frozen=True)
class Recording:
    """The exchanges of one HAR file; shown by file and count (bodies may hold anything)."""

    source: str
    exchanges: tuple[RecordedExchange, ...] = field(repr=False)

    def __repr__(self) -> str:
        return f"Recording({self.source!r}, {len(self.exchanges)} exchanges)"


def _get(container: Mapping[str, object], key: str, where: str) -> object:
    if key not in container:
        raise HarError(f"{where}.{key}" if where else key, "missing")
    return container[key]


def _object(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise HarError(where, "must be an object")
    return value


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise HarError(where, "must be a string")
    return value


def _line(value: object, where: str, *, token: bool = False) -> str:
    """A string that goes into a status or header line: one line, an HTTP token if `token`."""
    text = _string(value, where)
    if token and not _TOKEN.fullmatch(text):
        raise HarError(where, f"{text!r} is not a valid HTTP token")
    if _UNSAFE.search(text):
        raise HarError(where, "contains a line break or control character")
    return text


def _target(url: str, where: str) -> str:
    """The raw path and query of a recorded URL, as a client would send them."""
    parts = urlsplit(url)
    if not url.startswith("/") and (parts.scheme not in ("http", "https") or not parts.netloc):
        raise HarError(where, "must be an http(s) URL or a path starting with /")
    without_fragment = url.partition("#")[0]
    query = "?" + parts.query if "?" in without_fragment else ""
    return (parts.path or "/") + query


def _status(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise HarError(where, "must be a whole number")
    if value not in FINAL_STATUSES:
        raise HarError(where, f"{value} is not a final HTTP status (200 to 599)")
    return value


def _headers(value: object, where: str) -> list[tuple[str, str]]:
    if not isinstance(value, list):
        raise HarError(where, "must be an array")
    pairs = []
    for index, item in enumerate(value):
        at = f"{where}[{index}]"
        header = _object(item, at)
        name = _line(_get(header, "name", at), f"{at}.name")
        # HTTP/2 pseudo-headers (`:status`) describe another connection: checked, then dropped.
        _line(name.removeprefix(":"), f"{at}.name", token=True)
        text = _line(_get(header, "value", at), f"{at}.value")
        if not name.startswith(":"):
            pairs.append((name, text))
    return pairs


def replayable_headers(pairs: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """`pairs` without the framing and hop-by-hop headers, nor those `Connection` names."""
    named = {
        token.strip().lower()
        for name, text in pairs
        if name.lower() == "connection"
        for token in text.split(",")
    }
    return tuple((n, v) for n, v in pairs if n.lower() not in _DROPPED | named)


def _body(content: Mapping[str, object], where: str) -> bytes:
    text = _string(content.get("text", ""), f"{where}.text")
    encoding = content.get("encoding", "")
    if encoding == "":
        return text.encode()
    if encoding != "base64":
        raise HarError(f"{where}.encoding", f"{encoding!r} is not supported (only base64)")
    try:  # some tools wrap long base64 lines
        return base64.b64decode("".join(text.split()), validate=True)
    except binascii.Error as exc:
        raise HarError(f"{where}.text", "is not valid base64") from exc


def _response(value: object, where: str) -> RecordedResponse:
    response = _object(value, where)
    status = _status(_get(response, "status", where), f"{where}.status")
    reason = _line(response.get("statusText", ""), f"{where}.statusText")
    headers = _headers(_get(response, "headers", where), f"{where}.headers")
    content = _object(_get(response, "content", where), f"{where}.content")
    mime_type = _line(content.get("mimeType", ""), f"{where}.content.mimeType")
    if mime_type and not any(name.lower() == "content-type" for name, _ in headers):
        headers.append((hdrs.CONTENT_TYPE, mime_type))
    body = _body(content, f"{where}.content")
    return RecordedResponse(status, reason, replayable_headers(headers), body)


def _exchange(value: object, where: str) -> RecordedExchange:
    entry = _object(value, where)
    request = _object(_get(entry, "request", where), f"{where}.request")
    method = _line(
        _get(request, "method", f"{where}.request"), f"{where}.request.method", token=True
    )
    url = _line(_get(request, "url", f"{where}.request"), f"{where}.request.url")
    response = _response(_get(entry, "response", where), f"{where}.response")
    return RecordedExchange(method, _target(url, f"{where}.request.url"), response)


def parse_har(document: object) -> tuple[RecordedExchange, ...]:
    """The exchanges of a HAR 1.2 document, in recorded order; raises `HarError`."""
    if not isinstance(document, dict):
        raise HarError("", "must be a JSON object with a log")
    log = _object(_get(document, "log", ""), "log")
    entries = _get(log, "entries", "log")
    if not isinstance(entries, list):
        raise HarError("log.entries", "must be an array")
    return tuple(_exchange(entry, f"log.entries[{i}]") for i, entry in enumerate(entries))


def load_recording(path: str) -> Recording:
    """Read and check the HAR file at `path`; raises `HarError` (message without the path)."""
    try:
        with open(path, encoding="utf-8") as file:
            document = json.load(file)
    except OSError as exc:
        raise HarError("", f"cannot read it: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise HarError("", "is not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise HarError("", f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise HarError("", "not JSON that can be read: nested too deeply") from exc
    return Recording(path, parse_har(document))
