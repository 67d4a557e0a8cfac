"""Pure binding rules, as ASP.NET Core applies them: Int32 range, query values, body integers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from proxy.standin.bodies import Fields
from proxy.standin.int32 import INT32_MAX, INT32_MIN, is_int32
from proxy.standin.query import Query
from proxy.standin.timestamps import iso_ticks, parse_iso
from tests.standin_helpers import arabic_indic

NOON = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("number", "fits"),
    [
        (0, True),
        (INT32_MAX, True),
        (INT32_MAX + 1, False),
        (INT32_MIN, True),
        (INT32_MIN - 1, False),
    ],
)
def test_is_int32(number: int, fits: bool) -> None:
    assert is_int32(number) is fits


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", NOON),
        ("2024-05-01T12:00:00", NOON),
        ("2024-05-01T14:00:00+02:00", NOON),
        ("2024-05-01T12:00:00.1234560Z", NOON.replace(microsecond=123456)),
        ("9999-12-31T23:59:59+05:00", datetime(9999, 12, 31, 18, 59, 59, tzinfo=UTC)),
        ("0001-01-01T00:00:00-05:00", datetime(1, 1, 1, 5, 0, 0, tzinfo=UTC)),
        ("9999-12-31T23:59:59-05:00", None),
        ("0001-01-01T00:00:00+05:00", None),
        ("yesterday", None),
    ],
)
def test_parse_iso(text: str, expected: datetime | None) -> None:
    assert parse_iso(text) == expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (NOON, "2024-05-01T12:00:00.0000000Z"),
        (NOON.replace(microsecond=123456), "2024-05-01T12:00:00.1234560Z"),
        (NOON.replace(microsecond=1), "2024-05-01T12:00:00.0000010Z"),
        (datetime.fromisoformat("2024-05-01T14:00:00.5+02:00"), "2024-05-01T12:00:00.5000000Z"),
    ],
)
def test_iso_ticks_writes_seven_fractional_digits_in_utc(moment: datetime, expected: str) -> None:
    assert iso_ticks(moment) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2147483647", INT32_MAX),
        ("-2147483648", INT32_MIN),
        ("+7", 7),
        ("2147483648", None),
        ("-2147483649", None),
        ("9999999999", None),
        ("99999999999", None),
        ("1_000", None),
        (arabic_indic(5), None),
    ],
)
def test_query_integers_must_be_int32(text: str, expected: int | None) -> None:
    query = Query([("n", text)])
    assert query.integer("n") == expected
    assert query.errors == (
        {} if expected is not None else {"n": [f"The value '{text}' is not valid."]}
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (INT32_MAX, INT32_MAX),
        (INT32_MIN, INT32_MIN),
        (INT32_MAX + 1, None),
        (INT32_MIN - 1, None),
        (10**30, None),
        (True, None),
        (1.0, None),
    ],
)
def test_body_integers_must_be_int32(value: object, expected: int | None) -> None:
    fields = Fields({"n": value})
    assert fields.integer("n") == expected
    error = {"$.n": ["The JSON value could not be converted to System.Int32."]}
    assert fields.errors == ({} if expected is not None else error)
