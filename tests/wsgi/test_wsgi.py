"""PEP 3333 as the app sees it: environ, wsgi.input, start_response, write(), close(), errors."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from wsgiref.validate import validator

import aiohttp
import pytest
from apps import Recorder, make_app
from rawhttp import cyclic_garbage, exchange, open_raw, read_all, read_responses

pytestmark = pytest.mark.both_loops

MODES = [pytest.param({}, id="threads"), pytest.param({"dispatch": "inline"}, id="inline")]


def get(path: bytes, extra: bytes = b"") -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n" + extra + b"\r\n"


@pytest.mark.parametrize("mode", MODES)
async def test_validator_accepts_the_server(start_server, mode):
    app = make_app()
    server = await start_server(validator(app), **mode)
    body = b"x" * 100
    post = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n" + body
    resps = await exchange(server.port, get(b"/") + get(b"/gen") + post + get(b"/status?204")
                           + b"HEAD /gen HTTP/1.1\r\nHost: t\r\n\r\n"
                           + get(b"/env", b"Connection: close\r\n"),
                           methods=["GET", "GET", "POST", "GET", "HEAD", "GET"])
    assert [r.status for r in resps] == [200, 200, 200, 204, 200, 200]
    assert resps[1].body == b"part0;part1;part2;" and resps[2].body == body
    assert app.rec.calls == 6


@pytest.mark.parametrize("mode", MODES)
async def test_environ(start_server, mode):
    server = await start_server(make_app(), **mode)
    reader, writer = await open_raw(server.port)
    try:
        writer.write(b"POST /caf%C3%A9/x%2Fy?a=1&b=%20 HTTP/1.1\r\nHost: example.org:8080\r\n"
                     b"Content-Type: text/plain\r\nContent-Length: 0\r\nX-Custom: one\r\n"
                     b"X-Custom: two\r\nConnection: close\r\n\r\n")
        raw = await read_all(reader)
    finally:
        writer.close()
    # PATH_INFO is percent-decoded bytes as latin-1 (PEP 3333), %2F included, as gunicorn does.
    assert raw.partition(b"\r\n\r\n")[2] == "hello POST /cafÃ©/x/y".encode("latin-1")

    [resp] = await exchange(server.port, b"POST /env?a=1&b=%20 HTTP/1.1\r\nHost: example.org:8080"
                            b"\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nX-Custom: one\r\n"
                            b"X-Custom: two\r\nConnection: close\r\n\r\n")
    env = json.loads(resp.body)
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == "" and env["PATH_INFO"] == "/env"
    assert "CONTENT_TYPE" in env and "HTTP_X_CUSTOM" in env
    assert env["QUERY_STRING"] == "a=1&b=%20" and env["RAW_URI"] == "/env?a=1&b=%20"
    assert env["CONTENT_TYPE"] == "text/plain" and env["CONTENT_LENGTH"] == "0"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["SERVER_NAME"] == "127.0.0.1" and env["SERVER_PORT"] == str(server.port)
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["REMOTE_PORT"].isdigit()
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["HTTP_HOST"] == "example.org:8080" and env["HTTP_X_CUSTOM"] == "one,two"
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.input_terminated"] is True and env["has_file_wrapper"] is True

    [resp] = await exchange(server.port, get(b"/env/caf%C3%A9", b"Connection: close\r\n"))
    assert json.loads(resp.body)["PATH_INFO"] == "/env/caf\u00c3\u00a9"  # 'cafÃ©'


def input_app(environ, start_response):
    inp = environ["wsgi.input"]
    out = [inp.read(3), inp.readline(), inp.readline(2), inp.readline(), inp.readlines(1),
           list(inp), inp.read(), inp.read(5)]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps([x.decode() if isinstance(x, bytes) else [y.decode() for y in x]
                        for x in out]).encode()]


@pytest.mark.parametrize("streaming", [False, True])
async def test_wsgi_input_methods(start_server, streaming):
    # inline_body_max=0 makes every body stream to the app thread instead of arriving whole.
    server = await start_server(input_app, inline_body_max=0 if streaming else 65536)
    body = b"abcdef\nghij\nklm\nno\npq\nrs\nend"
    reader, writer = await open_raw(server.port)
    try:
        writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), 4):  # in pieces, so a streaming reader must wait
            writer.write(body[i:i + 4])
            await writer.drain()
            await asyncio.sleep(0.01)
        [resp] = await read_responses(reader, 1)
    finally:
        writer.close()
    assert json.loads(resp.body) == ["abc", "def\n", "gh", "ij\n", ["klm\n"],
                                     ["no\n", "pq\n", "rs\n", "end"], "", ""]


def exc_info_app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/before-head":  # replacing the status before anything is sent is allowed
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("boom")
        except ValueError:
            start_response("503 Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"sorry"]
    if path == "/after-head":  # ... after the head is sent it re-raises: the response is cut
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"partial")
        try:
            raise ValueError("boom")
        except ValueError:
            start_response("500 Error", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"never"]
    if path == "/twice":  # a second call without exc_info is an error
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b""]
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"one,")
        write(b"two,")
        return [b"three"]
    if path == "/raise":
        raise RuntimeError("app failed")
    if path == "/raise-late":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def gen():
            yield b"first"
            raise RuntimeError("app failed late")
        return gen()
    if path.startswith("/bad-header/"):
        which = path.rsplit("/", 1)[1]
        headers = {"crlf-value": ("X-A", "a\r\nSet-Cookie: x=1"), "lf-name": ("X\nA", "v"),
                   "non-latin1": ("X-A", "\u20ac"), "space-name": ("X A", "v")}[which]
        start_response("200 OK", [("Content-Type", "text/plain"), headers])
        return [b"must not be sent"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b""]


@pytest.mark.parametrize("mode", MODES)
async def test_start_response_rules(start_server, mode, tmp_path):
    log = tmp_path / "error.log"
    server = await start_server(exc_info_app, errorlog=str(log), **mode)

    [resp] = await exchange(server.port, get(b"/before-head", b"Connection: close\r\n"))
    assert resp.status == 503 and resp.body == b"sorry"

    reader, writer = await open_raw(server.port)
    try:
        writer.write(get(b"/after-head") + get(b"/next"))
        raw = await read_all(reader)
    finally:
        writer.close()
    assert raw.startswith(b"HTTP/1.1 200 OK") and raw.count(b"HTTP/1.1") == 1
    assert raw.endswith(b"partial\r\n")  # a chunk, and no last-chunk: the client sees it cut

    [resp] = await exchange(server.port, get(b"/twice"))
    assert resp.status == 500

    [resp] = await exchange(server.port, get(b"/write", b"Connection: close\r\n"))
    assert resp.status == 200 and resp.body == b"one,two,three"


@pytest.mark.parametrize("mode", MODES)
async def test_app_exceptions(start_server, mode, tmp_path):
    log = tmp_path / "error.log"
    server = await start_server(exc_info_app, errorlog=str(log), **mode)
    [resp] = await exchange(server.port, get(b"/raise") + get(b"/next"))
    assert resp.status == 500 and resp.headers["connection"] == "close"

    reader, writer = await open_raw(server.port)
    try:
        writer.write(get(b"/raise-late") + get(b"/next"))
        raw = await read_all(reader)
    finally:
        writer.close()
    assert raw.startswith(b"HTTP/1.1 200 OK") and raw.count(b"HTTP/1.1") == 1
    assert raw.endswith(b"5\r\nfirst\r\n")  # cut: no last-chunk
    text = log.read_text()
    assert "app failed" in text and "app failed late" in text


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("which", ["crlf-value", "lf-name", "non-latin1", "space-name"])
async def test_bad_headers_from_the_app_are_500(start_server, mode, which, tmp_path):
    log = tmp_path / "error.log"
    server = await start_server(exc_info_app, errorlog=str(log), **mode)
    [resp] = await exchange(server.port, get(b"/bad-header/" + which.encode()))
    assert resp.status == 500 and b"must not be sent" not in resp.body
    assert "Set-Cookie" not in resp.headers
    assert "Error handling request GET /bad-header/" + which in log.read_text()


@pytest.mark.parametrize("mode", MODES)
async def test_close_is_called_when_the_client_leaves_mid_stream(start_server, mode):
    rec = Recorder()

    class Endless:
        def __iter__(self):
            while True:
                yield b"x" * 65536

        def close(self):
            rec.closed.set()

    def app(environ, start_response):
        rec.calls += 1
        if environ["PATH_INFO"] == "/ok":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"still serving"]
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Endless()

    server = await start_server(app, **mode)
    reader, writer = await open_raw(server.port)
    writer.write(get(b"/endless"))
    await asyncio.wait_for(reader.readexactly(100_000), 5)
    writer.close()
    assert await asyncio.to_thread(rec.closed.wait, 5)
    [resp] = await exchange(server.port, get(b"/ok", b"Connection: close\r\n"))
    assert resp.body == b"still serving"


@pytest.mark.parametrize("mode", MODES)
async def test_close_is_called_on_normal_completion(start_server, mode):
    rec = Recorder()

    class Body:
        def __iter__(self):
            return iter([b"a", b"b"])

        def close(self):
            rec.closed.set()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()

    server = await start_server(app, **mode)
    [resp] = await exchange(server.port, get(b"/", b"Connection: close\r\n"))
    assert resp.body == b"ab"
    assert await asyncio.to_thread(rec.closed.wait, 5)


@pytest.mark.parametrize("mode", MODES)
async def test_file_wrapper_sends_the_file(start_server, mode, tmp_path):
    path = tmp_path / "big.bin"
    data = os.urandom(5 * 1024 * 1024)
    path.write_bytes(data)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(path, "rb"))

    server = await start_server(app, **mode)
    async with aiohttp.ClientSession() as session:
        for _ in range(2):  # twice on one keep-alive connection: the framing stays right
            async with session.get(f"http://127.0.0.1:{server.port}/") as resp:
                assert resp.headers["Content-Length"] == str(len(data))
                assert await resp.read() == data


@pytest.mark.parametrize("settings, variable, used", [
    ({}, None, True),
    ({"sendfile": False}, None, False),  # --no-sendfile
    ({}, "0", False),
    ({}, "false", False),
    ({"sendfile": False}, "1", False),
])
async def test_sendfile_follows_no_sendfile_and_the_variable(start_server, tmp_path, monkeypatch,
                                                            settings, variable, used):
    # gunicorn: --no-sendfile, or SENDFILE=0 in the environment, and the file is read and
    # written instead.  The system call is counted (and still made) where the worker calls it.
    calls = []
    real_sendfile = os.sendfile

    def counted_sendfile(*args):
        calls.append(args)
        return real_sendfile(*args)

    monkeypatch.setattr(os, "sendfile", counted_sendfile)
    if variable is not None:
        monkeypatch.setenv("SENDFILE", variable)
    path = tmp_path / "file.bin"
    data = os.urandom(300_000)
    path.write_bytes(data)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(path, "rb"))

    server = await start_server(app, **settings)
    [resp] = await exchange(server.port, get(b"/", b"Connection: close\r\n"))
    assert resp.status == 200 and resp.body == data
    assert bool(calls) is used


def read_response_slowly(port: int, request: bytes, stall: float) -> bytes:
    """A client with a small receive buffer that reads nothing for ``stall`` seconds, then all."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(20)
        sock.connect(("127.0.0.1", port))
        sock.sendall(request)
        time.sleep(stall)  # the server's socket buffer fills: sendfile(2) must wait for room
        chunks = []
        while chunk := sock.recv(1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)


