"""The event loop the proxy serves on: uvloop's when it is installed (``pip install
smartdoc-proxy[speed]``; the container image has it), else asyncio's own."""

from __future__ import annotations

import asyncio
import gc
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


# Container objects allocated (net) between two young-generation collections: Python's default
# is 700, which under load means a collection every ~20 requests.
YOUNG_COLLECTION_THRESHOLD = 10_000


def settle_collector() -> None:
    """Set the cyclic garbage collector up for serving, once, when start-up is done.

    A request makes no reference cycles: reference counting frees what it allocates, so the
    collector's passes find nothing and are pure cost (about a tenth of the proxy's CPU under
    load at Python's defaults, bench/ measures it). Collections still run, for the cycles
    errors do make (a traceback refers to its frames), but less often; and what start-up made
    (modules, the configuration, the application), which lives as long as the process, is
    moved out of the collector's sight (``gc.freeze``) so that full collections no longer
    walk it each time.
    """
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)
    gc.freeze()
