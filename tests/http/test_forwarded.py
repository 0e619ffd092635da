"""What a trusted proxy may say (http/forwarded.py): secure_scheme_headers and forwarder_headers
from forwarded_allow_ips, as gunicorn decides them, for WSGI and ASGI alike."""

from __future__ import annotations

import json

import aiohttp
import pytest
from apps import make_app
from rawhttp import exchange

from unicorn_aio.http.forwarded import AddressList

pytestmark = [pytest.mark.both_loops, pytest.mark.timeout(30)]


def test_address_list():
    allowed = AddressList(["127.0.0.1", "10.0.0.0/8", "2001:db8::/32"])
    assert "127.0.0.1" in allowed and "10.20.30.40" in allowed and "2001:db8::5" in allowed
    assert "127.0.0.2" not in allowed and "11.0.0.1" not in allowed and "::1" not in allowed
    assert "fe80::1%eth0" not in allowed and "not an address" not in allowed
    assert "" in allowed and None in allowed  # a unix-socket peer, as gunicorn allows
    assert "1.2.3.4" in AddressList(["*"]) and "1.2.3.4" not in AddressList(None)


async def scheme(port: int, headers: dict) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/env", headers=headers) as resp:
            assert resp.status == 200
            return json.loads(await resp.read())["wsgi.url_scheme"]


async def test_trusted_proxy_is_honoured(start_server):
    server = await start_server(make_app())  # default forwarded_allow_ips: 127.0.0.1,::1
    assert await scheme(server.port, {}) == "http"
    assert await scheme(server.port, {"X-Forwarded-Proto": "https"}) == "https"
    assert await scheme(server.port, {"X-Forwarded-Ssl": "on"}) == "https"
    assert await scheme(server.port, {"X-Forwarded-Protocol": "ssl"}) == "https"
    # Any other value means http; values compare exactly, as in gunicorn.
    assert await scheme(server.port, {"X-Forwarded-Proto": "http"}) == "http"
    assert await scheme(server.port, {"X-Forwarded-Proto": "HTTPS"}) == "http"


async def test_untrusted_proxy_is_ignored(start_server):
    server = await start_server(make_app(), forwarded_allow_ips="10.0.0.1")
    assert await scheme(server.port, {"X-Forwarded-Proto": "https"}) == "http"


@pytest.mark.parametrize("allow", ["*", "127.0.0.0/8", "10.0.0.1,127.0.0.1"])
async def test_star_and_networks_trust(start_server, allow):
    server = await start_server(make_app(), forwarded_allow_ips=allow)
    assert await scheme(server.port, {"X-Forwarded-Proto": "https"}) == "https"


async def test_custom_secure_scheme_headers(start_server):
    server = await start_server(make_app(), secure_scheme_headers={"X-Scheme": "https"})
    assert await scheme(server.port, {"X-Scheme": "https"}) == "https"
    assert await scheme(server.port, {"X-Forwarded-Proto": "https"}) == "http"


async def test_disagreeing_headers_are_refused(start_server):
    server = await start_server(make_app())
    [resp] = await exchange(server.port, b"GET /env HTTP/1.1\r\nHost: t\r\nX-Forwarded-Proto: https"
                            b"\r\nX-Forwarded-Ssl: off\r\nConnection: close\r\n\r\n")
    assert resp.status == 400 and b"disagree" in resp.body
    assert server.app.rec.calls == 0
    # the same value on repeated lines is one answer, not a conflict
    [resp] = await exchange(server.port, b"GET /env HTTP/1.1\r\nHost: t\r\nX-Forwarded-Proto: https"
                            b"\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n")
    assert json.loads(resp.body)["wsgi.url_scheme"] == "https"


async def test_proxy_protocol_client_is_who_must_be_trusted(start_server):
    # Behind a TCP proxy the headers come from the client the PROXY header names: trust is
    # decided for that client, not for the proxy's socket.
    server = await start_server(make_app(), proxy_protocol=True)
    header = b"PROXY TCP4 192.0.2.1 127.0.0.1 5000 80\r\n"
    [resp] = await exchange(server.port, header + b"GET /env HTTP/1.1\r\nHost: t\r\n"
                            b"X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n")
    env = json.loads(resp.body)
    assert env["REMOTE_ADDR"] == "192.0.2.1" and env["wsgi.url_scheme"] == "http"


async def environ(port: int, path: str, headers: dict) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}{path}", headers=headers) as resp:
            assert resp.status == 200
            return json.loads(await resp.read())


async def test_forwarder_headers_from_a_trusted_proxy_set_script_name(start_server):
    # nginx: proxy_set_header SCRIPT_NAME /app; for an app mounted under /app.  As in gunicorn
    # 27, the header stays a header too.
    server = await start_server(make_app())  # default forwarder_headers SCRIPT_NAME,PATH_INFO
    env = await environ(server.port, "/app/env", {"SCRIPT_NAME": "/app"})
    assert env["SCRIPT_NAME"] == "/app" and env["PATH_INFO"] == "/env"
    assert env["HTTP_SCRIPT_NAME"] == "/app"


