"""WebSocket over the HTTP/1.1 upgrade (RFC 6455) for ASGI apps, with aiohttp's client."""

from __future__ import annotations

import asyncio
import sys

import aiohttp
import pytest
from asgi_apps import echo_websocket
from rawhttp import exchange

pytest.importorskip("wsproto", reason="wsproto is the 'asgi' extra (and in the test extra)")

WS_HEAD = (b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
NEXT = b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n"  # pipelined after WS_HEAD


def url(server, path="/ws") -> str:
    return f"http://127.0.0.1:{server.port}{path}"


@pytest.mark.both_loops
async def test_echo_text_and_bytes(start_server):
    server = await start_server(echo_websocket)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url(server)) as ws:
            await ws.send_str("hello ✓")
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT and msg.data == "hello ✓"
            await ws.send_bytes(b"\x00\x01binary")
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.BINARY and msg.data == b"\x00\x01binary"
            big = "x" * 300_000  # several frames' worth, and more than the transport buffers
            await ws.send_str(big)
            assert (await ws.receive()).data == big
            # aiohttp answers our pings itself; ping it and expect no error
            await ws.ping()


async def test_websocket_scope(start_server):
    seen = {}

    async def app(scope, receive, send):
        if scope["type"] != "websocket":
            return
        seen.update(scope)
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close"})

    server = await start_server(app)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url(server, "/a%20b?x=1")) as ws:
            await ws.receive()
    assert seen["type"] == "websocket" and seen["scheme"] == "ws"
    assert seen["path"] == "/a b" and seen["raw_path"] == b"/a%20b"
    assert seen["query_string"] == b"x=1" and seen["http_version"] == "1.1"
    assert seen["subprotocols"] == [] and seen["asgi"]["version"] == "3.0"
    assert dict(seen["headers"])[b"upgrade"] == b"websocket"
    assert seen["client"][0] == "127.0.0.1" and seen["server"][1] == server.port


async def test_close_codes_both_ways(start_server):
    disconnects = asyncio.Queue()

    async def app(scope, receive, send):
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        if message["type"] == "websocket.receive" and message["text"] == "close me":
            await send({"type": "websocket.close", "code": 4002, "reason": "as asked"})
            return
        disconnects.put_nowait(message)

    server = await start_server(app)
    async with aiohttp.ClientSession() as session:
        # Client closes: the app gets the code.
        ws = await session.ws_connect(url(server))
        await ws.close(code=4001, message=b"client done")
        message = await asyncio.wait_for(disconnects.get(), 5)
        assert message["type"] == "websocket.disconnect" and message["code"] == 4001
        # App closes: the client gets the code and reason.
        async with session.ws_connect(url(server)) as ws:
            await ws.send_str("close me")
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert msg.data == 4002 and msg.extra == "as asked"


async def test_oversize_message_closes_with_1009(start_server):
    disconnect = asyncio.Future()

    async def app(scope, receive, send):
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                disconnect.set_result(message)
                return
            await send({"type": "websocket.send", "text": "ok"})

    server = await start_server(app, websocket_max_size=1000)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url(server)) as ws:
            await ws.send_str("a" * 1000)
            assert (await ws.receive()).data == "ok"
            await ws.send_str("a" * 1001)
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1009
    assert (await asyncio.wait_for(disconnect, 5))["code"] == 1009


async def test_max_message_size_0_is_no_limit(start_server):
    # gunicorn's websocket_max_message_size = 0: no limit, not "refuse every message".
    server = await start_server(echo_websocket, websocket_max_message_size=0)
    big = b"x" * (16 * 1024 * 1024 + 1)  # one byte over the default limit
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url(server), max_msg_size=0) as ws:
            await ws.send_bytes(big)
            msg = await asyncio.wait_for(ws.receive(), 20)
            assert msg.type == aiohttp.WSMsgType.BINARY and len(msg.data) == len(big)


async def test_server_shutdown_sends_1001(start_server):
    disconnect = asyncio.Future()

    async def app(scope, receive, send):
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        disconnect.set_result(await receive())

    server = await start_server(app)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url(server)) as ws:
            shutdown = asyncio.create_task(server.shutdown(timeout=5))
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1001
        await asyncio.wait_for(shutdown, 5)
    assert (await disconnect)["code"] == 1001
    assert not server.connections


async def test_subprotocol_negotiation_and_headers(start_server):
    async def app(scope, receive, send):
        if scope["type"] != "websocket":
            return
        await receive()
        chosen = "chat.v2" if "chat.v2" in scope["subprotocols"] else None
        await send({"type": "websocket.accept", "subprotocol": chosen,
                    "headers": [(b"x-extra", b"yes")]})
        await send({"type": "websocket.send", "text": ",".join(scope["subprotocols"])})
        await send({"type": "websocket.close"})

    server = await start_server(app)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url(server), protocols=("chat.v1", "chat.v2")) as ws:
            assert ws.protocol == "chat.v2"
            assert ws._response.headers["x-extra"] == "yes"
            assert (await ws.receive()).data == "chat.v1,chat.v2"


