"""How the API writes and reads times: pure functions, UTC throughout.

The `createdOn` of tasks and of batches is the .NET round-trip form with seven fractional digits
(`2023-08-08T08:55:29.7831583Z`), as the vendor's batch example shows and as .NET writes every
DateTime it stores; users' `createdAt` and the other task times are second-precision ISO with a `Z`
(`2022-03-28T14:28:56Z`), as in the vendor's user and task examples.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The default wall clock: an aware UTC datetime."""
    return datetime.now(UTC)


def iso_seconds(moment: datetime) -> str:
    """`2022-03-28T14:28:56Z`: users' `createdAt`, a task's `preProcessingStartedOn`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ticks(moment: datetime) -> str:
    """`2023-08-08T08:55:29.7831583Z`: .NET's seven fractional digits (100 ns ticks).

    The `createdOn` of tasks and batches.
    """
    utc = moment.astimezone(UTC)
    # Python keeps microseconds; the seventh digit of a .NET tick is therefore always 0.
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond:06d}0Z"


def parse_iso(text: str) -> datetime | None:
    """An ISO 8601 date or date-time as aware UTC, or None when it does not parse.

    A time without an offset is taken as UTC, as the API documents all its times as UTC. A time
    whose UTC equivalent falls outside years 1 to 9999 (`9999-12-31T23:59:59-05:00`) does not
    parse either: .NET's DateTime cannot hold it.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # shifting by the offset went past datetime.min or datetime.max
        return None
