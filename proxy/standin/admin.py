"""The stand-in's own control paths under `/_standin`, never under `/api`.

They need no Bearer token: they are a local test tool and no part of the API. Behind the proxy
(as in `smartdoc-proxy demo`) they are forwarded like any other path, which lets a test drive the
faults through the proxy:

- `GET /_standin/faults` shows the fault switches; `POST` or `PATCH` with a JSON object changes
  some of them (all or none: one bad value changes nothing); `DELETE` turns them all off.
- `POST /_standin/revoke-tokens` revokes every issued token.
- `GET /_standin/webhooks` shows the webhook target and every delivery attempt.
"""

from __future__ import annotations

from aiohttp import web

from .bodies import read_json_object
from .errors import ValidationFailed
from .faults import FaultError
from .keys import FAULTS, TOKENS, WEBHOOKS
from .paths import ADMIN_PREFIX


async def show_faults(request: web.Request) -> web.Response:
    """GET /_standin/faults."""
    return web.json_response(request.app[FAULTS].describe())


async def change_faults(request: web.Request) -> web.Response:
    """POST/PATCH /_standin/faults: apply the given switches, answer the new state."""
    changes = await read_json_object(request)
    switch = request.app[FAULTS]
    try:
        switch.change(changes)
    except FaultError as exc:
        raise ValidationFailed.single(exc.field, exc.message) from exc
    return web.json_response(switch.describe())


async def reset_faults(request: web.Request) -> web.Response:
    """DELETE /_standin/faults: every switch off, held requests freed."""
    switch = request.app[FAULTS]
    switch.reset()
    return web.json_response(switch.describe())


async def revoke_tokens(request: web.Request) -> web.Response:
    """POST /_standin/revoke-tokens: every issued token stops working."""
    return web.json_response({"revoked": request.app[TOKENS].revoke_all()})


async def show_webhooks(request: web.Request) -> web.Response:
    """GET /_standin/webhooks."""
    return web.json_response(request.app[WEBHOOKS].describe())


routes = [
    web.get(f"{ADMIN_PREFIX}/faults", show_faults),
    web.post(f"{ADMIN_PREFIX}/faults", change_faults),
    web.patch(f"{ADMIN_PREFIX}/faults", change_faults),
    web.delete(f"{ADMIN_PREFIX}/faults", reset_faults),
    web.post(f"{ADMIN_PREFIX}/revoke-tokens", revoke_tokens),
    web.get(f"{ADMIN_PREFIX}/webhooks", show_webhooks),
]