@pytest.mark.timeout(40)
async def test_file_wrapper_to_a_slow_reader_without_body_timeout(start_server, tmp_path):
    # --body-timeout 0 is no limit: sendfile waits for the client as long as it takes (it
    # raised OverflowError from poll(inf) and cut the body at what the buffers held).
    path = tmp_path / "big.bin"
    data = os.urandom(16 * 1024 * 1024)
    path.write_bytes(data)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(path, "rb"))

    server = await start_server(app, body_timeout=0)
    raw = await asyncio.to_thread(read_response_slowly, server.port,
                                  b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 1.0)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and f"{len(data)}".encode() in head
    assert len(body) == len(data) and body == data


@pytest.mark.parametrize("dispatch", ["threads", "inline"])
async def test_requests_leave_no_cyclic_garbage(start_server, dispatch):
    # Garbage in cycles waits for the collector, whose passes then come every few dozen
    # requests and stall the loop; a finished request must be freed by reference counting.
    server = await start_server(make_app(), dispatch=dispatch)
    reader, writer = await open_raw(server.port)
    try:
        with cyclic_garbage() as ours:
            writer.write(b"".join(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n" for _ in range(20))
                         + b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
            resps = await read_responses(reader, 21)
            assert resps[-1].body == b"abc"
            await asyncio.sleep(0.1)  # the last request's bookkeeping, after its bytes went out
        assert ours == [], ours
    finally:
        writer.close()


@pytest.mark.skipif(not hasattr(os, "sched_getscheduler"), reason="Linux scheduling policies")
async def test_app_threads_run_under_batch_scheduling(start_server):
    # A woken app thread must not preempt the loop thread that holds the GIL (two context
    # switches per handoff for nothing); the loop thread itself keeps normal scheduling.
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.sched_getscheduler(0)).encode()]

    async with aiohttp.ClientSession() as session:
        for dispatch, policy in (("threads", os.SCHED_BATCH), ("inline", os.SCHED_OTHER)):
            server = await start_server(app, dispatch=dispatch)
            async with session.get(f"http://127.0.0.1:{server.port}/") as resp:
                assert int(await resp.read()) == policy, dispatch
