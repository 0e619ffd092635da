"""HTTP/1.1 connection behaviour on the wire: keep-alive, pipelining, timeouts, framing."""

from __future__ import annotations

import asyncio
import time

import pytest
from apps import make_app
from rawhttp import exchange, is_closed, open_raw, read_all, read_responses

pytestmark = pytest.mark.both_loops

GET = b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n"


def get(path: bytes, version=b"1.1", extra=b"") -> bytes:
    return b"GET " + path + b" HTTP/" + version + b"\r\nHost: t\r\n" + extra + b"\r\n"


async def test_keepalive_is_the_default_on_http11(start_server):
    server = await start_server(make_app())
    reader, writer = await open_raw(server.port)
    try:
        for path in (b"/a", b"/b"):
            writer.write(get(path))
            [resp] = await read_responses(reader, 1)
            assert resp.status == 200 and resp.body == b"hello GET " + path
            assert "connection" not in resp.headers
        assert not await is_closed(reader, 0.2)
    finally:
        writer.close()


async def test_http10_closes_unless_keepalive_is_asked_for(start_server):
    server = await start_server(make_app())
    [resp] = await exchange(server.port, get(b"/", b"1.0"))
    assert resp.status == 200 and resp.headers["connection"] == "close"

    reader, writer = await open_raw(server.port)
    try:
        for _ in range(2):
            writer.write(get(b"/", b"1.0", b"Connection: keep-alive\r\n"))
            [resp] = await read_responses(reader, 1)
            assert resp.headers["connection"] == "keep-alive"
            assert resp.body == b"hello GET /"
    finally:
        writer.close()


async def test_connection_close_is_honoured(start_server):
    server = await start_server(make_app())
    reader, writer = await open_raw(server.port)
    try:
        writer.write(get(b"/", extra=b"Connection: close\r\n"))
        [resp] = await read_responses(reader, 1)
        assert resp.headers["connection"] == "close"
        assert await is_closed(reader)
    finally:
        writer.close()


@pytest.mark.parametrize("dispatch", ["threads", "inline"])
async def test_pipelined_responses_keep_request_order(start_server, dispatch):
    app = make_app()
    server = await start_server(app, threads=4, dispatch=dispatch)
    reader, writer = await open_raw(server.port)
    try:
        # The slow first request must not let the fast ones overtake it.
        writer.write(get(b"/slow1") + get(b"/fast2") + get(b"/gen") + get(b"/fast4")
                     + b"HEAD /fast5 HTTP/1.1\r\nHost: t\r\n\r\n")
        resps = await read_responses(reader, 5, methods=["GET"] * 4 + ["HEAD"])
        assert [r.body for r in resps] == [b"/slow1", b"hello GET /fast2", b"part0;part1;part2;",
                                           b"hello GET /fast4", b""]
        assert resps[4].headers["content-length"] == str(len(b"hello HEAD /fast5"))
        assert app.rec.calls == 5
    finally:
        writer.close()


async def test_keepalive_timeout_closes_idle_connections(start_server):
    server = await start_server(make_app(), keepalive=1)
    reader, writer = await open_raw(server.port)
    try:
        writer.write(get(b"/"))
        await read_responses(reader, 1)
        t0 = time.monotonic()
        assert await is_closed(reader, 4)
        assert 0.5 < time.monotonic() - t0 < 3.5
    finally:
        writer.close()


async def test_an_idle_connection_sheds_its_parser_and_cache_and_still_serves(start_server):
    server = await start_server(make_app(), keepalive=10)
    reader, writer = await open_raw(server.port)
    try:
        writer.write(get(b"/one"))
        [resp] = await read_responses(reader, 1)
        assert resp.body == b"hello GET /one"
        [protocol] = server.connections
        for _ in range(60):  # two sweeps without a byte (one a second)
            if protocol.parser is None:
                break
            await asyncio.sleep(0.1)
        assert protocol.parser is None and protocol.app_state is None
        # A request split across packets after the idle spell: a fresh parser takes it whole.
        writer.write(b"GET /two HTTP/1.1\r\nHo")
        await asyncio.sleep(0.05)
        writer.write(b"st: t\r\n\r\n" + get(b"/three"))
        resps = await read_responses(reader, 2)
        assert [r.body for r in resps] == [b"hello GET /two", b"hello GET /three"]
        assert protocol.parser is not None and protocol.app_state is not None
    finally:
        writer.close()


