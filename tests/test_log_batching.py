"""The log handler writes lines in batches while the loop runs, and loses none."""

from __future__ import annotations

import asyncio
import io
import logging
import select

import pytest

from proxy.exchange import Exchange
from proxy.logs import ACCESS_LOGGER, BatchingHandler, JsonFormatter, TextFormatter, log_exchange


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def _logger(stream: CountingStream, interval: float = 0.05) -> logging.Logger:
    logger = logging.getLogger(f"batching-{id(stream)}")
    logger.propagate = False
    logger.handlers[:] = [BatchingHandler(stream, interval)]
    logger.setLevel(logging.INFO)
    return logger


async def test_lines_logged_while_the_loop_runs_are_written_in_one_go() -> None:
    stream = CountingStream()
    logger = _logger(stream)
    for number in range(100):
        logger.info("line %d", number)
    assert stream.writes == 0  # held for the batch
    await asyncio.sleep(0.1)
    assert stream.writes == 1
    assert stream.getvalue().splitlines() == [f"line {n}" for n in range(100)]


async def test_a_warning_is_written_at_once_with_what_was_waiting() -> None:
    stream = CountingStream()
    logger = _logger(stream, interval=10)
    logger.info("first")
    logger.warning("second")
    assert stream.getvalue().splitlines() == ["first", "second"]


def test_without_a_loop_every_line_is_written_at_once() -> None:
    stream = CountingStream()
    logger = _logger(stream)
    logger.info("alone")
    assert stream.getvalue() == "alone\n"


async def test_flush_writes_what_waits_so_nothing_is_lost_at_exit() -> None:
    stream = CountingStream()
    logger = _logger(stream, interval=10)
    logger.info("pending")
    for handler in logger.handlers:
        handler.flush()
    assert stream.getvalue() == "pending\n"


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()], ids=["json", "text"])
def test_an_access_line_fits_one_atomic_write_whatever_the_request_line(
    formatter: logging.Formatter,
) -> None:
    # The worst aiohttp admits: an 8 KiB request line, of characters JSON escapes.
    exchange = Exchange("X" * 4000, "/" + '"' * 8000, "127.0.0.1")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    access = logging.getLogger(ACCESS_LOGGER)
    level = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        log_exchange(exchange)
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    line = stream.getvalue()
    assert line.count("\n") == 1
    assert len(line.encode()) <= select.PIPE_BUF
    assert "(+7201 chars)" in line  # cut, and saying how much
    assert "(+3968 chars)" in line
