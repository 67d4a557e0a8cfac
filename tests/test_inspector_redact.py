"""The inspector's redaction rules, as tables: by name (headers, body fields) and by value."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

import pytest

from proxy.inspector.redact import (
    REDACTED,
    Scrubber,
    body,
    encodings,
    form_pairs,
    headers,
    json_value,
)


@pytest.mark.parametrize(
    ("name", "redacted"),
    [
        ("Authorization", True),
        ("authorization", True),
        ("Proxy-Authorization", True),
        ("X-Proxy-Key", True),
        ("x-proxy-key", True),
        ("Cookie", True),
        ("Set-Cookie", True),
        ("Content-Type", False),
        ("WWW-Authenticate", False),
        ("X-Request-Id", False),
    ],
)
def test_credential_headers_keep_their_name_and_lose_their_value(name: str, redacted: bool) -> None:
    shown = headers([(name, "value-1")])

    assert shown == [(name, REDACTED if redacted else "value-1")]


def test_headers_keep_their_order_and_repeats() -> None:
    pairs = [("Set-Cookie", "a=1"), ("X-A", "1"), ("Set-Cookie", "b=2"), ("x-a", "2")]

    assert headers(pairs) == [
        ("Set-Cookie", REDACTED),
        ("X-A", "1"),
        ("Set-Cookie", REDACTED),
        ("x-a", "2"),
    ]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"access_token": "t", "expires_in": 3600}, {"access_token": REDACTED, "expires_in": 3600}),
        ({"client_secret": "s", "client_id": "c"}, {"client_secret": REDACTED, "client_id": "c"}),
        ({"Access_Token": "t"}, {"Access_Token": REDACTED}),
        (
            {"refresh_token": "r", "id_token": "i"},
            {"refresh_token": REDACTED, "id_token": REDACTED},
        ),
        (
            {"a": [{"b": {"access_token": {"nested": 1}}}]},
            {"a": [{"b": {"access_token": REDACTED}}]},
        ),
        ([{"client_secret": 1}, "access_token"], [{"client_secret": REDACTED}, "access_token"]),
        ({"token": "kept", "secret": "kept"}, {"token": "kept", "secret": "kept"}),
        ("access_token", "access_token"),
        (None, None),
    ],
)
def test_json_credential_fields_are_redacted_at_any_depth(
    document: object, expected: object
) -> None:
    assert json_value(document) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "grant_type=client_credentials&client_secret=s3",
            [("grant_type", "client_credentials"), ("client_secret", REDACTED)],
        ),
        ("client_id=a&access_token=x%20y", [("client_id", "a"), ("access_token", REDACTED)]),
        ("a=1&a=2&b=", [("a", "1"), ("a", "2"), ("b", "")]),
        ("name=caf%C3%A9+au+lait", [("name", "café au lait")]),
    ],
)
def test_form_fields(text: str, expected: list[tuple[str, str]]) -> None:
    assert form_pairs(text) == expected


@pytest.mark.parametrize(
    ("data", "content_type", "pretty", "text"),
    [
        # JSON: pretty for the page; for a HAR the original bytes when nothing was redacted.
        (
            b'{"a":1,"b":[1,2]}',
            "application/json",
            '{\n  "a": 1,\n  "b": [\n    1,\n    2\n  ]\n}',
            '{"a":1,"b":[1,2]}',
        ),
        (
            b'{"access_token":"t","n":1}',
            "application/json; charset=utf-8",
            '{\n  "access_token": "[redacted]",\n  "n": 1\n}',
            '{"access_token": "[redacted]", "n": 1}',
        ),
        (
            b'{"client_secret":"s"}',
            "application/problem+json",
            '{\n  "client_secret": "[redacted]"\n}',
            '{"client_secret": "[redacted]"}',
        ),
        # Not JSON after all: fields that look like credentials are still redacted.
        (
            b'{"access_token": "abc\\"d", "x": 1',
            "application/json",
            '{"access_token": "[redacted]", "x": 1',
            '{"access_token": "[redacted]", "x": 1',
        ),
        (
            b'{"access_token": "cut sho',
            "application/json",
            '{"access_token": "[redacted]"',
            '{"access_token": "[redacted]"',
        ),
        (
            b"client_id=a&client_secret=s",
            "application/x-www-form-urlencoded",
            "client_id = a\nclient_secret = [redacted]",
            "client_id=a&client_secret=%5Bredacted%5D",
        ),
        (b"x=1&y=%20", "application/x-www-form-urlencoded", "x = 1\ny =  ", "x=1&y=%20"),
        (b"hello\nworld", "text/plain", "hello\nworld", "hello\nworld"),
        (b"caf\xc3\xa9 \xff", "text/plain", "café \ufffd", "café \ufffd"),
    ],
)
def test_bodies(data: bytes, content_type: str, pretty: str, text: str) -> None:
    shown = body(data, content_type)

    assert shown.pretty == pretty
    assert shown.text == text


SECRET = 'k3y/with+odd=chars&"é'


def test_a_secret_has_every_encoding_it_may_appear_in() -> None:
    forms = encodings(SECRET)

    assert {
        SECRET,
        quote(SECRET, safe=""),
        quote_plus(SECRET, safe=""),
        json.dumps(SECRET)[1:-1],
        base64.b64encode(SECRET.encode()).decode(),
        base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("="),
    } <= forms


@pytest.mark.parametrize("form", sorted(encodings(SECRET)))
def test_the_scrubber_replaces_a_known_secret_in_any_encoding(form: str) -> None:
    scrubbed = Scrubber([SECRET, "other"]).text(f"before {form} after")

    assert scrubbed == f"before {REDACTED} after"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bearer sdp1.YWxpY2UKMTc.c2lnbmF0dXJl", f"Bearer {REDACTED}"),
        ('{"t": "sdp1.abc.def"}', f'{{"t": "{REDACTED}"}}'),
        ("/path?x=sdp1.abc", f"/path?x={REDACTED}"),
        ("nothing to see", "nothing to see"),
    ],
)
def test_the_scrubber_knows_local_tokens_by_their_shape(text: str, expected: str) -> None:
    assert Scrubber([]).text(text) == expected


def test_a_secret_containing_another_is_replaced_whole() -> None:
    assert Scrubber(["abc", "abcdef"]).text("xabcdefx") == f"x{REDACTED}x"


def test_the_scrubber_walks_a_whole_document_keys_included() -> None:
    document = {"k3y": ["a k3y", {"n": 1, "t": ("k3y",)}], "x": None}

    assert Scrubber(["k3y"]).tree(document) == {
        REDACTED: [f"a {REDACTED}", {"n": 1, "t": [REDACTED]}],
        "x": None,
    }


def test_empty_secrets_are_ignored() -> None:
    assert Scrubber(["", "s"]).text("a s") == f"a {REDACTED}"
