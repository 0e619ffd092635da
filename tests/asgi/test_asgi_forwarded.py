"""forwarder_headers for ASGI apps: a trusted proxy's SCRIPT_NAME header becomes
scope["root_path"] (with "path" including it, as the ASGI spec and uvicorn --root-path have it);
no header sets the path (gunicorn 27: a PATH_INFO header is only a header); from other peers
those headers are what header_map makes of them, as for WSGI (test_forwarded.py).  HTTP and
WebSocket scopes alike."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from asgi_apps import starlette_app
from rawhttp import exchange

from unicorn_aio.server import Server

pytestmark = [pytest.mark.both_loops, pytest.mark.timeout(30)]


async def echo_scope(scope, receive, send):
    """Answers (HTTP) or sends (WebSocket) what the scope says of the request's path."""
    if scope["type"] not in ("http", "websocket"):
        return  # lifespan: --lifespan auto goes on without it
    seen = json.dumps({"type": scope["type"], "root_path": scope["root_path"],
                       "path": scope["path"], "raw_path": scope["raw_path"].decode("latin-1"),
                       "query_string": scope["query_string"].decode("latin-1"),
                       "scheme": scope["scheme"],
                       "headers": [name.decode("latin-1") for name, _ in scope["headers"]]})
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": seen.encode()})
        return
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": seen})
    await send({"type": "websocket.close"})


async def scope_of(port: int, target: str, headers: dict | None = None,
                   connector=None, host: str = "127.0.0.1") -> dict:
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(f"http://{host}:{port}{target}", headers=headers or {}) as resp:
            assert resp.status == 200, await resp.text()
            return json.loads(await resp.read())


async def test_script_name_from_a_trusted_proxy_sets_root_path(start_server):
    # nginx: location /app/ { proxy_set_header SCRIPT_NAME /app; proxy_pass ...; }
    server = await start_server(echo_scope)  # default forwarded_allow_ips: 127.0.0.1,::1
    port = server.port
    seen = await scope_of(port, "/items")
    assert (seen["root_path"], seen["path"], seen["raw_path"]) == ("", "/items", "/items")

    # the proxy passes the whole path: path already includes root_path
    seen = await scope_of(port, "/app/items?q=1", {"SCRIPT_NAME": "/app"})
    assert (seen["root_path"], seen["path"], seen["raw_path"]) == ("/app", "/app/items",
                                                                    "/app/items")
    assert seen["query_string"] == "q=1"
    assert "script_name" in seen["headers"]  # a trusted proxy's header stays for the app to read

    # the proxy stripped the prefix (proxy_pass http://up/;): it is put back, as uvicorn does
    seen = await scope_of(port, "/items", {"SCRIPT_NAME": "/app"})
    assert (seen["root_path"], seen["path"], seen["raw_path"]) == ("/app", "/app/items",
                                                                    "/app/items")
    seen = await scope_of(port, "/application", {"SCRIPT_NAME": "/app"})  # not under /app
    assert seen["path"] == "/app/application"
    seen = await scope_of(port, "/app", {"SCRIPT_NAME": "/app"})
    assert seen["path"] == "/app"

    # a trailing slash mounts at the same place; "/" is the root
    seen = await scope_of(port, "/app/items", {"SCRIPT_NAME": "/app/"})
    assert (seen["root_path"], seen["path"]) == ("/app", "/app/items")
    seen = await scope_of(port, "/items", {"SCRIPT_NAME": "/"})
    assert (seen["root_path"], seen["path"]) == ("", "/items")

    # decoded like path; raw_path stays percent-encoded
    seen = await scope_of(port, "/a%20b", {"SCRIPT_NAME": "/my app"})
    assert (seen["root_path"], seen["path"], seen["raw_path"]) == ("/my app", "/my app/a b",
                                                                    "/my%20app/a%20b")


async def test_path_info_from_a_trusted_proxy_is_only_a_header(start_server):
    # "GET /public" with "PATH_INFO: /admin" is /public, whoever sends it (gunicorn 27).
    server = await start_server(echo_scope)
    seen = await scope_of(server.port, "/public?q=1", {"PATH_INFO": "/admin"})
    assert (seen["root_path"], seen["path"], seen["raw_path"]) == ("", "/public", "/public")
    assert seen["query_string"] == "q=1" and "path_info" in seen["headers"]
    seen = await scope_of(server.port, "/app/x", {"SCRIPT_NAME": "/app", "PATH_INFO": "/y"})
    assert (seen["root_path"], seen["path"], seen["raw_path"]) == ("/app", "/app/x", "/app/x")


async def test_forwarder_headers_from_an_untrusted_peer_are_dropped(start_server):
    server = await start_server(echo_scope, forwarded_allow_ips="10.0.0.1")
    seen = await scope_of(server.port, "/items", {"SCRIPT_NAME": "/evil", "PATH_INFO": "/evil",
                                                  "X-Custom": "1"})
    assert (seen["root_path"], seen["path"], seen["raw_path"]) == ("", "/items", "/items")
    assert "script_name" not in seen["headers"] and "path_info" not in seen["headers"]
    assert "x-custom" in seen["headers"]
    # header_map refuse: refused, as any other underscore name, as for WSGI (gunicorn 27)
    server = await start_server(echo_scope, forwarded_allow_ips="10.0.0.1", header_map="refuse")
    [resp] = await exchange(server.port, b"GET /items HTTP/1.1\r\nHost: t\r\n"
                            b"SCRIPT_NAME: /evil\r\nConnection: close\r\n\r\n")
    assert resp.status == 400
    # header_map dangerous: an ordinary header, as any other underscore name would be
    server = await start_server(echo_scope, forwarded_allow_ips="10.0.0.1",
                                header_map="dangerous")
    seen = await scope_of(server.port, "/items", {"SCRIPT_NAME": "/evil"})
    assert (seen["root_path"], seen["path"]) == ("", "/items")
    assert "script_name" in seen["headers"]


