"""Transcript speakers: the workspace list and each task's own list, parsed from JSON bodies.

Bodies follow the vendor's examples: `{"speakers": [{speakerId, speakerName, speakerPrefix?,
speakerSuffix?, isDefault?}]}`. For a single task speaker a bare speaker object is accepted too,
as the reference describes it that way. `speakerId` must be a GUID.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from .bodies import Fields


@dataclass(frozen=True)
class Speaker:
    """One speaker; `is_default` only means something on a task's speakers."""

    speaker_id: str
    speaker_name: str
    speaker_prefix: str | None = None
    speaker_suffix: str | None = None
    is_default: bool = False

    def view(self, *, with_default: bool) -> dict[str, object]:
        """The API shape; workspace speakers carry no `isDefault`."""
        shown: dict[str, object] = {
            "speakerId": self.speaker_id,
            "speakerName": self.speaker_name,
            "speakerPrefix": self.speaker_prefix,
            "speakerSuffix": self.speaker_suffix,
        }
        if with_default:
            shown["isDefault"] = self.is_default
        return shown


def for_task(workspace_speakers: list[Speaker]) -> list[Speaker]:
    """A new task's speakers: a copy of its workspace's, none of them the default."""
    return [replace(speaker, is_default=False) for speaker in workspace_speakers]


def canonical_guid(text: str) -> str | None:
    """`text` as a lower-case hyphenated GUID, or None if it is not one."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def parse_speaker(fields: Fields) -> Speaker | None:
    """One speaker object; errors go to `fields.errors`."""
    speaker_id = fields.text("speakerId", required=True)
    name = fields.text("speakerName", required=True)
    guid = canonical_guid(speaker_id) if speaker_id else None
    if speaker_id and guid is None:
        fields.fail("speakerId", f"The value '{speaker_id}' is not a valid GUID.")
    prefix, suffix = fields.text("speakerPrefix"), fields.text("speakerSuffix")
    is_default = bool(fields.boolean("isDefault"))
    if guid is None or name is None:
        return None
    return Speaker(guid, name, prefix, suffix, is_default)


def parse_speakers(fields: Fields, *, allow_single: bool) -> list[Speaker]:
    """`{"speakers": [...]}` (or, if `allow_single`, one bare speaker); raises on any error."""
    if allow_single and fields.raw("speakers") is None:
        speakers = [parse_speaker(fields)]
    else:
        items = fields.array("speakers", required=True) or []
        speakers = [_parse_item(fields, item, index) for index, item in enumerate(items)]
    ids = [speaker.speaker_id for speaker in speakers if speaker]
    if len(set(ids)) != len(ids):
        fields.fail("speakers", "Speaker ids must be unique.")
    fields.check()
    return [speaker for speaker in speakers if speaker]


def _parse_item(fields: Fields, item: object, index: int) -> Speaker | None:
    if not isinstance(item, dict):
        fields.fail(f"speakers[{index}]", "Each speaker must be a JSON object.")
        return None
    return parse_speaker(fields.nested(item, "speakers", index))
