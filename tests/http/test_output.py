"""Held output (http/output.py): a connection's response bytes wait for the end of the loop
iteration and leave in one flush for every connection.  What that must never change, over real
sockets, for WSGI in both dispatch modes and for ASGI: responses leave in request order, a close
(the server's or the client's half-close) never loses what was held, bytes written around the
app's (100 Continue, an error for a later pipelined request) keep their place, and a streaming
app still feels the transport's backpressure.
"""

from __future__ import annotations

import asyncio
import os
import socket

import pytest
from rawhttp import open_raw, parse_responses, read_all, read_responses

KINDS = ["threads", "inline", "asgi"]
BIG = 100 * 1024  # past FLUSH_AT: written at once, between held small responses


def wsgi_paths(environ, start_response):
    path = environ["PATH_INFO"]
    body = environ["wsgi.input"].read()
    if path.startswith("/big/"):
        body = path.encode() * (BIG // len(path))
    else:
        body = path.encode() + b":" + body
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


async def asgi_paths(scope, receive, send):
    if scope["type"] != "http":
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    path = scope["path"]
    body = path.encode() * (BIG // len(path)) if path.startswith("/big/") else \
        path.encode() + b":" + body
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def serve(start_server, kind, app=None, asgi_app=None, **settings):
    if kind == "asgi":
        return await start_server(asgi_app or asgi_paths, lifespan="off", **settings)
    return await start_server(app or wsgi_paths, dispatch="inline" if kind == "inline" else "threads",
                              **settings)


def expected(path: str) -> bytes:
    return path.encode() * (BIG // len(path)) if path.startswith("/big/") else path.encode() + b":"


@pytest.mark.both_loops
@pytest.mark.parametrize("kind", KINDS)
async def test_pipelined_responses_leave_in_request_order(start_server, kind):
    # Small responses held, large ones written at once past FLUSH_AT, in one read: the order on
    # the wire is the requests' order all the same.
    server = await serve(start_server, kind)
    paths = [f"/big/{i}" if i % 5 == 2 else f"/small/{i}" for i in range(16)]
    reader, writer = await open_raw(server.port)
    try:
        writer.write(b"".join(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % p.encode() for p in paths))
        resps = await read_responses(reader, len(paths), timeout=10)
        assert [r.body for r in resps] == [expected(p) for p in paths]
    finally:
        writer.close()


@pytest.mark.both_loops
@pytest.mark.parametrize("kind", KINDS)
async def test_many_connections_answered_in_one_iteration(start_server, kind):
    # Forty connections' requests land together: each gets exactly its own answer.
    server = await serve(start_server, kind)
    conns = [await open_raw(server.port) for _ in range(40)]
    try:
        for i, (_, writer) in enumerate(conns):
            writer.write(b"GET /c%d HTTP/1.1\r\nHost: t\r\n\r\n" % i)
        for i, (reader, _) in enumerate(conns):
            [resp] = await read_responses(reader, 1)
            assert resp.body == b"/c%d:" % i
    finally:
        for _, writer in conns:
            writer.close()


@pytest.mark.both_loops
@pytest.mark.parametrize("kind", KINDS)
async def test_response_then_close_loses_nothing(start_server, kind):
    # Connection: close after pipelined keep-alive requests: all answers, then the close.
    server = await serve(start_server, kind)
    reader, writer = await open_raw(server.port)
    try:
        writer.write(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n"
                     b"GET /c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        resps, rest = parse_responses(await read_all(reader), ())
        assert [r.body for r in resps] == [b"/a:", b"/b:", b"/c:"] and rest == b""
    finally:
        writer.close()


@pytest.mark.both_loops
@pytest.mark.parametrize("kind", ["threads", "inline"])
async def test_half_close_after_requests_gets_every_answer(start_server, kind):
    # The client's FIN can arrive in the same loop iteration as its requests: answered inline,
    # the responses are still held when eof_received lets the transport close.  (ASGI takes a
    # FIN for the client leaving: eof_is_disconnect.)
    server = await serve(start_server, kind)
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", server.port))
        try:
            sock.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\nGET /y HTTP/1.1\r\nHost: t\r\n\r\n")
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            raw = b""
            while chunk := await asyncio.wait_for(loop.sock_recv(sock, 65536), 5):
                raw += chunk
        finally:
            sock.close()
        resps, rest = parse_responses(raw, ())
        assert [r.body for r in resps] == [b"/x:", b"/y:"] and rest == b""


@pytest.mark.both_loops
@pytest.mark.parametrize("kind", KINDS)
async def test_error_for_a_later_pipelined_request_comes_after_the_answers(start_server, kind):
    # The 400 for a malformed request is written by the protocol itself, after what the
    # connection holds for the requests before it, then the close.
    server = await serve(start_server, kind)
    reader, writer = await open_raw(server.port)
    try:
        writer.write(b"GET /ok1 HTTP/1.1\r\nHost: t\r\n\r\nGET /ok2 HTTP/1.1\r\nHost: t\r\n\r\n"
                     b"GET /bad HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n")
        resps, _ = parse_responses(await read_all(reader), ())
        assert [r.status for r in resps] == [200, 200, 400]
        assert [r.body for r in resps[:2]] == [b"/ok1:", b"/ok2:"]
    finally:
        writer.close()


@pytest.mark.both_loops
@pytest.mark.parametrize("kind", KINDS)
async def test_continue_after_the_previous_answer(start_server, kind):
    # 100 Continue for the second request goes after the first request's held response.
    server = await serve(start_server, kind)
    reader, writer = await open_raw(server.port)
    try:
        writer.write(b"GET /first HTTP/1.1\r\nHost: t\r\n\r\n"
                     b"POST /second HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                     b"Content-Length: 5\r\n\r\n")
        before = await asyncio.wait_for(reader.readuntil(b"HTTP/1.1 100 Continue\r\n\r\n"), 5)
        [first], rest = parse_responses(before[:-len(b"HTTP/1.1 100 Continue\r\n\r\n")], ())
        assert first.body == b"/first:" and rest == b""
        writer.write(b"hello")
        [second] = await read_responses(reader, 1)
        assert second.body == b"/second:hello"
    finally:
        writer.close()


STREAM_TOTAL = 48 * 1024 * 1024
STREAM_PIECE = b"s" * 16384  # under FLUSH_AT: every piece is held first


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def asgi_stream(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(STREAM_TOTAL).encode())]})
    # Nothing here awaits but send(): only the transport's pause, reached while the app
    # writes, stops it from queueing the whole body in one loop iteration.
    for _ in range(STREAM_TOTAL // len(STREAM_PIECE)):
        await send({"type": "http.response.body", "body": STREAM_PIECE, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def wsgi_stream(environ, start_response):
    start_response("200 OK", [("Content-Length", str(STREAM_TOTAL))])
    return (STREAM_PIECE for _ in range(STREAM_TOTAL // len(STREAM_PIECE)))


@pytest.mark.both_loops
@pytest.mark.parametrize("kind", KINDS)
async def test_streamed_response_to_a_client_not_reading_stays_bounded(start_server, kind):
    server = await serve(start_server, kind, app=wsgi_stream, asgi_app=asgi_stream)
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    base = rss()
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        await asyncio.sleep(1.0)  # the client reads nothing meanwhile
        grown = rss() - base
        assert grown < 16 * 1024 * 1024, f"{grown >> 20} MB held for a client that reads nothing"
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        start, body = b"", -1
        while body < STREAM_TOTAL:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 10)
            assert chunk, "the server closed before the whole body"
            if body < 0:
                start += chunk
                if b"\r\n\r\n" in start:
                    head, _, rest = start.partition(b"\r\n\r\n")
                    assert head.startswith(b"HTTP/1.1 200 ")
                    body = len(rest)
            else:
                body += len(chunk)
        assert body == STREAM_TOTAL
    finally:
        sock.close()