async def test_connections_from_one_host_share_its_address_string(start_server):
    # 10 000 idle connections from a proxy hold one copy of its address, not 10 000.
    server = await start_server(make_app(), keepalive=10)
    streams = [await open_raw(server.port) for _ in range(2)]
    try:
        for reader, writer in streams:
            writer.write(get(b"/"))
            await read_responses(reader, 1)
        first, second = server.connections
        assert first.peername[0] == "127.0.0.1" and first.peername[1] != second.peername[1]
        assert first.peername[0] is second.peername[0]
    finally:
        for _, writer in streams:
            writer.close()


async def test_header_timeout_answers_408(start_server):
    app = make_app()
    server = await start_server(app, header_timeout=1)
    reader, writer = await open_raw(server.port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n")  # half a head, then silence
        [resp] = await read_responses(reader, 1, timeout=4)
        assert resp.status == 408 and resp.headers["connection"] == "close"
        assert await is_closed(reader)
        assert app.rec.calls == 0
    finally:
        writer.close()


async def test_date_and_server_headers(start_server):
    server = await start_server(make_app())
    [resp] = await exchange(server.port, get(b"/", extra=b"Connection: close\r\n"))
    assert resp.headers["server"].startswith("unicorn_aio/")
    assert resp.headers["date"].endswith(" GMT")


async def test_chunked_when_the_app_gives_no_length_on_11(start_server):
    server = await start_server(make_app())
    reader, writer = await open_raw(server.port)
    try:
        writer.write(get(b"/gen") + get(b"/"))
        first, second = await read_responses(reader, 2)
        assert first.headers["transfer-encoding"] == "chunked"
        assert first.body == b"part0;part1;part2;"
        assert second.body == b"hello GET /"
    finally:
        writer.close()


async def test_close_delimited_body_on_10(start_server):
    server = await start_server(make_app())
    [resp] = await exchange(server.port, get(b"/gen", b"1.0", b"Connection: keep-alive\r\n"))
    assert "transfer-encoding" not in resp.headers and "content-length" not in resp.headers
    assert resp.headers["connection"] == "close"
    assert resp.body == b"part0;part1;part2;"


@pytest.mark.parametrize("request_line, status", [
    (b"HEAD / HTTP/1.1", 200), (b"HEAD /gen HTTP/1.1", 200),
    (b"GET /status?204 HTTP/1.1", 204), (b"GET /status?304 HTTP/1.1", 304),
])
async def test_no_body_for_head_204_304(start_server, request_line, status):
    server = await start_server(make_app())
    reader, writer = await open_raw(server.port)
    try:
        # A body sent by mistake would be read as the start of the next response.
        writer.write(request_line + b"\r\nHost: t\r\n\r\n" + get(b"/next"))
        resps = await read_responses(reader, 2, methods=[request_line.split()[0].decode(), "GET"])
        assert [r.status for r in resps] == [status, 200]
        assert resps[0].body == b"" and resps[1].body == b"hello GET /next"
        if request_line == b"HEAD / HTTP/1.1":
            assert resps[0].headers["content-length"] == str(len(b"hello HEAD /"))
    finally:
        writer.close()


# A list body's length is known before the head goes out, so the head says the connection
# closes; a streamed body turns out short or long only after it has gone.
@pytest.mark.parametrize("path", [b"/short", b"/short-list"])
async def test_app_sending_less_than_content_length_closes(start_server, path):
    server = await start_server(make_app())
    reader, writer = await open_raw(server.port)
    try:
        writer.write(get(path) + get(b"/next"))
        raw = await read_all(reader)
        head, _, body = raw.partition(b"\r\n\r\n")
        assert b"Content-Length: 10" in head and body == b"hello"  # and nothing for /next
        assert (b"Connection: close" in head) == path.endswith(b"-list")
    finally:
        writer.close()
    [resp] = await exchange(server.port, get(b"/after", extra=b"Connection: close\r\n"))
    assert resp.body == b"hello GET /after"


@pytest.mark.parametrize("path", [b"/long", b"/long-list"])
async def test_app_sending_more_than_content_length_is_truncated(start_server, path):
    server = await start_server(make_app())
    reader, writer = await open_raw(server.port)
    try:
        writer.write(get(path) + get(b"/next"))
        raw = await read_all(reader)
        head, _, body = raw.partition(b"\r\n\r\n")
        assert b"Content-Length: 5" in head and body == b"hello"
        assert (b"Connection: close" in head) == path.endswith(b"-list")
    finally:
        writer.close()


# -- request bodies --------------------------------------------------------------------------

def post(path: bytes, body: bytes = b"", extra: bytes = b"", length: bool = True) -> bytes:
    cl = b"Content-Length: %d\r\n" % len(body) if length else b""
    return b"POST " + path + b" HTTP/1.1\r\nHost: t\r\n" + cl + extra + b"\r\n" + body


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p) + b"0\r\n\r\n"


