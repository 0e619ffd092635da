"""What a valid request means, on raw sockets, where RFC 9112 allows it and gunicorn 27 serves it:
chunk extensions with whitespace, optional whitespace around field values, a fragment in the
target, codings before chunked, limits counted as gunicorn counts them, and pipelining after an
upgrade we do not perform.  (What is refused is in test_http_strict.py.)
"""

from __future__ import annotations

import asyncio
import json

import pytest
from apps import make_app
from rawhttp import exchange, open_raw, read_responses

H = b"Host: t\r\n"


def req(line: bytes, *fields: bytes, body: bytes = b"", close: bool = False) -> bytes:
    return line + b"\r\n" + H + b"".join(f + b"\r\n" for f in fields) \
        + (b"Connection: close\r\n" if close else b"") + b"\r\n" + body


ECHO = b"POST /echo HTTP/1.1"
TE = b"Transfer-Encoding: chunked"
LAST = req(b"GET /last HTTP/1.1", close=True)


@pytest.mark.parametrize("size_line", [
    b"5;name=value", b"5; name=value", b"5 ;name=value", b"5\t;\tname\t=\tvalue",
    b"5 ; a = b ; c", b'5;a="q s;\\"x\\""', b"5;a;b=c;d=\"\"",
])
async def test_chunk_extensions_are_ignored(start_server, size_line):
    # 9112 7.1.1: chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ); a
    # recipient MUST ignore unrecognized chunk extensions.  llhttp refuses the BWS.
    server = await start_server(make_app())
    body = size_line + b"\r\nhello\r\n0; last=1\r\n\r\n"
    resps = await exchange(server.port, req(ECHO, TE, body=body) + LAST)
    assert [(r.status, r.body) for r in resps] == [(200, b"hello"), (200, b"hello GET /last")]


async def test_a_chunked_body_split_at_every_byte(start_server):
    # The body is read by our own decoder from the end of the head on: wherever the reads end.
    server = await start_server(make_app())
    data = (req(ECHO, TE, body=b"3 ; x = y\r\nabc\r\n10\r\n" + b"d" * 16 + b"\r\n0\r\nX-T: 1\r\n\r\n")
            + req(ECHO, TE, body=b"2\r\nzz\r\n0\r\n\r\n") + LAST)
    reader, writer = await open_raw(server.port)
    try:
        for i in range(len(data)):
            writer.write(data[i:i + 1])
            if i % 7 == 0:
                await writer.drain()
                await asyncio.sleep(0)
        resps = await read_responses(reader, 3)
    finally:
        writer.close()
    assert [r.body for r in resps] == [b"abc" + b"d" * 16, b"zz", b"hello GET /last"]


async def test_chunked_bodies_pipelined_in_one_read(start_server):
    # Each chunked body ends where its last chunk and trailers do; the next request starts there.
    server = await start_server(make_app())
    one = req(ECHO, TE, body=b"1\r\na\r\n0\r\n\r\n")
    resps = await exchange(server.port, one * 40 + LAST)
    assert [r.body for r in resps] == [b"a"] * 40 + [b"hello GET /last"]


async def test_optional_whitespace_around_values_is_not_the_value(start_server):
    # 9110 5.5: a field value does not include leading or trailing whitespace.
    server = await start_server(make_app())
    [resp] = await exchange(server.port, req(b"POST /env HTTP/1.1", b"X-A:   b  \t",
                                             b"Content-Length:  5 ", b"X-Empty: \t ",
                                             body=b"hello", close=True))
    env = json.loads(resp.body)
    assert env["HTTP_X_A"] == "b" and env["CONTENT_LENGTH"] == "5" and env["HTTP_X_EMPTY"] == ""


async def test_a_fragment_is_served_without_it(start_server):
    # 9110 4.2.4: a fragment is never sent; gunicorn 27 serves /a?b=1#frag as /a?b=1, and
    # RAW_URI keeps what was sent.
    server = await start_server(make_app())
    [resp] = await exchange(server.port, req(b"GET /env/a?b=1#frag HTTP/1.1", close=True))
    env = json.loads(resp.body)
    assert resp.status == 200 and env["PATH_INFO"] == "/env/a" and env["QUERY_STRING"] == "b=1"
    assert env["RAW_URI"] == "/env/a?b=1#frag"


async def test_an_asgi_path_has_no_fragment(start_server):
    async def app(scope, receive, send):
        body = json.dumps([scope["path"], scope["raw_path"].decode(),
                           scope["query_string"].decode()]).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
    server = await start_server(app)
    [resp] = await exchange(server.port, req(b"GET /a%20b?c=1#f?g HTTP/1.1", close=True))
    assert json.loads(resp.body) == ["/a b", "/a%20b", "c=1"]


