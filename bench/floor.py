"""The floor: the barest Python proxy the gateway could be, to measure ccgate against.

Starlette + uvicorn (uvloop, httptools) + one pooled aiohttp client session, one process, no
rules: a POST body goes upstream as it is with the client's headers, and the answer comes back
whole (JSON) or chunk by chunk as it arrives (event streams).  It runs exactly as `ccgate serve`
runs its app, so the ratio ccgate/floor is the price of ccgate's rules and nothing else.

    python bench/floor.py --upstream http://127.0.0.1:9100 --port 9200
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

HOP_BY_HOP = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "content-length", "te", "trailer",
                        "upgrade", "proxy-authorization", "proxy-connection"})


def create_app(upstream: str) -> Starlette:
    """A Starlette app that relays every POST to `upstream` over one pooled session."""
    sessions: list[aiohttp.ClientSession] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
        sessions.append(aiohttp.ClientSession(connector=connector, skip_auto_headers=("User-Agent",)))
        yield
        await sessions[0].close()

    async def relay(request: Request) -> Response:
        headers = {name: value for name, value in request.headers.items() if name not in HOP_BY_HOP}
        url = upstream + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        upstream_response = await sessions[0].post(url, data=await request.body(), headers=headers)
        content_type = upstream_response.headers.get("content-type", "application/json")
        if content_type.startswith("text/event-stream"):
            return StreamingResponse(_chunks(upstream_response), upstream_response.status, media_type=content_type)
        async with upstream_response:
            body = await upstream_response.read()
        return Response(body, upstream_response.status, media_type=content_type)

    return Starlette(routes=[Route("/{path:path}", relay, methods=["POST"])], lifespan=lifespan)


async def _chunks(upstream_response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """Each upstream chunk as soon as it arrives; the upstream request ends with the relay."""
    async with upstream_response:
        async for chunk in upstream_response.content.iter_any():
            yield chunk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="base URL of the upstream, e.g. http://127.0.0.1:9100")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    args = parser.parse_args()
    uvicorn.run(create_app(args.upstream.rstrip("/")), host=args.host, port=args.port, loop="uvloop",
                http="httptools", lifespan="on", log_level="warning", access_log=False, server_header=False)


if __name__ == "__main__":
    main()
