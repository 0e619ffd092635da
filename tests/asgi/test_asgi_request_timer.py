"""--asgi-request-timeout's timer ends with its request: a request answered in time leaves no
timer behind to log a timeout later (the handler cancels it as the request's task ends)."""

from __future__ import annotations

import asyncio

import pytest
from rawhttp import exchange

pytestmark = pytest.mark.timeout(30)


async def test_a_request_answered_in_time_is_never_reported(start_server, tmp_path):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    errors = tmp_path / "error.log"
    server = await start_server(app, lifespan="off", asgi_request_timeout=0.3,
                                errorlog=str(errors))
    for _ in range(3):
        [resp] = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: t\r\n"
                                b"Connection: close\r\n\r\n")
        assert resp.status == 200 and resp.body == b"ok"
    await asyncio.sleep(0.8)  # past the limit of every request above
    assert "ASGI request timeout" not in errors.read_text()


async def test_a_request_past_the_limit_still_is(start_server, tmp_path):
    async def app(scope, receive, send):
        await asyncio.sleep(5)

    errors = tmp_path / "error.log"
    server = await start_server(app, lifespan="off", asgi_request_timeout=0.3,
                                errorlog=str(errors))
    [resp] = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert resp.status == 500
    assert "ASGI request timeout: GET / from 127.0.0.1" in errors.read_text()
