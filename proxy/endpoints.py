"""The vendor's documented endpoints, as a bounded ``operation`` label for the metrics.

An operator needs to see which calls fail, but a label per path would grow without bound (ids
sit in paths). So a path is named by the documented endpoint it calls, ids left out, or
``other``. ASP.NET matches routes case-insensitively, and so does this table.
"""

from __future__ import annotations

import functools
import re

API_PREFIX = "/api/v1.0/external/"
OTHER = "other"
_ID = r"[^/]+"

# (operation, pattern of the path after API_PREFIX), most specific first.
ENDPOINTS: tuple[tuple[str, str], ...] = (
    ("sdtask/process", "sdtask/process"),
    ("sdtask/status", "sdtask/status"),
    ("sdtask/statuslist", "sdtask/statuslist"),
    ("sdtask/statuslistpaginated", "sdtask/statuslistpaginated"),
    ("sdtask/restartprocessing", "sdtask/restartprocessing"),
    ("sdtask/externalIntegrationStatus", "sdtask/externalintegrationstatus"),
    ("sdtask/GetExportData/Transcript", f"sdtask/getexportdata/transcript/{_ID}"),
    ("sdtask/GetExportData", f"sdtask/getexportdata/{_ID}"),
    ("sdworkspace/CurrentWorkspaces", "sdworkspace/currentworkspaces"),
    ("sdworkspace/allusers", f"sdworkspace/allusers/{_ID}"),
    ("sdworkspace/inviteusers", "sdworkspace/inviteusers"),
    ("sdbatch/paginated", "sdbatch/paginated"),
    ("sdbatch", "sdbatch"),
    ("transcripts/speakers/workspaces", f"transcripts/speakers/workspaces/{_ID}"),
    ("transcripts/speakers/tasks", f"transcripts/speakers/tasks/{_ID}/{_ID}(?:/{_ID})?"),
    ("tenant/availableroles", "tenant/availableroles"),
    ("tenant/allusers", "tenant/allusers"),
    ("tenant/inviteusers", "tenant/inviteusers"),
)
_COMPILED = tuple((name, re.compile(pattern + "/?")) for name, pattern in ENDPOINTS)
OPERATIONS = (*(name for name, _ in ENDPOINTS), "connect/token", OTHER)


# Paths named lately, remembered: a client calls the same few paths over and over (ids make
# them many, so the memory is bounded), and each would otherwise be matched against the table.
OPERATION_CACHE_SIZE = 4096


@functools.lru_cache(maxsize=OPERATION_CACHE_SIZE)
def operation(path: str) -> str:
    """The documented endpoint ``path`` (without its query) calls, or ``other``."""
    lowered = path.lower()
    if lowered == "/connect/token":
        return "connect/token"
    if not lowered.startswith(API_PREFIX):
        return OTHER
    rest = lowered[len(API_PREFIX) :]
    for name, pattern in _COMPILED:
        if pattern.fullmatch(rest):
            return name
    return OTHER
