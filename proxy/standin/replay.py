"""Replay of recorded answers from a HAR file (`--replay FILE.har`), ahead of the simulation.

An `/api` request whose method and raw path-and-query equal a recorded entry's (see `har`) gets
that entry's status, headers and body; several entries for one request answer in recorded order,
the last one repeating; anything else goes on to the stand-in's own simulation.

Matching is exact, byte for byte: the method as written, and the target (path and query) as the
client sent it against the recorded URL's, so query order, case and percent-encoding all count.
The recorded host is ignored, and so is the organization whose token calls: a recording belongs
to none. Replay runs after the Bearer check, so a token is needed as for any `/api` call; entries
outside `/api`, the token endpoint's among them, are checked but never answered.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from multidict import CIMultiDict

from .har import HarError, RecordedResponse, Recording, load_recording, parse_har
from .paths import is_api_path

__all__ = ["HarError", "Recording", "Replay", "load_recording", "parse_har", "replay_middleware"]


class Replay:
    """The recorded answers still to give: per request, in order, the last one repeating."""

    def __init__(self, recording: Recording | None) -> None:
        self._answers: dict[tuple[str, str], list[RecordedResponse]] = {}
        for exchange in recording.exchanges if recording else ():
            key = (exchange.method, exchange.target)
            self._answers.setdefault(key, []).append(exchange.response)
        self._given: dict[tuple[str, str], int] = {}

    def answer(self, method: str, target: str) -> RecordedResponse | None:
        """The recorded answer due for this request, or None when none was recorded."""
        key = (method, target)
        answers = self._answers.get(key)
        if not answers:
            return None
        given = self._given.get(key, 0)
        self._given[key] = given + 1
        return answers[min(given, len(answers) - 1)]


def replayed(recorded: RecordedResponse) -> web.Response:
    """The recorded answer as a response that aiohttp frames itself."""
    return web.Response(
        status=recorded.status,
        reason=recorded.reason or None,
        headers=CIMultiDict(recorded.headers),
        body=recorded.body,
    )


def replay_middleware(replay: Replay) -> Middleware:
    """Answer an `/api` request from the recording when it has one; else simulate as usual."""

    @web.middleware
    async def replaying(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not is_api_path(request.path):
            return await handler(request)
        recorded = replay.answer(request.method, request.raw_path)
        return replayed(recorded) if recorded else await handler(request)

    return replaying
