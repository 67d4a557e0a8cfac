"""JSON request bodies, read and validated the way ASP.NET Core binds them.

`read_json_object` enforces the media type (415 otherwise) and a JSON object body (400). `Fields`
then reads typed properties case-insensitively (System.Text.Json's web defaults) and collects
errors under ASP.NET's keys: `$.path` for a value of the wrong JSON type, `Pascal.Path` for a
failed rule such as [Required], so one 400 response lists every problem at once.
"""

from __future__ import annotations

import json
from typing import Final, TypeVar

from aiohttp import web

from .errors import UnsupportedMediaType, ValidationFailed
from .int32 import is_int32

_T = TypeVar("_T")
_MISSING: Final = object()
_DOTNET_TYPES = {int: "System.Int32", str: "System.String", bool: "System.Boolean"}


def is_json_media_type(content_type: str) -> bool:
    """True for `application/json` and any `+json` type."""
    return content_type == "application/json" or content_type.endswith("+json")


async def read_json_object(request: web.Request) -> dict[str, object]:
    """The request body as a JSON object, or the error ASP.NET would answer."""
    if not is_json_media_type(request.content_type):
        raise UnsupportedMediaType("The request body must be application/json.")
    raw = await request.read()
    if not raw.strip():
        raise ValidationFailed.single("", "A non-empty request body is required.")
    try:
        data = json.loads(raw)
    # UnicodeDecodeError is a ValueError too. RecursionError is nesting deeper than Python's
    # recursion limit, which System.Text.Json (default maximum depth 64) would refuse as well.
    except (ValueError, RecursionError) as exc:
        raise ValidationFailed.single("$", "The request body is not valid JSON.") from exc
    if not isinstance(data, dict):
        raise ValidationFailed.single("$", "The JSON value could not be converted to an object.")
    return data


def _pascal(name: str) -> str:
    return name[:1].upper() + name[1:]


class Fields:
    """Typed, case-insensitive access to one JSON object, sharing an error list with its parent."""

    def __init__(
        self,
        data: dict[str, object],
        *,
        errors: dict[str, list[str]] | None = None,
        model_path: str = "",
        json_path: str = "$",
    ) -> None:
        self._data = {key.lower(): value for key, value in data.items()}
        self.errors: dict[str, list[str]] = {} if errors is None else errors
        self._model_path = model_path
        self._json_path = json_path

    def model_key(self, name: str) -> str:
        """The ASP.NET model-state key for a rule failure on `name`, e.g. `Context.Url`."""
        return self._model_path + _pascal(name)

    def fail(self, name: str, message: str) -> None:
        """Record a rule failure on `name`."""
        self.errors.setdefault(self.model_key(name), []).append(message)

    def text(
        self, name: str, *, required: bool = False, max_length: int | None = None
    ) -> str | None:
        """A string property; `required` also rejects blank strings, like [Required]."""
        value = self._typed(name, str)
        if required and (value is None or not value.strip()):
            # A value of the wrong JSON type already carries its own conversion error.
            if value is not None or self._absent(name):
                self.fail(name, f"The {_pascal(name)} field is required.")
            return None
        if value is not None and max_length is not None and len(value) > max_length:
            limit = f"a maximum length of {max_length}"
            self.fail(name, f"The field {_pascal(name)} must be a string with {limit}.")
        return value

    def integer(self, name: str, *, required: bool = False) -> int | None:
        """An Int32 property (booleans are not integers here, as in .NET)."""
        value = self._typed(name, int)
        if value is not None and not is_int32(value):
            # System.Text.Json reports an overflowing number like a value of the wrong type.
            self._type_error(name, _DOTNET_TYPES[int])
            return None
        if required and self._absent(name):
            self.fail(name, f"The {_pascal(name)} field is required.")
        return value

    def boolean(self, name: str) -> bool | None:
        """A boolean property."""
        return self._typed(name, bool)

    def obj(self, name: str, *, required: bool = False) -> Fields | None:
        """A nested object property, read with the same error list and a longer path."""
        raw = self._raw(name)
        if self._absent(name):
            if required:
                self.fail(name, f"The {_pascal(name)} field is required.")
            return None
        if not isinstance(raw, dict):
            self._type_error(name, "an object")
            return None
        return self.nested(raw, name)

    def array(self, name: str, *, required: bool = False) -> list[object] | None:
        """An array property."""
        raw = self._raw(name)
        if self._absent(name):
            if required:
                self.fail(name, f"The {_pascal(name)} field is required.")
            return None
        if not isinstance(raw, list):
            self._type_error(name, "an array")
            return None
        return raw

    def raw(self, name: str) -> object | None:
        """A property of any JSON type, unvalidated (e.g. `metadata`)."""
        value = self._raw(name)
        return None if value is _MISSING else value

    def nested(self, data: dict[str, object], name: str, index: int | None = None) -> Fields:
        """Fields for an object found at `name` (or `name[index]`) inside this one."""
        suffix = "" if index is None else f"[{index}]"
        return Fields(
            data,
            errors=self.errors,
            model_path=f"{self.model_key(name)}{suffix}.",
            json_path=f"{self._json_path}.{name}{suffix}",
        )

    def check(self) -> None:
        """Raise `ValidationFailed` with every recorded error, if any."""
        if self.errors:
            raise ValidationFailed(self.errors)

    def _raw(self, name: str) -> object:
        return self._data.get(name.lower(), _MISSING)

    def _absent(self, name: str) -> bool:
        raw = self._raw(name)
        return raw is _MISSING or raw is None

    def _typed(self, name: str, kind: type[_T]) -> _T | None:
        raw = self._raw(name)
        if self._absent(name):
            return None
        # bool is a subclass of int in Python, but not an Int32 in .NET.
        if isinstance(raw, kind) and not (kind is int and isinstance(raw, bool)):
            return raw
        self._type_error(name, _DOTNET_TYPES.get(kind, kind.__name__))
        return None

    def _type_error(self, name: str, kind: str) -> None:
        key = f"{self._json_path}.{name}"
        self.errors.setdefault(key, []).append(f"The JSON value could not be converted to {kind}.")
