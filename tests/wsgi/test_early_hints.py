"""``environ["wsgi.early_hints"]`` (gunicorn 27): a 103 Early Hints response before the app's,
on real sockets, from an app thread and inline on the loop, over HTTP/1.1 and HTTP/2."""

from __future__ import annotations

import h2.events
import pytest
from h2c import ENGINES, H2Client, H2Server, skip_unless_engine
from hints_app import app
from rawhttp import open_raw, read_all

pytestmark = pytest.mark.timeout(60)

MODES = [pytest.param({}, id="threads"), pytest.param({"dispatch": "inline"}, id="inline")]
HINT = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n"


async def raw(port: int, path: str, version: str = "1.1") -> bytes:
    reader, writer = await open_raw(port)
    try:
        writer.write(f"GET {path} HTTP/{version}\r\nHost: t\r\nConnection: close\r\n\r\n"
                     .encode())
        return await read_all(reader)
    finally:
        writer.close()


@pytest.mark.parametrize("mode", MODES)
async def test_hint_goes_before_the_response(start_server, mode):
    server = await start_server(app, **mode)
    data = await raw(server.port, "/")
    assert data.startswith(HINT + b"HTTP/1.1 200 OK\r\n"), data
    assert data.endswith(b"\r\n\r\nok")


@pytest.mark.parametrize("mode", MODES)
async def test_each_call_is_one_103(start_server, mode):
    server = await start_server(app, **mode)
    data = await raw(server.port, "/two")
    assert data.startswith(HINT + b"HTTP/1.1 103 Early Hints\r\n"
                           b"Link: </app.js>; rel=preload; as=script\r\n\r\n"
                           b"HTTP/1.1 200 OK\r\n"), data


@pytest.mark.parametrize("mode", MODES)
async def test_after_the_head_nothing(start_server, mode):
    server = await start_server(app, **mode)
    data = await raw(server.port, "/late")
    assert data.count(b"HTTP/1.1 ") == 1 and data.startswith(b"HTTP/1.1 200 OK\r\n"), data
    assert data.endswith(b"1\r\na\r\n1\r\nb\r\n0\r\n\r\n"), data


async def test_not_to_an_http_1_0_client(start_server):
    server = await start_server(app)
    data = await raw(server.port, "/", "1.0")
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and b"103" not in data, data


async def test_a_field_that_would_split_the_head_fails_the_app(start_server):
    server = await start_server(app)
    data = await raw(server.port, "/bad")
    assert data.startswith(b"HTTP/1.1 500 "), data
    assert b"103" not in data


@pytest.mark.parametrize("engine", ENGINES)
def test_http2_sends_an_interim_headers_frame(engine, tmp_path):
    skip_unless_engine(engine)
    srv = H2Server("hints_app:app", engine=engine, log_path=str(tmp_path / "h2.log"))
    try:
        srv.wait_ready()
        with H2Client(srv.port) as client:
            for path, hints in (("/", 1), ("/two", 2)):
                sid = client.send_request("GET", path)
                status, _, body = client.response(sid)
                assert (status, body) == (200, b"ok")
                interim = [ev for ev in client.events if getattr(ev, "stream_id", 0) == sid
                           and isinstance(ev, h2.events.InformationalResponseReceived)]
                assert len(interim) == hints, client.events
                assert (b":status", b"103") in interim[0].headers
                assert (b"link", b"</style.css>; rel=preload; as=style") in interim[0].headers
    finally:
        srv.stop()
