"""Request lines llhttp refuses and gunicorn serves (http/requestline.py): an extension method,
HTTP/1.x past 1.1, PRI as an ordinary method, absolute-form with any scheme or authority.  Each
reaches the app with its real method, target and version; framing and what follows on the
connection are unchanged, and what neither serves is still refused before the app."""

from __future__ import annotations

import asyncio
import json

import pytest
from apps import make_app
from rawhttp import exchange, open_raw, read_responses

from unicorn_aio.http.requestline import stand_in


def env_of(resp) -> dict:
    assert resp.status == 200, resp
    return json.loads(resp.body)


@pytest.mark.parametrize("line, method, path, protocol", [
    (b"FROB /env HTTP/1.1", "FROB", "/env", "HTTP/1.1"),            # RFC 9110 9.1: any token
    (b"-BLARGH /env HTTP/1.1", "-BLARGH", "/env", "HTTP/1.1"),      # gunicorn's own corpus
    (b"VERYLONGMETHODNAME12 /env HTTP/1.1", "VERYLONGMETHODNAME12", "/env", "HTTP/1.1"),
    (b"PRI /env HTTP/1.1", "PRI", "/env", "HTTP/1.1"),              # not the HTTP/2 preface
    (b"GET /env HTTP/1.2", "GET", "/env", "HTTP/1.1"),              # RFC 9110 2.5
    (b"GET a-b+c.d://t/env HTTP/1.1", "GET", "/env", "HTTP/1.1"),    # RFC 3986 3.1 scheme
    (b"GET http://t\\^/env HTTP/1.1", "GET", "/env", "HTTP/1.1"),
])
async def test_served_with_its_real_request_line(start_server, line, method, path, protocol):
    server = await start_server(make_app())
    [resp] = await exchange(server.port, line + b"\r\nHost: t\r\nConnection: close\r\n\r\n")
    env = env_of(resp)
    assert (env["REQUEST_METHOD"], env["PATH_INFO"], env["SERVER_PROTOCOL"]) == \
        (method, path, protocol)
    assert env["RAW_URI"] == line.split(b" ")[1].decode()


async def test_body_framing_and_pipelining_hold(start_server):
    # The stand-in line has the same length: the body, and the requests after it, are read
    # where they are.
    app = make_app()
    server = await start_server(app)
    data = (b"FROB /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n"
            b"BREW /echo HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 4\r\n\r\nwxyz"
            b"GET /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    resps = await exchange(server.port, data)
    assert [(r.status, r.body) for r in resps] == [(200, b"abc"), (200, b"wxyz"), (200, b"ok")]
    assert app.rec.calls == 3


async def test_line_split_across_reads(start_server):
    server = await start_server(make_app())
    reader, writer = await open_raw(server.port)
    try:
        for part in (b"FR", b"OB /e", b"nv HTTP/1.", b"2\r", b"\nHost: t\r\n\r\n"):
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.02)
        [resp] = await read_responses(reader, 1)
        env = env_of(resp)
        assert (env["REQUEST_METHOD"], env["SERVER_PROTOCOL"]) == ("FROB", "HTTP/1.1")
    finally:
        writer.close()


@pytest.mark.parametrize("raw, status", [
    (b"frob /env HTTP/1.1\r\nHost: t\r\n\r\n", 400),         # gunicorn: lower case refused
    (b"FR#B /env HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    (b"FROB /env HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n", 400),  # the line was not the fault
    # refused as a method llhttp does not know (gunicorn: 400; both refuse)
    (b"FROB /env HTTP/2.1\r\nHost: t\r\n\r\n", 501),
    (b"GET =http://t/x HTTP/1.1\r\nHost: t\r\n\r\n", 400),    # no form of RFC 9112 3.2
    (b"FROB /env HTTP/1.1\nHost: t\n\n", 501),                # bare LF: refused, not held
    # gunicorn: not three parts, so not a request line (400), whatever the first word is
    (b"OPTIONS* HTTP/1.1\r\nHost: t\r\n\r\n", 400),
    (b"FROB/env HTTP/1.1\r\nHost: t\r\n\r\n", 400),
])
async def test_still_refused_before_the_app(start_server, raw, status):
    app = make_app()
    server = await start_server(app, header_timeout=3)
    resps = await exchange(server.port, raw)
    assert [r.status for r in resps] == [status]
    assert app.rec.calls == 0


def test_stand_in_keeps_the_length():
    for line in (b"FROB /p HTTP/1.1", b"GET ftp-x://h/p?q HTTP/1.7", b"PRI * HTTP/1.0"):
        stand, real = stand_in(line)
        assert len(stand) == len(line)
        assert real[0] == line.split(b" ")[0]
    assert stand_in(b"GET /p HTTP/1.1") is None  # llhttp takes it: nothing to stand in for


@pytest.mark.parametrize("settings, method", [
    ({"permit_unconventional_http_method": True}, "get"),
    ({"permit_unconventional_http_method": True, "casefold_http_method": True}, "GET"),
    ({"casefold_http_method": True}, None),  # as gunicorn's code: lower case refused first
])
async def test_permit_unconventional_http_method(start_server, settings, method):
    # gunicorn's escape hatch: any method token reaches the app (upper-cased with casefold).
    app = make_app()
    server = await start_server(app, **settings)
    [resp] = await exchange(server.port, b"get /env HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    if method is None:
        assert resp.status == 400 and app.rec.calls == 0
    else:
        assert env_of(resp)["REQUEST_METHOD"] == method
    [resp] = await exchange(server.port, b"Fr#b /env HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    if method is None:
        assert resp.status == 400
    else:
        assert env_of(resp)["REQUEST_METHOD"] == ("Fr#b" if method == "get" else "FR#B")
