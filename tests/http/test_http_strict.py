"""Parser strictness, h11-style: each case is the exact bytes of one request and the RFC 9112
(or RFC 9110) sentence that makes it invalid.  Every case is sent on a raw socket; the server must
answer with exactly the status given, close the connection, and never call the app.
"""

from __future__ import annotations

import pytest
from apps import make_app
from rawhttp import exchange

H = b"Host: t\r\n"


def req(line: bytes, *fields: bytes, body: bytes = b"", host: bool = True) -> bytes:
    return line + b"\r\n" + (H if host else b"") + b"".join(f + b"\r\n" for f in fields) \
        + b"\r\n" + body


POST = b"POST / HTTP/1.1"

CASES = [
    # name, raw request, status, settings, the rule
    ("cl-and-te", req(POST, b"Content-Length: 5", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
     400, {}, "9112 6.1: a server MAY reject a request that contains both Content-Length and "
     "Transfer-Encoding"),
    ("duplicate-cl", req(POST, b"Content-Length: 5", b"Content-Length: 5", body=b"hello"), 400, {},
     "9112 6.3: invalid Content-Length ... the server MUST respond with a 400"),
    ("cl-plus-sign", req(POST, b"Content-Length: +5", body=b"hello"), 400, {},
     "9110 8.6: Content-Length = 1*DIGIT"),
    ("cl-minus-sign", req(POST, b"Content-Length: -5", body=b"hello"), 400, {},
     "9110 8.6: Content-Length = 1*DIGIT"),
    ("cl-hex", req(POST, b"Content-Length: 0x5", body=b"hello"), 400, {},
     "9110 8.6: Content-Length = 1*DIGIT"),
    ("cl-inner-space", req(POST, b"Content-Length: 5 5", body=b"hello"), 400, {},
     "9110 8.6: Content-Length = 1*DIGIT"),
    ("cl-comma-list", req(POST, b"Content-Length: 5, 5", body=b"hello"), 400, {},
     "9112 6.3: a list of Content-Length values is invalid unless a recipient chooses to merge"),
    ("te-gzip", req(POST, b"Transfer-Encoding: gzip", body=b"hello"), 400, {},
     "9112 6.3: a final coding other than chunked ... the server MUST respond with 400"),
    ("te-unknown-chunked", req(POST, b"Transfer-Encoding: br, chunked", body=b"0\r\n\r\n"),
     501, {}, "9112 6.1: a transfer coding it does not understand SHOULD respond with 501"),
    ("te-chunked-gzip", req(POST, b"Transfer-Encoding: chunked, gzip", body=b"0\r\n\r\n"), 400, {},
     "9112 6.3: chunked is not the final encoding ... the server MUST respond with 400"),
    ("te-xchunked", req(POST, b"Transfer-Encoding: xchunked", body=b"0\r\n\r\n"), 501, {},
     "9112 6.1: a transfer coding it does not understand SHOULD respond with 501"),
    ("te-on-http10", req(b"POST / HTTP/1.0", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
     400, {}, "9112 6.1: a server MUST NOT ... TE in a request with a version below HTTP/1.1 "
     "... treat as faulty"),
    ("bare-cr", b"GET / HTTP/1.1\rHost: t\r\n\r\n", 400, {},
     "9112 2.2: a bare CR ... MUST be considered invalid or replaced with SP"),
    ("bare-lf", b"GET / HTTP/1.1\nHost: t\n\n", 400, {},
     "9112 2.2: a recipient MAY recognize a single LF as a line terminator (we do not)"),
    ("obs-fold", req(b"GET / HTTP/1.1", b"X-A: a", b" b"), 400, {},
     "9112 5.2: a server that receives an obs-fold ... MUST either reject ... with 400"),
    ("space-before-colon", req(b"GET / HTTP/1.1", b"X-A : a"), 400, {},
     "9112 5.1: whitespace between a field name and colon MUST be rejected with 400"),
    ("space-before-first-field", b"GET / HTTP/1.1\r\n Host: t\r\n\r\n", 400, {},
     "9112 2.2: whitespace between the start-line and the first field MUST be rejected"),
    ("bad-name-token", req(b"GET / HTTP/1.1", b"X(A): a"), 400, {},
     "9110 5.1: field-name = token"),
    ("bad-method-token", req(b"G(T / HTTP/1.1"), 400, {}, "9110 9.1: method = token"),
    ("nul-in-value", req(b"GET / HTTP/1.1", b"X-A: a\x00b"), 400, {},
     "9110 5.5: CR, LF or NUL in a field value MUST be rejected or replaced"),
    ("ctl-in-value", req(b"GET / HTTP/1.1", b"X-A: a\x01b"), 400, {},
     "9110 5.5: field-vchar excludes CTLs"),
    ("missing-host", req(b"GET / HTTP/1.1", host=False), 400, {},
     "9112 3.2: an HTTP/1.1 request that lacks a Host header field MUST get 400"),
    ("two-hosts", req(b"GET / HTTP/1.1", b"Host: u"), 400, {},
     "9112 3.2: more than one Host header field line MUST get 400"),
    ("http2-request-line", req(b"GET / HTTP/2.0"), 505, {},
     "9110 15.6.6: 505 for a major version the server does not support"),
    ("h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, {},
     "9113 3.4: prior-knowledge HTTP/2 on an HTTP/1.1 port is not an HTTP/1.1 request"),
    ("http09", b"GET /\r\n\r\n", 400, {}, "9112 3: request-line = method SP target SP version"),
    ("lowercase-version", req(b"GET / http/1.1"), 400, {}, "9112 2.3: HTTP-name is case-sensitive"),
    ("double-space-before-target", req(b"GET  / HTTP/1.1"), 400, {},
     "9112 3: request-line = method SP request-target SP HTTP-version"),
    ("double-space-before-version", req(b"GET /  HTTP/1.1"), 400, {},
     "9112 3: request-line = method SP request-target SP HTTP-version"),
    ("trailing-space", req(b"GET / HTTP/1.1 "), 400, {},
     "9112 3: request-line = method SP request-target SP HTTP-version"),
    ("asterisk-with-get", req(b"GET * HTTP/1.1"), 400, {},
     "9112 3.2.4: asterisk-form is only used for OPTIONS"),
    ("authority-form-get", req(b"GET example.com:80 HTTP/1.1"), 400, {},
     "9112 3.2.3: authority-form is only used for CONNECT"),
    ("connect", req(b"CONNECT example.com:443 HTTP/1.1"), 501, {},
     "9110 9.1: a method the origin server does not implement gets 501"),
    ("chunk-size-not-hex", req(POST, b"Transfer-Encoding: chunked", body=b"zz\r\nhello\r\n0\r\n\r\n"),
     400, {}, "9112 7.1: chunk-size = 1*HEXDIG"),
    ("chunk-size-negative", req(POST, b"Transfer-Encoding: chunked", body=b"-5\r\nhello\r\n0\r\n\r\n"),
     400, {}, "9112 7.1: chunk-size = 1*HEXDIG"),
    ("chunk-size-overflow", req(POST, b"Transfer-Encoding: chunked",
                                body=b"1" + b"0" * 20 + b"\r\nhello\r\n0\r\n\r\n"),
     400, {}, "9112 7.1: recipients MUST ... prevent ... integer conversion overflows"),
    ("chunk-missing-crlf", req(POST, b"Transfer-Encoding: chunked", body=b"5\r\nhelloX0\r\n\r\n"),
     400, {}, "9112 7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF"),
    ("underscore-refused", req(b"GET / HTTP/1.1", b"X_Forwarded_For: 1.2.3.4"), 400,
     {"header_map": "refuse"}, "gunicorn --header-map refuse: underscores are ambiguous in CGI"),
    ("line-too-long", req(b"GET /" + b"a" * 5000 + b" HTTP/1.1"), 414, {},
     "9112 3: a server ... request-target longer than it wishes to parse MUST respond 414"),
    ("too-many-fields", req(b"GET / HTTP/1.1", *[b"X-%d: v" % i for i in range(100)]), 431, {},
     "6585 5: 431 when header fields are too large (limit_request_fields=100, with Host 101)"),
    ("field-too-long", req(b"GET / HTTP/1.1", b"X-A: " + b"v" * 9000), 431, {},
     "6585 5: 431 when a single header field is too large (limit_request_field_size)"),
    ("short-line-limit", req(b"GET /abcdefghij HTTP/1.1"), 414, {"limit_request_line": 20},
     "9112 3: limit_request_line is enforced on the request line"),
    ("few-fields-limit", req(b"GET / HTTP/1.1", b"A: 1", b"B: 2"), 431,
     {"limit_request_fields": 2}, "limit_request_fields counts every field line"),
    ("line-limit-counts-the-line", req(b"GET /abcdefg HTTP/1.1"), 414,
     {"limit_request_line": 20}, "gunicorn 27 counts method SP target SP version: 21 > 20"),
    ("field-size-counts-the-line", req(b"GET / HTTP/1.1", b"X-Aaaaaaa: 123456789"), 431,
     {"limit_request_field_size": 20}, "gunicorn 27 counts the field line and its CRLF: 21"),
    ("field-size-0-is-8190", req(b"GET / HTTP/1.1", b"X-A: " + b"v" * 8184), 431,
     {"limit_request_field_size": 0}, "gunicorn 27: 0 is the default 8190, not unlimited"),
    ("long-field-http10", req(b"GET / HTTP/1.0", b"X-A: " + b"v" * 8184, host=False), 431, {},
     "limit_request_field_size holds whatever the version"),
    ("two-content-types", req(POST, b"Content-Type: a", b"Content-Type: a",
                              b"Content-Length: 0"), 400, {},
     "9110 5.3: Content-Type is not a list: a repeat is ambiguous (gunicorn 27: 400)"),
    ("invalid-host", req(b"GET / HTTP/1.1", host=False) .replace(b"\r\n\r\n",
                                                                 b"\r\nHost: a b\r\n\r\n"),
     400, {}, "9112 3.2: a Host header field with an invalid field value MUST get 400"),
    ("lowercase-method", req(b"get / HTTP/1.1"), 400, {},
     "gunicorn 27 refuses a method outside its conventions (lower case) with 400"),
    ("forbidden-trailer-host", req(POST, b"Transfer-Encoding: chunked",
                                   body=b"0\r\nHost: evil\r\n\r\n"), 400, {},
     "9110 6.5.1: routing fields must not be in a trailer (gunicorn 27: 400)"),
    ("forbidden-trailer-trailer", req(POST, b"Transfer-Encoding: chunked",
                                      body=b"0\r\nTrailer: X\r\n\r\n"), 400, {},
     "9110 6.5.1: fields that describe the message framing must not be in a trailer"),
    ("forbidden-trailer-authorization", req(POST, b"Transfer-Encoding: chunked",
                                            body=b"0\r\nAuthorization: Basic x\r\n\r\n"),
     400, {}, "9110 6.5.1: authentication fields must not be in a trailer"),
    ("forbidden-trailer-te", req(POST, b"Transfer-Encoding: chunked",
                                 body=b"0\r\nTE: trailers\r\n\r\n"), 400, {},
     "9110 6.5.1: fields that control message framing must not be in a trailer"),
    ("forbidden-trailer-cl", req(POST, b"Transfer-Encoding: chunked",
                                 body=b"0\r\ncontent-length: 5\r\n\r\n"), 400, {},
     "9110 6.5.1: Content-Length must not be in a trailer"),
    ("trailer-obs-fold", req(POST, b"Transfer-Encoding: chunked",
                             body=b"0\r\nX-A: a\r\n b\r\n\r\n"), 400, {},
     "9112 5.2: obs-fold in a trailer section is rejected as in the header section"),
    ("trailer-ctl", req(POST, b"Transfer-Encoding: chunked", body=b"0\r\nX-A: a\x01b\r\n\r\n"),
     400, {}, "9110 5.5: field values have no CTLs, in trailers too"),
    ("trailer-bare-lf", req(POST, b"Transfer-Encoding: chunked", body=b"0\r\nX-A: a\n\r\n\r\n"),
     400, {}, "9112 2.2: lines end with CRLF"),
    ("chunk-ext-bare-cr", req(POST, b"Transfer-Encoding: chunked",
                              body=b"5;a=b\rc\r\nhello\r\n0\r\n\r\n"), 400, {},
     "9112 2.2: a bare CR MUST be considered invalid"),
    ("chunk-ext-bad-name", req(POST, b"Transfer-Encoding: chunked",
                               body=b"5;=b\r\nhello\r\n0\r\n\r\n"), 400, {},
     "9112 7.1.1: chunk-ext-name = token"),
    ("chunk-ext-space-in-value", req(POST, b"Transfer-Encoding: chunked",
                                     body=b"5;a=b c\r\nhello\r\n0\r\n\r\n"), 400, {},
     "9112 7.1.1: chunk-ext-val = token / quoted-string"),
    ("chunk-size-trailing-space", req(POST, b"Transfer-Encoding: chunked",
                                      body=b"5 \r\nhello\r\n0\r\n\r\n"), 400, {},
     "9112 7.1.1: BWS only before a chunk extension"),
    ("chunk-size-line-too-long", req(POST, b"Transfer-Encoding: chunked",
                                     body=b"5;a=" + b"b" * 9000 + b"\r\nhello\r\n0\r\n\r\n"),
     400, {}, "gunicorn 27: a chunk size line is bounded by limit_request_field_size"),
    ("chunk-cl-and-te-list", req(POST, b"Transfer-Encoding: gzip, chunked", b"Content-Length: 5",
                                 body=b"0\r\n\r\n"), 400, {},
     "9112 6.1: Content-Length with Transfer-Encoding, whatever the codings"),
    ("two-empty-lines-before", b"\r\n\r\n" + req(b"GET / HTTP/1.1"), 400, {},
     "9112 2.2: a server SHOULD ignore at least one empty line before the request-line (one "
     "is, as in gunicorn; the second begins a request line that is not one)"),
    ("lf-before", b"\n" + req(b"GET / HTTP/1.1"), 400, {},
     "9112 2.2: the empty line ignored is a CRLF; a bare LF is not one"),
    ("cr-before", b"\r" + req(b"GET / HTTP/1.1"), 400, {}, "9112 2.2: a bare CR is invalid"),
    ("no-version", b"GET /\r\nHost: t\r\n", 400, {},
     "9112 3: request-line = method SP request-target SP HTTP-version; refused at the line's "
     "end, without waiting for a head that never ends"),
    ("absolute-form-ipv6-unclosed", req(b"GET http://[::1/x HTTP/1.1"), 400, {},
     "RFC 3986 3.2.2: an IP-literal is enclosed in brackets"),
]


@pytest.mark.parametrize("raw, status, settings",
                         [pytest.param(c[1], c[2], c[3], id=c[0]) for c in CASES])
async def test_rejected_before_the_app(start_server, raw, status, settings):
    app = make_app()
    server = await start_server(app, header_timeout=3, **settings)
    resps = await exchange(server.port, raw)
    assert [r.status for r in resps] == [status], resps
    assert resps[0].headers["connection"] == "close"
    assert app.rec.calls == 0
    # The server goes on serving good requests.
    [good] = await exchange(server.port, b"GET /good HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert good.status == 200 and good.body == b"hello GET /good"
    assert app.rec.calls == 1


async def test_pipelined_bad_request_line_is_caught_mid_buffer(start_server):
    app = make_app()
    server = await start_server(app)
    resps = await exchange(server.port, req(b"GET /one HTTP/1.1") + req(b"GET  /two HTTP/1.1"))
    assert [r.status for r in resps] == [200, 400]
    assert app.rec.calls == 1


async def test_request_line_split_across_packets_is_accepted(start_server):
    import asyncio

    from rawhttp import open_raw, read_responses
    server = await start_server(make_app())
    reader, writer = await open_raw(server.port)
    try:
        for part in (b"GE", b"T /sp", b"lit HTT", b"P/1.1\r", b"\nHost: t\r\n\r\n",
                     b"GET /b HTTP/1.1\r\nHost: t\r\n\r\nGET /c ", b"HTTP/1.1\r\nHost: t\r\n\r\n"):
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.02)
        resps = await read_responses(reader, 3)
        assert [r.body for r in resps] == [b"hello GET /split", b"hello GET /b", b"hello GET /c"]
    finally:
        writer.close()


@pytest.mark.parametrize("header_map, seen", [("drop", None), ("dangerous", "1.2.3.4")])
async def test_underscore_header_names(start_server, header_map, seen):
    import json
    server = await start_server(make_app(), header_map=header_map)
    [resp] = await exchange(server.port, req(b"GET /env HTTP/1.1", b"X_Forwarded_For: 1.2.3.4",
                                             b"Connection: close"))
    assert resp.status == 200
    assert json.loads(resp.body).get("HTTP_X_FORWARDED_FOR") == seen


async def test_underscore_content_length_is_not_the_content_length(start_server):
    # gunicorn's own corpus (valid/040_compat): under dangerous, Content_Length is kept as
    # HTTP_CONTENT_LENGTH; CONTENT_LENGTH stays the framing's, never "7,-1E23".
    import json
    server = await start_server(make_app(), header_map="dangerous")
    [resp] = await exchange(server.port, req(b"POST /env HTTP/1.1", b"Content-Length: 2",
                                             b"Content_Length: -1E23", b"Content_Type: x/y",
                                             b"Connection: close", body=b"ok"))
    env = json.loads(resp.body)
    assert (env["CONTENT_LENGTH"], env["HTTP_CONTENT_LENGTH"]) == ("2", "-1E23")
    assert ("CONTENT_TYPE" in env, env["HTTP_CONTENT_TYPE"]) == (False, "x/y")


async def test_one_empty_line_is_ignored_before_a_request_line(start_server):
    # RFC 9112 2.2, even when the CRLF comes in pieces and after a response; a second one is
    # refused after the requests before it are answered.
    import asyncio

    from rawhttp import open_raw, read_all, read_responses
    app = make_app()
    server = await start_server(app)
    reader, writer = await open_raw(server.port)
    try:
        for part in (b"\r", b"\nGET /a HTTP/1.1\r\nHost: t\r\n\r\n\r", b"\n",
                     b"GET /b HTTP/1.1\r\nHost: t\r\n\r\n\r\n", b"\r\n"):
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.02)
        resps = await read_responses(reader, 3)
        assert [(r.status, r.body) for r in resps[:2]] == [(200, b"hello GET /a"),
                                                           (200, b"hello GET /b")]
        assert [r.status for r in resps[2:]] == [400]
        assert await read_all(reader) == b""
        assert app.rec.calls == 2
    finally:
        writer.close()
