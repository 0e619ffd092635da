"""ASGI apps for the tests, in-process (test_asgi, test_websocket, test_lifespan) and in real
worker processes (``python -m unicorn_aio asgi_apps:longpoll``)."""

from __future__ import annotations

import asyncio
import json
import os


async def longpoll(scope, receive, send):
    """Every request is held ~1 s (a long-poll waiting for its event), then answered."""
    if scope["type"] != "http":
        return
    if scope["path"] != "/":
        await asyncio.sleep(float(os.environ.get("LONGPOLL_SECONDS", "1")))
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"done"})


async def failing_startup(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
        return
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": b"should never serve"})


async def endless_startup(scope, receive, send):
    """Lifespan startup that never completes (waits on a database that never answers)."""
    if scope["type"] == "lifespan":
        await receive()
        await asyncio.Event().wait()


async def echo_websocket(scope, receive, send):
    """WebSocket echo; plain HTTP answers 200 so that a worker can be probed for readiness."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": json.dumps(scope["path"]).encode()})
        return
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message.get("text"),
                    "bytes": message.get("bytes")})


def starlette_app():
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.routing import Route, WebSocketRoute

    async def hello(request):
        return JSONResponse({"path": request.url.path, "query": request.query_params.get("q"),
                             "client": request.client.host, "started": request.state.started})

    async def upload(request):
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
        return PlainTextResponse(str(total))

    async def stream(request):
        async def gen():
            for i in range(3):
                yield f"part {i}\n"
        return StreamingResponse(gen(), media_type="text/plain")

    async def ws(websocket):
        await websocket.accept()
        text = await websocket.receive_text()
        await websocket.send_text(text.upper())
        await websocket.close(code=4000)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        yield {"started": True}

    return Starlette(routes=[Route("/hello", hello), Route("/upload", upload, methods=["POST"]),
                             Route("/stream", stream), WebSocketRoute("/ws", ws)],
                     lifespan=lifespan)
