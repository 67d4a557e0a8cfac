"""Limits on what clients can make the proxy hold: pure rules and small accounting objects,
each driven by a table in the tests, no sockets.

- :class:`HeadMeter`: the bytes of one request head (request line and headers) as they arrive,
  so that an unfinished head is refused once it is too large, not when it is complete.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class HeadMeter:
    """Counts the bytes of the request head (request line and headers) being received.

    :meth:`room` is how many more bytes the head may take; a head that is not complete when
    none is left is over the limit. :meth:`completed` starts again for the next request.
    """

    max_bytes: int
    size: int = 0

    def room(self) -> int:
        return max(self.max_bytes - self.size, 0)

    def received(self, size: int) -> None:
        self.size += size

    def completed(self) -> None:
        self.size = 0
