"""Exceptions the stand-in's API code raises; `problems.py` turns them into HTTP.

    StandinError                 any failure that maps onto one Problem Details response
    ├── ValidationFailed         400, with ASP.NET-style `errors` ({field: [messages]})
    ├── NotFound                 404, an unknown task, batch, workspace or speaker (another
    │                            organization's is unknown too)
    ├── Conflict                 409, e.g. a duplicate `externalId`
    └── UnsupportedMediaType     415, a JSON endpoint called without a JSON body

Settings errors are separate (`settings.StandinSettingsError`): they never become HTTP.
"""

from __future__ import annotations


class StandinError(Exception):
    """A request failed in a way the API reports as one Problem Details document."""

    status = 500

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or "")
        self.detail = detail


class ValidationFailed(StandinError):
    """The request's query or body is invalid; `errors` maps each field to its messages."""

    status = 400

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(None)
        self.errors = errors

    @classmethod
    def single(cls, field: str, message: str) -> ValidationFailed:
        """One failed field with one message."""
        return cls({field: [message]})


class NotFound(StandinError):
    """The resource the request names does not exist in this organization."""

    status = 404


class Conflict(StandinError):
    """The request conflicts with existing state."""

    status = 409


class UnsupportedMediaType(StandinError):
    """The endpoint reads JSON and the request did not declare JSON."""

    status = 415
