"""When a test needs a program this machine lacks: skipped, visibly, on a developer's machine;
failed in CI (CI=true), where .ci/run installs everything the tests need."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(what: str) -> NoReturn:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what}, and CI must run this test")
    pytest.skip(what)