async def test_other_forwarder_headers_reach_the_app_from_a_trusted_proxy_only(start_server):
    trusted = await start_server(echo_scope, forwarder_headers="REMOTE_USER")
    untrusted = await start_server(echo_scope, forwarder_headers="REMOTE_USER",
                                   forwarded_allow_ips="10.0.0.1")
    headers = {"REMOTE_USER": "alice", "SCRIPT_NAME": "/app"}
    seen = await scope_of(trusted.port, "/items", headers)
    assert "remote_user" in seen["headers"]
    # SCRIPT_NAME is not listed in forwarder_headers here: header_map drops it from anyone
    assert seen["root_path"] == "" and "script_name" not in seen["headers"]
    seen = await scope_of(untrusted.port, "/items", headers)
    assert "remote_user" not in seen["headers"]


async def test_script_name_variable_and_forwarded_header(start_server, monkeypatch):
    monkeypatch.setenv("SCRIPT_NAME", "/base")
    server = await start_server(echo_scope)
    untrusted = await start_server(echo_scope, forwarded_allow_ips="10.0.0.1")
    seen = await scope_of(server.port, "/x")
    assert (seen["root_path"], seen["path"], seen["raw_path"]) == ("/base", "/base/x", "/base/x")
    seen = await scope_of(server.port, "/base/x")
    assert (seen["root_path"], seen["path"]) == ("/base", "/base/x")
    # a trusted proxy's header wins over the variable, as for WSGI's SCRIPT_NAME
    seen = await scope_of(server.port, "/x", {"SCRIPT_NAME": "/app"})
    assert (seen["root_path"], seen["path"]) == ("/app", "/app/x")
    seen = await scope_of(server.port, "/y", {"PATH_INFO": "/x"})
    assert (seen["root_path"], seen["path"]) == ("/base", "/base/y")
    seen = await scope_of(untrusted.port, "/x", {"SCRIPT_NAME": "/app"})
    assert (seen["root_path"], seen["path"]) == ("/base", "/base/x")


async def websocket_scope(port: int, target: str, headers: dict) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"http://127.0.0.1:{port}{target}",
                                      headers=headers) as ws:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            return json.loads(msg.data)


async def test_websocket_scope_follows_the_same_rules(start_server):
    pytest.importorskip("wsproto")
    server = await start_server(echo_scope)
    seen = await websocket_scope(server.port, "/ws", {"SCRIPT_NAME": "/app"})
    assert seen["type"] == "websocket"
    assert (seen["root_path"], seen["path"], seen["raw_path"]) == ("/app", "/app/ws", "/app/ws")
    seen = await websocket_scope(server.port, "/elsewhere", {"PATH_INFO": "/ws"})
    assert (seen["root_path"], seen["path"]) == ("", "/elsewhere")
    untrusted = await start_server(echo_scope, forwarded_allow_ips="10.0.0.1")
    seen = await websocket_scope(untrusted.port, "/ws", {"SCRIPT_NAME": "/evil"})
    assert (seen["root_path"], seen["path"]) == ("", "/ws")
    assert "script_name" not in seen["headers"]


async def test_websocket_scheme_from_a_trusted_proxy(start_server):
    pytest.importorskip("wsproto")
    server = await start_server(echo_scope)
    seen = await websocket_scope(server.port, "/ws", {"X-Forwarded-Proto": "https"})
    assert seen["scheme"] == "wss"
    # headers that disagree are refused before the upgrade, as for any request (gunicorn: 400)
    [resp] = await exchange(server.port, b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
                            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                            b"X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n\r\n")
    assert resp.status == 400 and b"disagree" in resp.body


async def test_starlette_behind_a_proxy_that_strips_the_prefix(start_server):
    server = await start_server(starlette_app())
    for target in ("/hello", "/app/hello"):  # prefix stripped by the proxy, or passed on
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{server.port}{target}",
                                   headers={"SCRIPT_NAME": "/app"}) as resp:
                assert resp.status == 200, target
                assert (await resp.json())["path"] == "/app/hello"


async def test_a_unix_socket_peer_is_a_trusted_proxy(tmp_path):
    # nginx in front on a unix socket (docs/nginx.conf): the peer has no address, and is trusted
    # as in gunicorn and for WSGI apps
    sock = tmp_path / "app.sock"
    server = Server(echo_scope, bind=f"unix:{sock}", forwarded_allow_ips="10.0.0.1")
    task = asyncio.create_task(server.serve())
    try:
        await asyncio.wait_for(server.ready.wait(), 5)
        seen = await scope_of(80, "/items", {"SCRIPT_NAME": "/app", "X-Forwarded-Proto": "https"},
                              connector=aiohttp.UnixConnector(path=str(sock)), host="localhost")
        assert (seen["root_path"], seen["path"]) == ("/app", "/app/items")
        assert seen["scheme"] == "https"
    finally:
        await asyncio.wait_for(server.shutdown(timeout=2), 10)
        await asyncio.wait_for(task, 5)
