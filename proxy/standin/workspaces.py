"""Workspaces: where an organization's tasks live, and the transcript speakers they start with.

A workspace whose name contains "transcript" is a transcript workspace (its own `taskType`, demo
speakers, transcript export). The type numbers are not published: they are the stand-in's own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from .speakers import Speaker

DOCUMENT_TASK_TYPE, TRANSCRIPT_TASK_TYPE = 1, 2


@dataclass
class Workspace:
    """One workspace of one organization (`tenant_id`) and its transcript speakers."""

    workspace_id: int
    tenant_id: int
    name: str
    is_default: bool
    transcript: bool
    speakers: list[Speaker] = field(default_factory=list)

    def view(self) -> dict[str, object]:
        """The documented Workspace shape."""
        task_type = TRANSCRIPT_TASK_TYPE if self.transcript else DOCUMENT_TASK_TYPE
        kind = "transcript" if self.transcript else "document"
        return {
            "workspaceId": self.workspace_id,
            "tenantId": self.tenant_id,
            "workspaceName": self.name,
            "workspaceDescription": f"Stand-in {kind} workspace",
            "isDefault": self.is_default,
            "taskType": task_type,
            "workspaceType": 1,
            "templateType": task_type,
            "workspaceTemplateName": "Transcript" if self.transcript else "Custom",
        }


def demo_speakers(workspace_id: int) -> list[Speaker]:
    """Two speakers with GUIDs stable across restarts, so a demo script can address them."""
    names = ("Interviewer", "Guest")
    return [
        Speaker(str(uuid.uuid5(uuid.NAMESPACE_URL, f"standin:{workspace_id}:{name}")), name)
        for name in names
    ]


def new_workspace(workspace_id: int, tenant_id: int, name: str, *, is_default: bool) -> Workspace:
    """A workspace named `name`; a transcript one gets the demo speakers."""
    transcript = "transcript" in name.lower()
    speakers = demo_speakers(workspace_id) if transcript else []
    return Workspace(workspace_id, tenant_id, name.strip(), is_default, transcript, speakers)
