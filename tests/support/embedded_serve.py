"""An asyncio program that embeds unicorn_aio the plain way, for the Ctrl-C tests:

    python embedded_serve.py PORT asyncio|uvloop wsgi|asgi

``asyncio.run(main())`` where main awaits ``unicorn_aio.serve``; a SIGINT makes asyncio.run
cancel main. /?N sleeps N seconds before answering.  Prints "serving" once it listens.
"""

from __future__ import annotations

import asyncio
import sys
import time

import unicorn_aio


def wsgi_app(environ, start_response):
    time.sleep(float(environ["QUERY_STRING"] or 0))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"slept"]


async def asgi_app(scope, receive, send):
    if scope["type"] != "http":
        return
    await asyncio.sleep(float(scope["query_string"] or 0))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"slept"})


async def main(port: int, app) -> None:
    await unicorn_aio.serve(app, bind=f"127.0.0.1:{port}", graceful_timeout=10)


if __name__ == "__main__":
    port, loop_kind, interface = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    coro = main(port, wsgi_app if interface == "wsgi" else asgi_app)
    if loop_kind == "uvloop":
        import uvloop
        uvloop.run(coro)
    else:
        asyncio.run(coro)
