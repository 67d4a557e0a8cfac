"""Batches: named groups of tasks in one workspace."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .timestamps import iso_ticks

BATCH_PROPERTIES = (
    "batchId",
    "workspaceId",
    "displayName",
    "description",
    "createdOn",
    "totalTasks",
    "totalTasksInHistory",
)
"""The properties of a batch object, in the order the API writes them."""


@dataclass
class Batch:
    """One batch of tasks in a workspace."""

    batch_id: int
    workspace_id: int
    display_name: str
    description: str | None
    created_on: datetime

    def view(self, total_tasks: int) -> dict[str, object]:
        """The documented batch shape, with the live count of its tasks."""
        return {
            "batchId": self.batch_id,
            "workspaceId": self.workspace_id,
            "displayName": self.display_name,
            "description": self.description,
            "createdOn": iso_ticks(self.created_on),
            "totalTasks": total_tasks,
            # Tasks are never deleted here, so history and current counts agree.
            "totalTasksInHistory": total_tasks,
        }
