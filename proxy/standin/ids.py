"""The id sequences of one stand-in, shared by all its organizations.

As in one database with an identity column per table: ids are unique across organizations, so an
id that belongs to another organization can only be looked up and not found, never mistaken for
one of this organization's. Each kind starts in its own range (workspaces at 1, batches at 101,
tasks at 1001, users at 1), so a client that mixes up a task id and a batch id gets a 404 rather
than the wrong object.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

FIRST_WORKSPACE_ID, FIRST_BATCH_ID, FIRST_TASK_ID, FIRST_USER_ID = 1, 101, 1001, 1


@dataclass
class IdSequences:
    """One counter per kind of object; `next(ids.tasks)` is the next task id."""

    workspaces: itertools.count[int] = field(
        default_factory=lambda: itertools.count(FIRST_WORKSPACE_ID)
    )
    batches: itertools.count[int] = field(default_factory=lambda: itertools.count(FIRST_BATCH_ID))
    tasks: itertools.count[int] = field(default_factory=lambda: itertools.count(FIRST_TASK_ID))
    users: itertools.count[int] = field(default_factory=lambda: itertools.count(FIRST_USER_ID))
