"""A local stand-in for the SmartDocumentor cloud API, with in-memory state and fault switches.

It implements the documented surface (the OAuth token endpoint and every endpoint under
`/api/v1.0/external/`) closely enough to develop and test the proxy offline, and can be told to
fail in the ways the real service fails. The command line builds it from `add_arguments`,
`settings_from_args` and `listen_from_args`, then serves `create_standin_app(settings)`.

It serves one or more organizations (`StandinSettings.organizations`, each an
`OrganizationSettings`; `demo_organizations(n)` makes `org1`..`orgN` with demo credentials), and
each token sees only its own organization's data.
"""

from __future__ import annotations

from .app import create_standin_app
from .settings import (
    OrganizationSettings,
    StandinSettings,
    StandinSettingsError,
    add_arguments,
    demo_organizations,
    listen_from_args,
    settings_from_args,
)

__all__ = [
    "OrganizationSettings",
    "StandinSettings",
    "StandinSettingsError",
    "add_arguments",
    "create_standin_app",
    "demo_organizations",
    "listen_from_args",
    "settings_from_args",
]