async def test_codings_before_chunked_reach_the_app(start_server):
    # 9112 6.3: the final chunked frames the body.  As gunicorn 27, the app gets the body still
    # gzip-coded, reads the coding in HTTP_TRANSFER_ENCODING, and the connection closes after
    # the response (the pipelined request is not answered).
    server = await start_server(make_app())
    resps = await exchange(server.port, req(ECHO, b"Transfer-Encoding: gzip, chunked",
                                            body=b"5\r\nhello\r\n0\r\n\r\n") + LAST)
    assert [(r.status, r.body) for r in resps] == [(200, b"hello")]
    assert resps[0].headers["connection"] == "close"
    resps = await exchange(server.port, req(b"POST /env HTTP/1.1", b"Transfer-Encoding: identity",
                                            b"Transfer-Encoding: chunked",
                                            body=b"0\r\n\r\n") + LAST)
    assert [r.status for r in resps] == [200, 200]  # identity changes nothing: kept alive
    assert json.loads(resps[0].body)["HTTP_TRANSFER_ENCODING"] == "identity,chunked"


UPGRADE = (b"Connection: Upgrade", b"Upgrade: websocket")


@pytest.mark.parametrize("dispatch", ["threads", "inline"])
async def test_the_request_after_an_upgrade_we_do_not_perform_is_answered(start_server,
                                                                          dispatch):
    # A WSGI app answers an upgrade request as any other; what the client sent after it is HTTP.
    server = await start_server(make_app(), dispatch=dispatch)
    resps = await exchange(server.port, req(b"GET /up HTTP/1.1", *UPGRADE)
                           + req(b"GET /next HTTP/1.1", *UPGRADE) + LAST)
    assert [(r.status, r.body) for r in resps] == [
        (200, b"hello GET /up"), (200, b"hello GET /next"), (200, b"hello GET /last")]


async def test_the_request_after_an_asgi_http_answer_to_an_upgrade_is_answered(start_server):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["path"].encode()})
    server = await start_server(app)
    resps = await exchange(server.port, req(b"GET /up HTTP/1.1", b"Connection: Upgrade",
                                            b"Upgrade: h2c") + LAST)
    assert [r.body for r in resps] == [b"/up", b"/last"]


async def test_upgrade_requests_with_bodies_keep_the_connection(start_server):
    server = await start_server(make_app())
    resps = await exchange(server.port, req(ECHO, *UPGRADE, b"Content-Length: 5", body=b"hello")
                           + req(ECHO, *UPGRADE, TE, body=b"3 ; a=b\r\nabc\r\n0\r\n\r\n") + LAST)
    assert [r.body for r in resps] == [b"hello", b"abc", b"hello GET /last"]


async def test_a_bad_request_pipelined_after_a_slow_good_one_gets_its_400(start_server):
    server = await start_server(make_app(), threads=1)
    resps = await exchange(server.port, req(b"GET /slow HTTP/1.1") + req(b"GET  /two HTTP/1.1"))
    assert [r.status for r in resps] == [200, 400]
    assert server.app.rec.calls == 1


@pytest.mark.parametrize("first", [
    req(ECHO, b"Content-Length: 17", body=b"GET /x HTTP/1.1\r\n"),  # in a body
    req(b"GET /one HTTP/1.1", b"X-A: GET /x HTTP/1.1"),  # in a field value
    req(ECHO, TE, body=b"11\r\nGET /x HTTP/1.1\r\n\r\n0\r\n\r\n"),  # in a chunk
])
async def test_the_request_line_check_looks_where_the_line_is(start_server, first):
    # The same bytes earlier in the read must not vouch for "GET  /x HTTP/1.1".
    server = await start_server(make_app())
    resps = await exchange(server.port, first + req(b"GET  /x HTTP/1.1"))
    assert [r.status for r in resps] == [200, 400]
    assert server.app.rec.calls == 1


async def test_empty_lines_before_a_request_line(start_server):
    # 9112 2.2: a server SHOULD ignore at least one empty line received before the request-line.
    server = await start_server(make_app())
    resps = await exchange(server.port, b"\r\n" + req(b"GET /a HTTP/1.1") + b"\r\n\r\n"
                           + req(b"GET  /b HTTP/1.1"))
    assert [r.status for r in resps] == [200, 400]


@pytest.mark.parametrize("header_map, status", [("drop", 200), ("dangerous", 431)])
async def test_limit_request_fields_counts_the_fields_kept(start_server, header_map, status):
    # gunicorn 27 counts the fields it keeps: header_map drop's are not.
    server = await start_server(make_app(), limit_request_fields=3, header_map=header_map)
    [resp] = await exchange(server.port, req(b"GET / HTTP/1.1", b"A_X: 1", b"B_Y: 2", close=True))
    assert resp.status == status


