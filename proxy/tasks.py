"""Tasks owned by whoever starts them: cancelled and awaited when the owner's block ends, so
none outlives the application that started it and none ends unobserved."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine


@contextlib.asynccontextmanager
async def owned(work: Coroutine[object, object, None], name: str) -> AsyncIterator[None]:
    """``work`` as a task named ``name`` while the block runs; cancelled and awaited at its
    end, however the block ends."""
    task = asyncio.create_task(work, name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