async def test_content_length_and_chunked_bodies_reach_the_app(start_server):
    server = await start_server(make_app())
    reader, writer = await open_raw(server.port)
    try:
        writer.write(post(b"/echo", b"x" * 10)
                     + post(b"/echo", chunked(b"ab", b"cde", b"f" * 300),
                            b"Transfer-Encoding: chunked\r\n", length=False)
                     + post(b"/echo", b""))
        resps = await read_responses(reader, 3)
        assert [r.body for r in resps] == [b"x" * 10, b"abcde" + b"f" * 300, b""]
    finally:
        writer.close()


@pytest.mark.parametrize("te", [False, True])
async def test_app_reads_the_body_while_it_arrives(start_server, te):
    app = make_app()
    server = await start_server(app)
    piece, pieces = b"z" * 20_000, 10
    reader, writer = await open_raw(server.port)
    try:
        if te:
            writer.write(post(b"/chunks", extra=b"Transfer-Encoding: chunked\r\n", length=False))
        else:
            writer.write(post(b"/chunks", extra=b"Content-Length: %d\r\n" % (len(piece) * pieces),
                              length=False))
        for _ in range(pieces):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if te else piece)
            await writer.drain()
            await asyncio.sleep(0.1)
        last_sent = time.monotonic()
        if te:
            writer.write(b"0\r\n\r\n")
        [resp] = await read_responses(reader, 1)
        assert resp.body == b"%d" % (len(piece) * pieces)
        first_read = app.rec.notes[0][0]
        assert first_read < last_sent - 0.3, "the app only started once the upload was done"
        assert len(app.rec.notes) >= 5  # read in many 16 KB blocks, not one
    finally:
        writer.close()


async def test_small_bodies_arrive_whole_before_the_app_runs(start_server):
    app = make_app()
    server = await start_server(app)
    reader, writer = await open_raw(server.port)
    try:
        writer.write(post(b"/stamp", extra=b"Content-Length: 2000\r\n", length=False) + b"a" * 1000)
        await writer.drain()
        await asyncio.sleep(0.3)
        assert app.rec.calls == 0  # 1000 of 2000 bytes in: not dispatched yet
        sent = time.monotonic()
        writer.write(b"b" * 1000)
        [resp] = await read_responses(reader, 1)
        assert resp.body == b"a" * 1000 + b"b" * 1000
        assert app.rec.notes[0][1] >= sent
    finally:
        writer.close()


async def test_100_continue_is_sent_when_the_app_first_reads(start_server):
    app = make_app()
    server = await start_server(app)
    reader, writer = await open_raw(server.port)
    try:
        t0 = time.monotonic()
        writer.write(post(b"/read-later", extra=b"Content-Length: 10\r\nExpect: 100-continue\r\n",
                          length=False))
        line = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        assert line == b"HTTP/1.1 100 Continue\r\n\r\n"
        [(_, reading)] = app.rec.notes
        assert reading >= t0 + 0.4  # the app sleeps 0.5 s before reading
        writer.write(b"0123456789")
        [resp] = await read_responses(reader, 1)
        assert resp.status == 200 and resp.body == b"10"
        writer.write(get(b"/again"))  # the connection goes on
        [resp] = await read_responses(reader, 1)
        assert resp.body == b"hello GET /again"
    finally:
        writer.close()


async def test_no_100_continue_when_the_app_never_reads(start_server):
    server = await start_server(make_app())
    reader, writer = await open_raw(server.port)
    try:
        writer.write(post(b"/noread", extra=b"Content-Length: 10\r\nExpect: 100-continue\r\n",
                          length=False))
        raw = await read_all(reader)
        assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and b"100 Continue" not in raw
        assert b"Connection: close\r\n" in raw
    finally:
        writer.close()


