"""One organization (tenant) the stand-in serves: its workspaces, batches, tasks and users.

All state is in memory and lost on restart. Every lookup sees only this organization's objects,
so an id of another organization's task or batch answers 404 exactly as an unknown id does. Ids
come from the stand-in's `ids.IdSequences`, shared by all organizations, so they never collide.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from .batches import Batch
from .errors import Conflict, NotFound, ValidationFailed
from .ids import IdSequences
from .lifecycle import Lifecycle
from .speakers import for_task
from .tasks import Task, TaskRequest
from .users import Invitation, User
from .workspaces import Workspace, new_workspace


class Organization:
    """Everything one tenant owns; lookups raise `NotFound`, bad references `ValidationFailed`."""

    def __init__(
        self,
        name: str,
        tenant_id: int,
        workspace_names: Sequence[str],
        ids: IdSequences,
        created_on: datetime,
    ) -> None:
        """`workspace_names` are its workspaces, the default one first."""
        self.name, self.tenant_id, self._ids = name, tenant_id, ids
        workspaces = [
            new_workspace(next(ids.workspaces), tenant_id, workspace_name, is_default=index == 0)
            for index, workspace_name in enumerate(workspace_names)
        ]
        self.default_workspace = workspaces[0]
        self.workspaces = {workspace.workspace_id: workspace for workspace in workspaces}
        self.batches: dict[int, Batch] = {}
        self.tasks: dict[int, Task] = {}
        admin_id = next(ids.users)
        admin = User(
            admin_id, "admin@example.com", "Administrator", "Demo Admin", created_on, True, "Active"
        )
        admin.workspace_ids.update(self.workspaces)
        self.users = [admin]

    def workspace(self, workspace_id: int) -> Workspace:
        """The workspace with that id; raises `NotFound`."""
        if workspace_id not in self.workspaces:
            raise NotFound(f"Workspace {workspace_id} was not found.")
        return self.workspaces[workspace_id]

    def batch(self, batch_id: int) -> Batch:
        """The batch with that id; raises `NotFound`."""
        if batch_id not in self.batches:
            raise NotFound(f"Batch {batch_id} was not found.")
        return self.batches[batch_id]

    def task(self, task_id: int | None, external_id: str | None = None) -> Task:
        """The task with that id, else with that external id; raises `NotFound`."""
        if task_id is not None:
            if task_id not in self.tasks:
                raise NotFound(f"Task {task_id} was not found.")
            return self.tasks[task_id]
        found = next((t for t in self.tasks.values() if t.request.external_id == external_id), None)
        if found is None:
            raise NotFound(f"No task has externalId '{external_id}'.")
        return found

    def task_in_workspace(self, task_id: int, workspace_id: int) -> Task:
        """The task, which must belong to that workspace; raises `NotFound`."""
        self.workspace(workspace_id)
        task = self.task(task_id)
        if task.workspace_id != workspace_id:
            raise NotFound(f"Task {task_id} is not in workspace {workspace_id}.")
        return task

    def add_batch(
        self, display_name: str, description: str | None, workspace_id: int | None, wall: datetime
    ) -> Batch:
        """Create a batch; an unknown workspace is a validation error."""
        workspace = self.referenced_workspace(workspace_id)
        batch = Batch(
            next(self._ids.batches), workspace.workspace_id, display_name, description, wall
        )
        self.batches[batch.batch_id] = batch
        return batch

    def batch_view(self, batch: Batch) -> dict[str, object]:
        """The documented batch shape, with live task counts."""
        count = sum(1 for task in self.tasks.values() if task.request.batch_id == batch.batch_id)
        return batch.view(count)

    def add_task(
        self, request: TaskRequest, lifecycle: Lifecycle, now: float, wall: datetime
    ) -> Task:
        """Create and queue a task; checks its workspace, batch and external id."""
        workspace = self.referenced_workspace(request.workspace_id)
        self._check_batch(request.batch_id, workspace.workspace_id)
        if request.external_id is not None and any(
            task.request.external_id == request.external_id for task in self.tasks.values()
        ):
            raise Conflict(f"A task with externalId '{request.external_id}' already exists.")
        number = 1 + sum(1 for t in self.tasks.values() if t.workspace_id == workspace.workspace_id)
        review_due_at = lifecycle.review_due(now)
        task = Task(
            next(self._ids.tasks),
            workspace.workspace_id,
            number,
            request,
            wall,
            now,
            wall,
            review_due_at,
        )
        task.speakers = for_task(workspace.speakers)
        self.tasks[task.task_id] = task
        return task

    def invite(
        self, invitations: list[Invitation], workspace_id: int | None, wall: datetime
    ) -> None:
        """Add invited users (existing e-mails keep their role) and, if given, workspace access."""
        for invitation in invitations:
            user = next(
                (u for u in self.users if u.email.lower() == invitation.email.lower()), None
            )
            if user is None:
                name = invitation.email.split("@", 1)[0]
                user = User(
                    next(self._ids.users), invitation.email, invitation.role_name, name, wall
                )
                self.users.append(user)
            if workspace_id is not None:
                user.workspace_ids.add(workspace_id)

    def users_of(self, workspace_id: int) -> list[User]:
        """The users with access to that workspace; raises `NotFound` for an unknown workspace."""
        self.workspace(workspace_id)
        return [user for user in self.users if workspace_id in user.workspace_ids]

    def referenced_workspace(self, workspace_id: int | None) -> Workspace:
        """The workspace a request body names (default if none); unknown is a validation error."""
        if workspace_id is None:
            return self.default_workspace
        if workspace_id not in self.workspaces:
            raise ValidationFailed.single(
                "WorkspaceId", f"Workspace {workspace_id} does not exist."
            )
        return self.workspaces[workspace_id]

    def _check_batch(self, batch_id: int | None, workspace_id: int) -> None:
        if batch_id is None:
            return
        batch = self.batches.get(batch_id)
        if batch is None:
            raise ValidationFailed.single("BatchId", f"Batch {batch_id} does not exist.")
        if batch.workspace_id != workspace_id:
            message = (
                f"Batch {batch_id} belongs to workspace {batch.workspace_id}, not {workspace_id}."
            )
            raise ValidationFailed.single("BatchId", message)
