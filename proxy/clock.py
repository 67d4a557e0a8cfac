"""Time as the proxy's rules see it: an injectable monotonic clock and a sleep that goes with it.

Tests hand in a fake pair so that token lifetimes and backoff move without waiting.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
