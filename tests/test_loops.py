"""The event loop ``run`` and ``demo`` serve on: uvloop's when it is installed, else asyncio's.

The installed image runs with uvloop: tests/test_container.py checks that in a real process.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest
import uvloop

from proxy import loops


def test_uvloop_is_used_when_it_is_installed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "proxy.loops")

    loop = loops.new_event_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
    assert caplog.messages == [f"event loop: uvloop {uvloop.__version__}"]


def test_asyncio_s_loop_is_used_when_uvloop_cannot_be_imported(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, "proxy.loops")
    # None in sys.modules makes "import uvloop" fail as if it were not installed.
    monkeypatch.setitem(sys.modules, "uvloop", None)

    loop = loops.new_event_loop()
    try:
        assert not isinstance(loop, uvloop.Loop)
        assert isinstance(loop, asyncio.BaseEventLoop)
    finally:
        loop.close()
    assert caplog.messages == ["event loop: asyncio (install smartdoc-proxy[speed] for uvloop)"]
