"""A token endpoint that cannot be reached is named for its cause, in words: each cause is
real (a closed port, a name that does not resolve, an untrusted certificate, a failed
handshake, a server that never answers), and all of them stay on this machine."""

from __future__ import annotations

import aiohttp
import pytest
from yarl import URL

from proxy.errors import TokenUnavailable
from proxy.grants import Credentials, TokenClient
from tests.fakes import CLIENT_ID, SECRET
from tests.unreachable import CAUSE_IDS, CAUSES, TIMEOUT_SECONDS, Endpoint


@pytest.mark.parametrize(("endpoint", "reason"), CAUSES, ids=CAUSE_IDS)
async def test_an_unreachable_token_endpoint_is_named_for_its_cause(
    endpoint: Endpoint, reason: str
) -> None:
    async with endpoint() as url, aiohttp.ClientSession() as session:
        credentials = Credentials(
            token_url=URL(url),
            client_id=CLIENT_ID,
            scope="WebAPI",
            client_auth="post",
            timeout_seconds=TIMEOUT_SECONDS,
            default_lifetime_seconds=3600,
            secret=SECRET,
        )
        with pytest.raises(TokenUnavailable) as caught:
            await TokenClient(session, credentials).fetch()

    assert caught.value.detail == f"the token endpoint {reason}"
