"""What a WSGI app's response turns into on the wire when the app gets it wrong, or sets what the
server usually sets: never a hang, a split head or a desynchronised connection."""

from __future__ import annotations

import asyncio

import pytest
from rawhttp import exchange, open_raw, read_responses

pytestmark = pytest.mark.both_loops

MODES = [pytest.param({}, id="threads"), pytest.param({"dispatch": "inline"}, id="inline")]


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/write-str":  # PEP 3333: write() takes bytes
        write = start_response("200 OK", [])
        write("not bytes")
        return [b"x"]
    if path == "/euro-header-gen":  # a header latin-1 cannot carry, and the head built late
        start_response("200 OK", [("Content-Disposition", 'attachment; filename="\u20ac.txt"')])
        return iter(())
    if path == "/status-cr":
        start_response("200 OK\rX-Injected: 1", [])
        return [b"x"]
    if path == "/status-1xx":
        start_response("103 Early Hints", [])
        return [b""]
    if path == "/status-bare":
        start_response("200", [("Content-Length", "2")])
        return [b"ok"]
    if path == "/own-date-server":
        start_response("200 OK", [("Date", "Mon, 01 Jan 2001 00:00:00 GMT"), ("Server", "mine"),
                                  ("Content-Length", "2")])
        return [b"ok"]
    if path == "/204-length":
        start_response("204 No Content", [("Content-Length", "3")])
        return [b""]
    if path.startswith("/length/"):
        values = path.split("/")[2:]
        start_response("200 OK", [("Content-Length", v) for v in values])
        return [b"ok"]
    if path == "/lazy-start":  # PEP 3333: start_response from inside the iterable
        return lazy(start_response)
    if path == "/body-before-start":
        return iter([b"too soon"])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"next"]


def lazy(start_response):
    yield b""  # an empty item may come before start_response
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"hello "
    yield b"lazily"


def get(path: bytes, method: bytes = b"GET") -> bytes:
    return method + b" " + path + b" HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path, method", [
    (b"/write-str", b"GET"),
    (b"/euro-header-gen", b"GET"),
    (b"/euro-header-gen", b"HEAD"),
    (b"/status-cr", b"GET"),
    (b"/status-1xx", b"GET"),
    (b"/length/+5", b"GET"),
    (b"/length/1_0", b"GET"),
    (b"/length/2/3", b"GET"),
    (b"/body-before-start", b"GET"),
])
async def test_a_broken_response_is_a_500_and_the_server_goes_on(start_server, mode, path,
                                                                 method):
    server = await start_server(app, **mode)
    resps = await exchange(server.port, get(path, method) + get(b"/next"),
                           methods=[method.decode(), "GET"])
    assert [r.status for r in resps] == [500]
    assert resps[0].headers["connection"] == "close"
    assert b"X-Injected" not in resps[0].head
    # Nothing is stuck behind it: another connection is served at once.
    [resp] = await exchange(server.port, get(b"/next")[:-2] + b"Connection: close\r\n\r\n")
    assert resp.body == b"next"


async def test_many_broken_writes_leave_no_thread_counted_busy(start_server):
    # Each such failure used to strand its request's end on the loop: in_flight never came back
    # down, and with workers > 1 the worker stopped accepting for good.
    server = await start_server(app, threads=2)
    for _ in range(6):
        [resp] = await exchange(server.port, get(b"/write-str"))
        assert resp.status == 500
    for _ in range(50):
        if server.pool.in_flight == 0:
            break
        await asyncio.sleep(0.02)
    assert server.pool.in_flight == 0


@pytest.mark.parametrize("mode", MODES)
async def test_status_without_reason_keeps_the_space(start_server, mode):
    server = await start_server(app, **mode)
    reader, writer = await open_raw(server.port)
    try:
        writer.write(get(b"/status-bare"))
        [resp] = await read_responses(reader, 1)
    finally:
        writer.close()
    assert resp.head.startswith(b"HTTP/1.1 200 \r\n")  # RFC 9112 4: SP before the reason


@pytest.mark.parametrize("mode", MODES)
async def test_the_apps_own_date_and_server_replace_ours(start_server, mode):
    server = await start_server(app, **mode)
    [resp] = await exchange(server.port, get(b"/own-date-server")[:-2] + b"Connection: close\r\n\r\n")
    names = [name.lower() for name, _ in resp.header_list]
    assert names.count("date") == 1 and names.count("server") == 1
    assert resp.headers["date"] == "Mon, 01 Jan 2001 00:00:00 GMT"
    assert resp.headers["server"] == "mine"


@pytest.mark.parametrize("mode", MODES)
async def test_no_content_length_on_a_204(start_server, mode):
    server = await start_server(app, **mode)
    resps = await exchange(server.port, get(b"/204-length") + get(b"/next")[:-2]
                           + b"Connection: close\r\n\r\n")
    assert [r.status for r in resps] == [204, 200]
    assert "content-length" not in resps[0].headers  # RFC 9110 8.6
    assert resps[1].body == b"next"


async def test_the_same_length_twice_goes_out_once(start_server):
    server = await start_server(app)
    [resp] = await exchange(server.port, get(b"/length/2/2")[:-2] + b"Connection: close\r\n\r\n")
    assert resp.status == 200 and resp.body == b"ok"
    assert [n.lower() for n, _ in resp.header_list].count("content-length") == 1


@pytest.mark.parametrize("mode", MODES)
async def test_start_response_called_from_a_generator(start_server, mode):
    server = await start_server(app, **mode)
    resps = await exchange(server.port, get(b"/lazy-start") + get(b"/lazy-start", b"HEAD")
                           + get(b"/next")[:-2] + b"Connection: close\r\n\r\n",
                           methods=["GET", "HEAD", "GET"])
    assert [r.status for r in resps] == [200, 200, 200]
    assert resps[0].body == b"hello lazily" and resps[1].body == b""
