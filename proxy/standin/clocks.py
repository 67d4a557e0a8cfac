"""The two clocks of the stand-in, as types: a leaf module that every other one may import."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

Clock = Callable[[], float]
"""Monotonic seconds: token expiry, task progression, fault windows."""

WallClock = Callable[[], datetime]
"""Aware UTC datetimes: `createdOn` and other times the API shows."""