async def test_limit_request_line_is_at_most_8190(start_server):
    # gunicorn 27 reads a limit_request_line over 8190 as 8190.
    server = await start_server(make_app(), limit_request_line=10000)
    [resp] = await exchange(server.port, req(b"GET /" + b"a" * 9000 + b" HTTP/1.1", close=True))
    assert resp.status == 414
    [resp] = await exchange(server.port, req(b"GET /" + b"a" * 8176 + b" HTTP/1.1", close=True))
    assert resp.status == 200  # 3 + 1 + 8177 + 1 + 8 = 8190 bytes


async def test_a_request_line_split_over_reads_is_measured_whole(start_server):
    server = await start_server(make_app(), limit_request_line=30)
    reader, writer = await open_raw(server.port)
    try:
        for part in (b"GET /", b"a" * 16, b" HTTP/1.", b"1\r\nHost: t\r\n\r\n",
                     b"GET /", b"a" * 17, b" HTTP/1.1\r\n"):
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.02)
        resps = await read_responses(reader, 2)
    finally:
        writer.close()
    assert [r.status for r in resps] == [200, 414]  # a line of 30 bytes, then one of 31


async def asgi_echo(scope, receive, send):
    if scope["type"] != "http":
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize("app", [make_app, lambda: asgi_echo], ids=["wsgi", "asgi"])
async def test_a_bad_chunk_in_a_body_being_read_is_answered_at_once(start_server, app):
    # The app already reads the body (past inline_body_max) when a chunk turns out malformed:
    # its reads fail now, and the client gets its 400, as from gunicorn - not a 408 once
    # --body-timeout has passed.
    server = await start_server(app(), inline_body_max=4, body_timeout=30)
    resps = await exchange(server.port, req(ECHO, TE, body=b"10\r\n" + b"a" * 16 + b"\r\nzz\r\n"),
                           timeout=5)
    assert [r.status for r in resps] == [400]


async def test_mixed_pipelined_requests_split_anywhere(start_server):
    # Where each message starts is worked out from where the last one ended, whatever the reads:
    # a request line check that looks in the wrong place answers 400 to one of these.
    import random
    messages = [
        (req(b"GET /a HTTP/1.1"), b"hello GET /a"),
        (b"\r\n" + req(ECHO, b"Content-Length: 5", body=b"hello"), b"hello"),
        (req(ECHO, TE, body=b"3 ; x=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n"), b"abcde"),
        (req(b"GET /b?q=1#f HTTP/1.1", b"X-A: GET /a HTTP/1.1  "), b"hello GET /b"),
        (req(ECHO, b"Content-Length: 17", body=b"GET /a HTTP/1.1\r\n"), b"GET /a HTTP/1.1\r\n"),
        (req(b"GET /up HTTP/1.1", *UPGRADE), b"hello GET /up"),
    ]
    server = await start_server(make_app())
    rng = random.Random(19)
    for _ in range(12):
        chosen = [rng.choice(messages) for _ in range(6)]
        data = b"".join(m for m, _ in chosen) + LAST
        reader, writer = await open_raw(server.port)
        try:
            pos = 0
            while pos < len(data):
                step = rng.choice([1, 2, 3, 5, 8, 13, 40, 200])
                writer.write(data[pos:pos + step])
                pos += step
                await writer.drain()
                if rng.random() < 0.3:
                    await asyncio.sleep(0.001)
            resps = await read_responses(reader, len(chosen) + 1)
        finally:
            writer.close()
        assert [r.body for r in resps] == [body for _, body in chosen] + [b"hello GET /last"]


async def test_what_follows_an_upgrade_waits_for_the_requests_before_it(start_server):
    # A slow request, a slow one asking for an upgrade we do not perform, and the first bytes of
    # the next request in one read; the rest of it while the second runs.  The first one's
    # answer must not resume reading before the bytes held after the upgrade are parsed: the
    # rest would be parsed alone ("ST /echo ...": 400).
    server = await start_server(make_app())
    reader, writer = await open_raw(server.port)
    try:
        writer.write(req(b"GET /slow HTTP/1.1") + req(b"GET /slowup HTTP/1.1", *UPGRADE)
                     + b"\r\nPO")
        await writer.drain()
        await asyncio.sleep(0.8)  # /slow (0.5 s) is answered, /slowup (0.5 s more) runs
        writer.write(req(b"ST /echo HTTP/1.1", b"Content-Length: 2", body=b"ok") + LAST)
        await writer.drain()
        resps = await read_responses(reader, 4)
    finally:
        writer.close()
    assert [(r.status, r.body) for r in resps] == [
        (200, b"/slow"), (200, b"/slowup"), (200, b"ok"), (200, b"hello GET /last")]
