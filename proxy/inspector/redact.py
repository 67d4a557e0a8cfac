"""What the inspector may show: every header value, body and string it serves passes here.

Two layers, both pure:

- **By name.** The values of the headers that carry credentials (:data:`SECRET_HEADERS`) and
  of the body fields that do (:data:`SECRET_FIELDS`, in JSON at any depth and in forms) become
  ``[redacted]``; the name stays, so the page still shows that one was sent.
- **By value.** A :class:`Scrubber` knows the secrets in force (the organization's token, the
  client secret, every inbound key) and replaces each, raw, percent-, JSON- or base64-encoded,
  wherever it turns up: a key pasted into a query, a token an upstream echoes in a body. The
  proxy's own local tokens (``sdp1.…``) are recognised by their shape.

The first layer is what the page relies on; the second is there for what nobody thought of.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, quote_plus, urlencode

REDACTED = "[redacted]"
# RFC 9110 §11.6.2 and §11.7.2 (credentials for the server and for a proxy), the proxy's own
# key header, and cookies both ways (RFC 6265), which are credentials more often than not.
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-proxy-key", "cookie", "set-cookie"}
)
# OAuth 2.0's (RFC 6749 §2.3.1, §5.1) and OpenID Connect's credential fields.
SECRET_FIELDS = frozenset({"access_token", "refresh_token", "id_token", "client_secret"})
# A JSON string field named like SECRET_FIELDS, for text that does not parse as JSON.
_JSON_FIELD = re.compile(
    r'("(?:' + "|".join(sorted(SECRET_FIELDS)) + r')"\s*:\s*)"(?:[^"\\]|\\.)*(?:"|$)',
    re.IGNORECASE,
)
# The proxy's local tokens: proxy.access.LOCAL_TOKEN_PREFIX, base64url payload and signature.
_LOCAL_TOKEN = re.compile(r"sdp1\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?")
JSON_TYPES = ("application/json",)
FORM_TYPE = "application/x-www-form-urlencoded"


def headers(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers in order, repeats kept, with credential values redacted."""
    return [(name, REDACTED if name.lower() in SECRET_HEADERS else value) for name, value in pairs]


def json_value(value: object) -> object:
    """A parsed JSON document with every credential field's value redacted, at any depth."""
    if isinstance(value, dict):
        return {
            key: REDACTED if key.lower() in SECRET_FIELDS else json_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [json_value(item) for item in value]
    return value


def form_pairs(text: str) -> list[tuple[str, str]]:
    """A form body's fields, decoded, with credential fields redacted."""
    return [
        (name, REDACTED if name.lower() in SECRET_FIELDS else value)
        for name, value in parse_qsl(text, keep_blank_values=True)
    ]


@dataclass(frozen=True)
class Body:
    """A body as the inspector shows it: ``pretty`` for the page, ``text`` for a HAR file
    (byte for byte the original when nothing had to be redacted)."""

    pretty: str
    text: str


def media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


def body(data: bytes, content_type: str) -> Body:
    """A kept (textual) body, redacted: JSON pretty-printed, a form one field a line."""
    text = data.decode("utf-8", errors="replace")
    media = media_type(content_type)
    if media in JSON_TYPES or media.endswith("+json"):
        return _json_body(text)
    if media == FORM_TYPE:
        pairs = form_pairs(text)
        changed = pairs != parse_qsl(text, keep_blank_values=True)
        return Body(
            "\n".join(f"{name} = {value}" for name, value in pairs),
            urlencode(pairs) if changed else text,
        )
    return Body(text, text)


def _json_body(text: str) -> Body:
    try:
        parsed = json.loads(text)
    except ValueError:
        # Not JSON after all (or cut short): redact what looks like a credential field.
        redacted = _JSON_FIELD.sub(lambda m: m.group(1) + json.dumps(REDACTED), text)
        return Body(redacted, redacted)
    cleaned = json_value(parsed)
    pretty = json.dumps(cleaned, indent=2, ensure_ascii=False)
    return Body(pretty, text if cleaned == parsed else json.dumps(cleaned, ensure_ascii=False))


def encodings(secret: str) -> set[str]:
    """The forms a secret may take in text: raw, percent-encoded (path or form style),
    JSON-escaped and base64 (standard and URL-safe, padded or not)."""
    raw = secret.encode()
    b64 = base64.b64encode(raw).decode()
    urlsafe = base64.urlsafe_b64encode(raw).decode()
    forms = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        json.dumps(secret)[1:-1],
        b64,
        b64.rstrip("="),
        urlsafe,
        urlsafe.rstrip("="),
    }
    return {form for form in forms if form}


class Scrubber:
    """Replaces known secrets, in any of their :func:`encodings`, and local tokens."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms = set().union(*(encodings(secret) for secret in secrets if secret))
        # Longest first, so that a secret that contains another is replaced whole.
        self._forms = sorted(forms, key=len, reverse=True)

    def text(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return _LOCAL_TOKEN.sub(REDACTED, text) if "sdp1." in text else text

    def tree(self, value: object) -> object:
        """A JSON-ready document with every string in it scrubbed, keys included."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(key)): self.tree(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.tree(item) for item in value]
        return value
