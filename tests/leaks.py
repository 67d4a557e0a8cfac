"""What a fault may not leave behind: open file descriptors, asyncio tasks and memory of this
process (the proxy and its fakes run in it), measured before a fault and after recovery."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass

# Slack for what comes and goes on its own: a keep-alive connection is two descriptors here
# (both of its ends are in this process) and a task on the server side; the memory slack
# covers caches filled the first time a code path runs. Each fault case sends far more
# requests than that, so a leak of one of anything per request exceeds it.
FDS_TOLERANCE = 6
TASKS_TOLERANCE = 3
MEMORY_TOLERANCE_BYTES = 512 * 1024
SETTLE_SECONDS = 3.0


@dataclass(frozen=True)
class Resources:
    fds: int
    tasks: int
    memory_bytes: int

    def __str__(self) -> str:
        return f"{self.fds} fds, {self.tasks} tasks, {self.memory_bytes / 1024:.0f} KiB"


def measure() -> Resources:
    """Now, after a full garbage collection. Memory counts only while :func:`tracing`."""
    gc.collect()
    return Resources(
        fds=len(os.listdir("/proc/self/fd")),
        tasks=len(asyncio.all_tasks()),
        memory_bytes=tracemalloc.get_traced_memory()[0],
    )


@contextlib.contextmanager
def tracing() -> Iterator[None]:
    """Trace memory allocations for the duration (unless something else already does)."""
    if tracemalloc.is_tracing():
        yield
        return
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def grown(before: Resources, after: Resources) -> list[str]:
    """What grew past its tolerance, in words; empty when nothing did."""
    found = []
    if after.fds - before.fds > FDS_TOLERANCE:
        found.append(f"file descriptors {before.fds} -> {after.fds}")
    if after.tasks - before.tasks > TASKS_TOLERANCE:
        found.append(f"asyncio tasks {before.tasks} -> {after.tasks}")
    if after.memory_bytes - before.memory_bytes > MEMORY_TOLERANCE_BYTES:
        found.append(f"traced memory {before.memory_bytes} -> {after.memory_bytes} bytes")
    return found


async def assert_nothing_leaked(before: Resources) -> Resources:
    """Wait (boundedly) for closing connections and ending tasks to finish, then fail if any
    resource grew past its tolerance since ``before``. Returns the last measurement."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while True:
        after = measure()
        if not grown(before, after) or loop.time() > deadline:
            break
        await asyncio.sleep(0.05)
    found = grown(before, after)
    assert not found, f"leaked: {'; '.join(found)}{_biggest_allocations()}"
    return after


def _biggest_allocations(count: int = 5) -> str:
    """Where the memory still held was allocated, to start looking for a leak."""
    if not tracemalloc.is_tracing():
        return ""
    stats = tracemalloc.take_snapshot().statistics("lineno")[:count]
    return "".join(f"\n  {stat}" for stat in stats)