@pytest.mark.parametrize("peer", ["trusted", "untrusted"])
async def test_no_header_replaces_the_path(start_server, peer):
    # gunicorn 27: a PATH_INFO header, even from a trusted peer, is HTTP_PATH_INFO and nothing
    # more; "GET /public" with "PATH_INFO: /admin" must not reach the app as /admin.
    allow = "127.0.0.1" if peer == "trusted" else "10.0.0.1"
    server = await start_server(make_app(), forwarded_allow_ips=allow)
    [resp] = await exchange(server.port, b"GET /env/public HTTP/1.1\r\nHost: t\r\n"
                            b"PATH_INFO: /env/admin\r\nConnection: close\r\n\r\n")
    env = json.loads(resp.body)
    assert env["PATH_INFO"] == "/env/public" and env["SCRIPT_NAME"] == ""
    assert env.get("HTTP_PATH_INFO") == ("/env/admin" if peer == "trusted" else None)


async def test_asgi_path_is_never_a_header(start_server):
    async def app(scope, receive, send):
        body = json.dumps({"path": scope["path"], "root_path": scope["root_path"]}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
    server = await start_server(app)
    [resp] = await exchange(server.port, b"GET /app/public HTTP/1.1\r\nHost: t\r\n"
                            b"PATH_INFO: /admin\r\nSCRIPT_NAME: /app\r\n"
                            b"Connection: close\r\n\r\n")
    assert json.loads(resp.body) == {"path": "/app/public", "root_path": "/app"}


async def test_forwarder_headers_from_anyone_else_are_dropped(start_server):
    server = await start_server(make_app(), forwarded_allow_ips="10.0.0.1")
    env = await environ(server.port, "/env", {"SCRIPT_NAME": "/evil", "PATH_INFO": "/evil"})
    assert env["SCRIPT_NAME"] == "" and env["PATH_INFO"] == "/env"
    assert "HTTP_SCRIPT_NAME" not in env and "HTTP_PATH_INFO" not in env


async def test_forwarder_headers_from_an_untrusted_peer_follow_header_map(start_server):
    # They are underscore names like any other there: refused under header_map refuse (gunicorn
    # 27 too), kept as HTTP_* under dangerous - but never as the mount point.
    server = await start_server(make_app(), forwarded_allow_ips="10.0.0.1", header_map="refuse")
    [resp] = await exchange(server.port, b"GET /env HTTP/1.1\r\nHost: t\r\nSCRIPT_NAME: /e\r\n"
                            b"Connection: close\r\n\r\n")
    assert resp.status == 400 and server.app.rec.calls == 0
    server = await start_server(make_app(), forwarded_allow_ips="10.0.0.1",
                                header_map="dangerous")
    env = await environ(server.port, "/env", {"SCRIPT_NAME": "/env"})
    assert env["SCRIPT_NAME"] == "" and env["PATH_INFO"] == "/env"
    assert env["HTTP_SCRIPT_NAME"] == "/env"


async def test_dash_form_from_a_client_behind_the_proxy_is_an_ordinary_header(start_server):
    # nginx passes a client's "Script-Name" through: it must not mount the app elsewhere.
    server = await start_server(make_app())
    env = await environ(server.port, "/env", {"Script-Name": "/evil", "Path-Info": "/evil"})
    assert env["SCRIPT_NAME"] == "" and env["PATH_INFO"] == "/env"
    assert env["HTTP_SCRIPT_NAME"] == "/evil" and env["HTTP_PATH_INFO"] == "/evil"
    # The proxy's own header still counts, beside a client's dash form.
    [resp] = await exchange(server.port, b"GET /app/env HTTP/1.1\r\nHost: t\r\n"
                            b"Script-Name: /evil\r\nSCRIPT_NAME: /app\r\nConnection: close\r\n\r\n")
    env = json.loads(resp.body)
    assert env["SCRIPT_NAME"] == "/app" and env["PATH_INFO"] == "/env"
    assert env["HTTP_SCRIPT_NAME"] == "/evil,/app"  # one list, in order, as gunicorn joins it


async def test_forwarder_headers_pass_header_map_refuse(start_server):
    # gunicorn 27: forwarder_headers lets the name past header_map; the app reads it as
    # HTTP_REMOTE_USER (its docs say REMOTE_USER: docs/gunicorn-differences.md)
    server = await start_server(make_app(), header_map="refuse", forwarder_headers="REMOTE_USER")
    env = await environ(server.port, "/env", {"REMOTE_USER": "alice"})
    assert env["HTTP_REMOTE_USER"] == "alice" and "REMOTE_USER" not in env
    [resp] = await exchange(server.port, b"GET /env HTTP/1.1\r\nHost: t\r\nX_Other: 1\r\n\r\n")
    assert resp.status == 400


def wsgi_scheme(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["wsgi.url_scheme"].encode()]


async def asgi_scheme(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": scope["scheme"].encode()})


@pytest.mark.parametrize("lines, status, body", [
    (b"X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n", 400, None),
    (b"X-Forwarded-Proto: https\r\nX-Forwarded-Proto: http\r\n", 400, None),
    (b"X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: on\r\n", 200, b"https"),
    (b"X-Forwarded-Proto: http\r\n", 200, b"http"),
    (b"X-Forwarded-Proto: https, https\r\n", 200, b"http"),  # one value, compared whole
])
async def test_wsgi_and_asgi_answer_the_same(start_server, lines, status, body):
    # gunicorn decides the scheme as it reads the head: headers that disagree are a 400
    # (InvalidSchemeHeaders) before any app runs, whichever interface would have served it.
    for app in (wsgi_scheme, asgi_scheme):
        server = await start_server(app)
        [resp] = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: t\r\n" + lines
                                + b"Connection: close\r\n\r\n")
        assert resp.status == status, (app.__name__, resp.body)
        if body is not None:
            assert resp.body == body, app.__name__
