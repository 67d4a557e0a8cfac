"""The live fault switches of one stand-in, and the middleware that applies them to requests.

`FaultSwitch` holds the current `faults.FaultState` and the token requests its `hang` fault is
holding. A hung request waits on an `asyncio.Event` that is set when the hang is cleared through
the admin path, or when the application shuts down (see `release_on_shutdown`): without that, a
hung handler would hold graceful shutdown for its whole timeout. A hung request whose client has
gone away stops waiting and is no longer counted in `hanging_token_requests`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from .clocks import Clock
from .faults import (
    ApiFault,
    FaultState,
    describe,
    hang_armed,
    next_api_fault,
    next_token_fault,
    with_changes,
)
from .paths import TOKEN_PATH, is_api_path
from .problems import problem_response

logger = logging.getLogger(__name__)

# Changing either of these switches is what "clearing the hang" means.
_HANG_SWITCHES = frozenset({"fail_token_requests", "fail_token_mode"})

CLIENT_GONE_POLL_SECONDS: Final = 0.05
"""How often a hung request looks whether its client is still connected.

Polling, because aiohttp 3 tells a handler of a disconnect only by cancelling it, and only with
`handler_cancellation=True`, which `web.run_app` (the CLI) and the demo's `AppRunner` leave off.
"""


class FaultSwitch:
    """The current faults, used up as requests arrive, and the requests held by `hang`."""

    def __init__(self, state: FaultState, clock: Clock) -> None:
        self._state = state
        self._clock = clock
        self._release = asyncio.Event()
        self.hanging = 0

    @property
    def state(self) -> FaultState:
        """The switches as they stand now."""
        return self._state

    def take_token_fault(self) -> str | None:
        """The fault mode for this token request, if any, using one up."""
        fault, self._state = next_token_fault(self._state)
        return fault

    def take_api_fault(self) -> ApiFault | None:
        """The refusal for this API call, if any, using one up."""
        fault, self._state = next_api_fault(self._state, self._clock())
        return fault

    def change(self, changes: Mapping[str, object]) -> None:
        """Apply `changes` (raises `faults.FaultError`); clearing `hang` frees held requests."""
        self._state = with_changes(self._state, changes, self._clock())
        logger.info("fault switches changed: %s", ", ".join(sorted(changes)))
        if _HANG_SWITCHES & changes.keys() and not hang_armed(self._state):
            self.release_hung()

    def reset(self) -> None:
        """Turn every fault off and free held requests."""
        self._state = FaultState()
        logger.info("fault switches reset")
        self.release_hung()

    def describe(self) -> dict[str, object]:
        """The switches for the admin path, plus how many token requests are held."""
        return {**describe(self._state, self._clock()), "hanging_token_requests": self.hanging}

    async def hang(self, client_gone: Callable[[], bool]) -> bool:
        """Wait until the hang is cleared or the stand-in shuts down (True), or `client_gone()`.

        False means the client went away first: nobody is left to answer.
        """
        released = self._release
        self.hanging += 1
        try:
            while not released.is_set():
                if client_gone():
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(released.wait(), CLIENT_GONE_POLL_SECONDS)
            return True
        finally:
            self.hanging -= 1

    def release_hung(self) -> None:
        """Free every request `hang` holds; later hangs wait on a fresh event."""
        self._release.set()
        self._release = asyncio.Event()


def release_on_shutdown(switch: FaultSwitch) -> Callable[[web.Application], Awaitable[None]]:
    """`on_shutdown` hook: free hung requests before aiohttp waits for handlers to finish.

    Shutdown runs before the server waits for in-flight handlers, whereas `cleanup_ctx` exits only
    after that wait, too late to help.
    """

    async def release(app: web.Application) -> None:
        switch.release_hung()

    return release


def _refusal(fault: ApiFault) -> web.Response:
    return problem_response(
        fault.status,
        detail="Refused by the stand-in's fault switch.",
        headers={hdrs.RETRY_AFTER: str(fault.retry_after_seconds)},
    )


def fault_middleware(switch: FaultSwitch) -> Middleware:
    """Add the configured latency to token and API calls, and refuse API calls while switched on.

    The switch is handed in, not looked up: this module stays below `keys` in the imports."""

    @web.middleware
    async def faults(request: web.Request, handler: Handler) -> web.StreamResponse:
        api_call = is_api_path(request.path)
        if not api_call and request.path != TOKEN_PATH:
            return await handler(request)
        if switch.state.latency_seconds > 0:
            await asyncio.sleep(switch.state.latency_seconds)
        fault = switch.take_api_fault() if api_call else None
        return _refusal(fault) if fault else await handler(request)

    return faults