@pytest.mark.parametrize("size", [100, 300_000])
async def test_unread_body_is_never_parsed_as_a_request(start_server, size):
    app = make_app()
    # Buffered whole before the app runs, so the connection deterministically stays open
    # (a body still arriving when the app answers closes it: see the test below).
    server = await start_server(app, inline_body_max=1 << 20)
    evil = b"GET /evil HTTP/1.1\r\nHost: t\r\n\r\n"
    body = evil + b"x" * (size - len(evil))
    reader, writer = await open_raw(server.port)
    try:
        writer.write(post(b"/noread", body) + get(b"/next"))
        resps = await read_responses(reader, 2)
        assert [r.body for r in resps] == [b"ignored your body", b"hello GET /next"]
        assert app.rec.calls == 2
    finally:
        writer.close()


async def test_partly_sent_unread_body_closes_the_connection(start_server):
    app = make_app()
    server = await start_server(app)
    evil = b"GET /evil HTTP/1.1\r\nHost: t\r\n\r\n"
    reader, writer = await open_raw(server.port)
    try:
        # 100 KB of a promised 300 KB: the app answers without reading, the rest never comes.
        writer.write(post(b"/noread", extra=b"Content-Length: 300000\r\n", length=False)
                     + evil + b"x" * 100_000)
        raw = await read_all(reader, 5)
        assert raw.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in raw
        assert raw.count(b"HTTP/1.1") == 1
        assert app.rec.calls == 1
    finally:
        writer.close()


async def test_a_stalled_upload_gets_408_not_a_server_error(start_server, caplog):
    # 100 KB promised, 70 KB sent: past inline_body_max, so the app is reading when it stalls.
    server = await start_server(make_app(), body_timeout=1)
    reader, writer = await open_raw(server.port)
    try:
        writer.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n"
                     + b"x" * 70000)
        [resp] = await read_responses(reader, 1, timeout=5)
        assert resp.status == 408 and resp.headers["connection"] == "close"
    finally:
        writer.close()
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


@pytest.mark.parametrize("framing, body", [
    (b"Content-Length: 9\r\n", b"name=alic"),
    (b"Transfer-Encoding: chunked\r\n", b"4\r\nname\r\n5\r\n=alic\r\n0\r\n\r\n"),
])
async def test_a_request_asking_for_an_upgrade_we_refuse_keeps_its_body(start_server, framing,
                                                                        body):
    # What curl --http2 -d sends over http://: an h2c upgrade, which we ignore (RFC 9110 7.8)
    # and so answer as an ordinary request - body included, connection kept.
    server = await start_server(make_app())
    upgrade = (b"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\n"
               b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n" + framing + b"\r\n")
    reader, writer = await open_raw(server.port)
    try:
        writer.write(upgrade + body[:3])
        await asyncio.sleep(0.05)  # the rest of the body in a later packet
        writer.write(body[3:] + get(b"/next"))
        first, second = await read_responses(reader, 2)
    finally:
        writer.close()
    assert (first.status, first.body) == (200, b"name=alic")
    assert "connection" not in first.headers
    assert second.body == b"hello GET /next"


async def test_connection_tokens_are_whole_words(start_server):
    server = await start_server(make_app())
    reader, writer = await open_raw(server.port)
    try:
        writer.write(get(b"/one", extra=b"Connection: x-upgrade-hint, unclosed\r\n") + get(b"/two"))
        first, second = await read_responses(reader, 2)
    finally:
        writer.close()
    assert "connection" not in first.headers and second.body == b"hello GET /two"


def script_app(environ, start_response):
    body = f"{environ['SCRIPT_NAME']}|{environ['PATH_INFO']}".encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


@pytest.mark.parametrize("path, seen", [
    (b"/app", b"/app|"), (b"/app/", b"/app|/"), (b"/app/x/y", b"/app|/x/y"),
    (b"/application/x", b"|/application/x"), (b"/other", b"|/other"),
])
async def test_root_path_is_taken_off_at_a_slash_only(start_server, path, seen):
    # PEP 3333: SCRIPT_NAME + PATH_INFO is the path, and PATH_INFO is empty or starts with "/"
    server = await start_server(script_app, root_path="/app")
    [resp] = await exchange(server.port, get(path, extra=b"Connection: close\r\n"))
    assert resp.body == seen