async def test_close_before_accept_is_403(start_server):
    async def app(scope, receive, send):
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.close"})

    server = await start_server(app)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(url(server))
        assert info.value.status == 403


async def test_app_error_before_accept_is_500_and_after_is_1011(start_server):
    async def app(scope, receive, send):
        if scope["type"] != "websocket":
            return
        await receive()
        if scope["path"] == "/after":
            await send({"type": "websocket.accept"})
        raise ValueError("boom")

    server = await start_server(app)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(url(server, "/before"))
        assert info.value.status == 500
        async with session.ws_connect(url(server, "/after")) as ws:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1011


async def test_websocket_counts_against_worker_connections(start_server):
    server = await start_server(echo_websocket, worker_connections=1)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url(server)) as ws:
            assert len(server.connections) == 1
            await ws.send_str("x")
            assert (await ws.receive()).data == "x"
            assert not server._accepting


async def test_without_wsproto_an_upgrade_is_answered_as_http(start_server, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "unicorn_aio.asgi.websocket", None)  # import fails

    async def app(scope, receive, send):
        assert scope["type"] in ("http", "lifespan")
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 426, "headers": []})
            await send({"type": "http.response.body", "body": b"upgrade unavailable"})

    server = await start_server(app, lifespan="off")
    for _ in range(2):
        # An upgrade not performed is an ordinary request (RFC 9110 7.8): the connection goes on,
        # as gunicorn's does, and the request after it is answered.
        first, second = await exchange(server.port, WS_HEAD + NEXT)
        assert first.status == 426 and first.headers.get("connection") != "close"
        assert second.status == 426
    warnings = [r for r in caplog.records if "wsproto is not installed" in r.getMessage()]
    assert len(warnings) == 1


async def test_wsgi_apps_keep_answering_upgrades_as_http(start_server):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"plain " + environ["HTTP_UPGRADE"].encode()]

    server = await start_server(app)
    first, second = await exchange(server.port, WS_HEAD + NEXT.replace(b"Host", b"Upgrade: x\r\nHost"))
    assert first.status == 200 and first.body == b"plain websocket"
    assert first.headers.get("connection") != "close"
    assert second.status == 200 and second.body == b"plain x"


@pytest.mark.both_loops
async def test_wss_over_tls(start_server, tmp_path):
    trustme = pytest.importorskip("trustme")
    import ssl
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    schemes = []

    async def app(scope, receive, send):
        if scope["type"] == "websocket":
            schemes.append(scope["scheme"])
        await echo_websocket(scope, receive, send)

    server = await start_server(app, certfile=str(tmp_path / "server.pem"))
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"wss://127.0.0.1:{server.port}/ws", ssl=ctx) as ws:
            await ws.send_str("over tls")
            assert (await ws.receive()).data == "over tls"
    assert schemes == ["wss"]


async def test_an_open_websocket_leaves_the_timeouts_running(start_server):
    # The server's 1 s sweep read an attribute only HTTP connections had: one open WebSocket
    # stopped it, and with it every header, keep-alive and body timeout of the worker.
    from rawhttp import open_raw, read_responses

    server = await start_server(echo_websocket, header_timeout=2, lifespan="off")
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url(server)) as ws:
            await asyncio.sleep(1.5)  # a sweep or two with the WebSocket among the connections
            reader, writer = await open_raw(server.port)
            try:
                writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n")  # half a head, then silence
                [resp] = await read_responses(reader, 1, timeout=6)
            finally:
                writer.close()
            assert resp.status == 408
            await ws.send_str("still here")
            assert (await ws.receive()).data == "still here"


async def test_a_ping_after_our_close_frame_is_not_answered(start_server, caplog):
    # RFC 6455 lets the client ping after our close frame; answering it raised in wsproto and
    # aborted the connection ("Fatal error on transport").
    async def app(scope, receive, send):
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 4001})
            while (await receive())["type"] != "websocket.disconnect":
                pass
        elif scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.body", "body": b""})

    server = await start_server(app, lifespan="off")
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url(server), autoclose=False) as ws:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4001
            await ws.ping(b"hello")
            await ws.close(code=4002)
    await asyncio.sleep(0.2)
    assert "Fatal error" not in caplog.text and "LocalProtocolError" not in caplog.text


async def test_accepting_a_subprotocol_the_client_did_not_offer_is_a_500(start_server):
    async def app(scope, receive, send):
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept", "subprotocol": "not-offered"})
        elif scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.body", "body": b""})

    server = await start_server(app, lifespan="off")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(url(server), protocols=("chat",))
    assert info.value.status == 500
