"""The reference: about the least an aiohttp reverse proxy with a Bearer token can do.

A yardstick for what the real proxy's features cost, never product code: aiohttp's low-level
``web.Server``, one ``ClientSession`` with a keep-alive pool, one cached (static) token, one
pass over the headers each way, small bodies read whole and answered as one ``Response``,
large ones streamed. No log, no metrics, no resend after a 401, no problem+json.

    python -m bench.minimal_proxy --port P --upstream URL --token T [--ca-file PEM]
"""

from __future__ import annotations

import argparse
import asyncio
import ssl

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, MultiMapping
from yarl import URL

# Hop-by-hop headers, and the two this proxy sets itself (Host comes from the URL).
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding"}
    | {"upgrade", "host", "authorization"}
)
SMALL = 1 << 20
POOL_SIZE = 100  # the real proxy's upstream pool, for a like-for-like comparison


def end_to_end(headers: MultiMapping[str]) -> CIMultiDict[str]:
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in HOP_BY_HOP)


async def serve(args: argparse.Namespace) -> None:
    tls: ssl.SSLContext | bool = (
        ssl.create_default_context(cafile=args.ca_file) if args.ca_file else True
    )
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=POOL_SIZE, ssl=tls),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    origin, authorization = args.upstream.rstrip("/"), f"Bearer {args.token}"

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        headers = end_to_end(request.headers)
        headers["Authorization"] = authorization
        length = request.content_length
        body = None
        if request.body_exists:
            small = length is not None and length <= SMALL
            body = await request.read() if small else request.content.iter_any()
        async with session.request(
            request.method, URL(origin + request.raw_path, encoded=True), headers=headers,
            data=body, allow_redirects=False, skip_auto_headers=("User-Agent", "Accept"),
        ) as upstream:  # fmt: skip
            answer = end_to_end(upstream.headers)
            if upstream.content_length is not None and upstream.content_length <= SMALL:
                return web.Response(
                    status=upstream.status, headers=answer, body=await upstream.read()
                )
            response = web.StreamResponse(status=upstream.status, headers=answer)
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    runner = web.ServerRunner(web.Server(handle), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port, backlog=4096).start()
    await asyncio.Event().wait()  # until the harness terminates the process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--ca-file")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
