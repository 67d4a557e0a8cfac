"""Query-string reading the way ASP.NET Core model binding does it.

Keys match case-insensitively (`taskid` binds `taskId`), a repeated key is a multi-value filter
(`?workspaceId=1&workspaceId=2`), a scalar parameter takes the first value, and an empty value
counts as absent. Bad values are collected as ASP.NET-style errors and raised together by
`Query.check`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from .errors import ValidationFailed
from .int32 import DIGITS, is_int32
from .timestamps import parse_iso

_INTEGER = re.compile(f"[+-]?{DIGITS}")


class Query:
    """A case-insensitive, multi-value view of a query string that collects binding errors."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for key, value in items:
            if value.strip():
                self._values.setdefault(key.lower(), []).append(value.strip())
        self.errors: dict[str, list[str]] = {}

    def values(self, name: str) -> list[str]:
        """Every non-empty value given for `name`, in order."""
        return list(self._values.get(name.lower(), []))

    def first(self, name: str) -> str | None:
        """The first value given for `name`, or None."""
        values = self._values.get(name.lower())
        return values[0] if values else None

    def integer(self, name: str) -> int | None:
        """The first value of `name` as an int; records an error if it is not one."""
        text = self.first(name)
        return None if text is None else self._to_int(name, text)

    def integers(self, name: str) -> list[int]:
        """Every value of `name` as ints; records an error for each that is not one."""
        parsed = (self._to_int(name, text) for text in self.values(name))
        return [number for number in parsed if number is not None]

    def date(self, name: str) -> datetime | None:
        """The first value of `name` as an aware UTC datetime; records an error if malformed."""
        text = self.first(name)
        if text is None:
            return None
        moment = parse_iso(text)
        if moment is None:
            self.fail(name, f"The value '{text}' is not valid for {name}.")
        return moment

    def fail(self, name: str, message: str) -> None:
        """Record one error against `name`."""
        self.errors.setdefault(name, []).append(message)

    def check(self) -> None:
        """Raise `ValidationFailed` with every recorded error, if any."""
        if self.errors:
            raise ValidationFailed(self.errors)

    def _to_int(self, name: str, text: str) -> int | None:
        # A strict pattern rather than bare int(): int() also takes "1_000" and non-ASCII digits.
        # Ten digits can still overflow the Int32 that ASP.NET binds to, which it refuses too.
        number = int(text) if _INTEGER.fullmatch(text) else None
        if number is None or not is_int32(number):
            self.fail(name, f"The value '{text}' is not valid.")
            return None
        return number
