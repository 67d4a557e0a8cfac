"""The event loop the proxy serves on: uvloop's when it is installed (``pip install
smartdoc-proxy[speed]``; the container image has it), else asyncio's own."""

from __future__ import annotations

import asyncio
import importlib
import logging

logger = logging.getLogger(__name__)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A fresh event loop, uvloop's if it can be imported; the choice is logged."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        logger.info("event loop: asyncio (install smartdoc-proxy[speed] for uvloop)")
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    logger.info("event loop: uvloop %s", uvloop.__version__)
    return loop
