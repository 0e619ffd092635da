"""The differential test's corpus (tests/parity): raw requests, each with the RFC 9112 / 9110
sentence it exercises or the reason it is here. gunicorn and unicorn_aio get the same bytes;
tests/parity/test_gunicorn_parity.py compares what they did.

Valid requests of every shape come first, then invalid ones (framing and smuggling, syntax,
limits). A case's id is what oracle_differences.py and docs/gunicorn-differences.md name.
Every case is complete: a request the servers should wait on is one that says so.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    id: str
    raw: bytes
    why: str
    methods: tuple[str, ...] = ()   # request methods in order, where a HEAD changes the framing


H = b"Host: t\r\n"


def req(line: bytes, *fields: bytes, body: bytes = b"", host: bool = True) -> bytes:
    return line + b"\r\n" + (H if host else b"") + b"".join(f + b"\r\n" for f in fields) \
        + b"\r\n" + body


GET = b"GET / HTTP/1.1"
POST = b"POST /p HTTP/1.1"
TE = b"Transfer-Encoding: chunked"


def chunked(body: bytes, *fields: bytes) -> bytes:
    return req(POST, TE, *fields, body=body)


VALID = [
    # --- request line and targets
    Case("get-origin", req(GET), "9112 3.2.1: origin-form = absolute-path [ \"?\" query ]"),
    Case("get-query", req(b"GET /p/q?a=1&b=%20&c HTTP/1.1"), "9112 3.2.1: the query is kept as sent"),
    Case("get-empty-query", req(b"GET /p? HTTP/1.1"), "9110 4.2.3: an empty query is a query"),
    Case("percent-path", req(b"GET /a%20b/%41 HTTP/1.1"),
         "PEP 3333 / CGI: PATH_INFO is the decoded path"),
    Case("percent-slash", req(b"GET /a%2Fb HTTP/1.1"), "a %2F decodes into PATH_INFO as '/'"),
    Case("percent-utf8", req(b"GET /caf%C3%A9 HTTP/1.1"), "PEP 3333: PATH_INFO bytes as latin-1"),
    Case("percent-invalid", req(b"GET /a%zzb%4 HTTP/1.1"), "an invalid %-escape is left as it is"),
    Case("percent-nul", req(b"GET /a%00b HTTP/1.1"), "a %00 is data in the target, decoded"),
    Case("double-slash", req(b"GET //a//b HTTP/1.1"), "9112 3.2.1: '//a' is an absolute-path, "
         "not an authority"),
    Case("dot-segments", req(b"GET /a/../b/./c HTTP/1.1"), "dot segments reach the app as sent"),
    Case("sub-delims", req(b"GET /a;p=1,2/$!'()*+=@:~ HTTP/1.1"),
         "9110 4.1: pchar includes sub-delims, ':' and '@'"),
    Case("absolute-form", req(b"GET http://t/abs?q=1 HTTP/1.1"),
         "9112 3.2.2: a server MUST accept the absolute-form in requests"),
    Case("absolute-form-other-host", req(b"GET http://other.example/x HTTP/1.1"),
         "9112 3.2.2: the server MUST ignore the Host field and use the target's host"),
    Case("absolute-form-https", req(b"GET https://t/s HTTP/1.1"),
         "9112 3.2.2: absolute-form with another scheme; the connection's scheme stays http"),
    Case("absolute-form-scheme-chars", req(b"GET a-b+c.d://t/x HTTP/1.1"),
         "3986 3.1: scheme = ALPHA *( ALPHA / DIGIT / \"+\" / \"-\" / \".\" )"),
    Case("absolute-form-no-path", req(b"GET http://t HTTP/1.1"),
         "9112 3.2.2: an absolute-form with an empty path"),
    Case("asterisk-options", req(b"OPTIONS * HTTP/1.1"),
         "9112 3.2.4: asterisk-form is only used for a server-wide OPTIONS request"),
    Case("options-path", req(b"OPTIONS /p HTTP/1.1"), "9110 9.3.7: OPTIONS on a resource"),
    Case("leading-crlf", b"\r\n" + req(GET),
         "9112 2.2: a server SHOULD ignore at least one empty line (CRLF) before the request-line"),
    Case("long-target", req(b"GET /" + b"a" * 3000 + b" HTTP/1.1"), "a 3 KB target, under the limits"),
    Case("line-at-limit", req(b"GET /" + b"a" * (4094 - 14) + b" HTTP/1.1"),
         "limit_request_line (4094, gunicorn's default): a request line of exactly the limit"),
    # --- methods
    Case("head", req(b"HEAD /h HTTP/1.1"), "9110 9.3.2: HEAD", ("HEAD",)),
    Case("post-length", req(POST, b"Content-Length: 5", body=b"hello"), "9112 6.2: Content-Length"),
    Case("put", req(b"PUT /p HTTP/1.1", b"Content-Length: 3", body=b"abc"), "9110 9.3.4: PUT"),
    Case("delete", req(b"DELETE /p HTTP/1.1"), "9110 9.3.5: DELETE"),
    Case("patch", req(b"PATCH /p HTTP/1.1", b"Content-Length: 2", body=b"{}"), "5789: PATCH"),
    Case("trace", req(b"TRACE /p HTTP/1.1"), "9110 9.3.8: TRACE"),
    Case("connect", req(b"CONNECT t:443 HTTP/1.1"),
         "9112 3.2.3: authority-form is only used for CONNECT requests"),
    Case("webdav-method", req(b"PROPFIND /p HTTP/1.1"), "4918: a registered method"),
    Case("extension-method", req(b"FROB /p HTTP/1.1"),
         "9110 9.1: method = token; the set of methods is extensible"),
    Case("extension-method-symbols", req(b"M-SEARCH * HTTP/1.1"),
         "9110 5.6.2: tchar includes '-' (UPnP's M-SEARCH uses asterisk-form)"),
    Case("get-with-body", req(GET, b"Content-Length: 3", body=b"abc"),
         "9110 9.3.1: a GET body has no defined semantics, but is framed by Content-Length"),
    # --- fields
    Case("ows-around-value", req(GET, b"X-A:   v  ", b"X-B:\tw\t"),
         "9112 5.1: OWS before and after the field value is excluded from it"),
    Case("empty-value", req(GET, b"X-Empty:"), "9110 5.5: field-value = *field-content (may be empty)"),
    Case("ows-only-value", req(GET, b"X-Empty:   "), "9112 5.1: an all-OWS value is empty"),
    Case("inner-spaces", req(GET, b"X-A: a  b\tc"), "9110 5.5: SP and HTAB inside a value are kept"),
    Case("repeated-field", req(GET, b"X-A: 1", b"X-A: 2"),
         "9110 5.3: repeated field lines combine into one comma-separated list, in order"),
    Case("repeated-field-case", req(GET, b"x-a: 1", b"X-A: 2"),
         "9110 5.1: field names are case-insensitive"),
    Case("name-case", req(GET, b"x-lower: 1", b"X-UPPER: 2", b"X-MiXeD: 3"),
         "9110 5.1: field names are case-insensitive"),
    Case("name-token-chars", req(GET, b"X!#$%&'*+.^`|~A: 1"), "9110 5.6.2: tchar"),
    Case("obs-text-value", req(GET, b"X-A: caf\xe9 \x80\xff"),
         "9110 5.5: obs-text is allowed in a field value (latin-1 in the environ)"),
    Case("quoted-value", req(GET, b'X-A: "a, b", c'), "9110 5.6.4: a quoted-string is a value"),
    Case("content-type", req(POST, b"Content-Type: text/plain; charset=utf-8", b"Content-Length: 1",
                             body=b"x"), "CGI: CONTENT_TYPE"),
    Case("cookies", req(GET, b"Cookie: a=1", b"Cookie: b=2"),
         "9110 5.3: repeated fields join with ',' (Cookie included, as in gunicorn)"),
    Case("underscore-name", req(GET, b"X_Forwarded_For: 1.2.3.4"),
         "gunicorn's header_map=drop: a name with '_' could pose as a '-' name in the environ"),
    Case("many-fields", req(GET, *[b"X-%d: v" % i for i in range(98)]),
         "limit_request_fields (100): Host and 98 more fields, 99 in all"),
    Case("fields-at-limit", req(GET, *[b"X-%d: v" % i for i in range(99)]),
         "limit_request_fields (100): exactly the limit, Host included"),
    Case("field-at-limit", req(GET, b"X-A: " + b"v" * 8183),
         "limit_request_field_size (8190): a field line of exactly the limit, CRLF included"),
    Case("user-agent", req(GET, b"User-Agent: Mozilla/5.0 (X11; Linux x86_64)", b"Accept: */*"),
         "a browser's request"),
    Case("host-with-port", req(GET, b"Host: t:8080", host=False),
         "9110 7.2: Host = uri-host [ \":\" port ]"),
    Case("host-ipv6", req(GET, b"Host: [::1]:80", host=False), "9110 7.2: an IP-literal host"),
    Case("host-empty", req(GET, b"Host:", host=False),
         "9110 7.2: a target without authority is sent with an empty Host"),
    Case("http10-no-host", req(b"GET / HTTP/1.0", host=False),
         "9112 3.2: Host is required only of HTTP/1.1 requests"),
    # --- Content-Length
    Case("length-zero", req(POST, b"Content-Length: 0"), "9110 8.6: Content-Length: 0"),
    Case("length-leading-zeros", req(POST, b"Content-Length: 005", body=b"hello"),
         "9110 8.6: Content-Length = 1*DIGIT (leading zeros are digits)"),
    Case("length-ows", req(POST, b"Content-Length:  5 ", body=b"hello"),
         "9112 5.1: OWS around the value is not part of it"),
    Case("length-large-body", req(POST, b"Content-Length: 70000", body=b"b" * 70000),
         "a body larger than a socket read"),
    Case("binary-body", req(POST, b"Content-Length: 6", body=b"\x00\r\n\xff\r\n"),
         "9110 6.4: content is opaque bytes"),
    # --- chunked
    Case("chunked", chunked(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), "9112 7.1: chunked"),
    Case("chunked-empty", chunked(b"0\r\n\r\n"), "9112 7.1: last-chunk only"),
    Case("chunked-upper-hex", chunked(b"A\r\n0123456789\r\n0\r\n\r\n"), "9112 7.1: HEXDIG either case"),
    Case("chunked-lower-hex", chunked(b"a\r\n0123456789\r\n0\r\n\r\n"), "9112 7.1: HEXDIG either case"),
    Case("chunked-leading-zeros", chunked(b"0005\r\nhello\r\n000\r\n\r\n"),
         "9112 7.1: chunk-size = 1*HEXDIG (leading zeros are digits)"),
    Case("chunked-ext", chunked(b"5;name=value\r\nhello\r\n0;last\r\n\r\n"),
         "9112 7.1.1: a recipient MUST ignore unrecognized chunk extensions"),
    Case("chunked-ext-quoted", chunked(b'5;n="a b;c"\r\nhello\r\n0\r\n\r\n'),
         "9112 7.1.1: chunk-ext-val = token / quoted-string"),
    Case("chunked-ext-bws", chunked(b"5 ; n = v\r\nhello\r\n0\r\n\r\n"),
         "9112 7.1.1: chunk-ext = *( BWS \";\" BWS chunk-ext-name [ BWS \"=\" BWS chunk-ext-val ] )"),
    Case("chunked-trailers", chunked(b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\nX-Other: 2\r\n\r\n"),
         "9112 7.1.2: a trailer section after the last chunk"),
    Case("chunked-te-case", req(POST, b"Transfer-Encoding: Chunked", body=b"1\r\na\r\n0\r\n\r\n"),
         "9112 7: transfer-coding names are case-insensitive"),
    Case("chunked-te-list", req(POST, b"Transfer-Encoding: gzip, chunked", body=b"1\r\na\r\n0\r\n\r\n"),
         "9112 6.1: a coding list whose final coding is chunked"),
    Case("chunked-te-repeated", req(POST, b"Transfer-Encoding: gzip", TE, body=b"1\r\na\r\n0\r\n\r\n"),
         "9110 5.3: two Transfer-Encoding lines are one list, chunked last"),
    Case("chunked-many", chunked(b"".join(b"1\r\n%c\r\n" % c for c in b"abcdefghij") + b"0\r\n\r\n"),
         "9112 7.1: many small chunks"),
    # --- Expect, versions, connections, proxies
    Case("expect-continue-waits", req(POST, b"Content-Length: 3", b"Expect: 100-continue"),
         "9110 10.1.1: a server MUST send 100 (Continue) or a final status when the content is "
         "still to come (the body is never sent here: both wait, having said 100)"),
    Case("expect-continue-no-body", req(POST, b"Content-Length: 0", b"Expect: 100-continue"),
         "9110 10.1.1: 100-continue with no content to follow"),
    Case("absolute-form-port", req(b"GET http://t:8080/x?y HTTP/1.1"), "9112 3.2.2: with a port"),
    Case("absolute-form-upper-scheme", req(b"GET HTTP://T/x HTTP/1.1"),
         "3986 3.1: schemes are case-insensitive"),
    Case("query-odd-chars", req(b"GET /p?a=b?c/d&e=%zz&f=%41 HTTP/1.1"),
         "3986 3.4: '?' and '/' may appear in a query; the query is not decoded"),
    Case("percent-at-end", req(b"GET /a% HTTP/1.1"), "an unfinished %-escape is left as it is"),
    Case("header-digits-name", req(GET, b"X-1-2: v"), "9110 5.6.2: tchar includes DIGIT"),
    Case("host-lowercase-name", req(GET, b"host: t", host=False), "9110 5.1: names are case-insensitive"),
    Case("connection-keep-alive-11", req(GET, b"Connection: keep-alive"), "9112 9.3: the default in 1.1"),
    Case("http10-close", req(b"GET / HTTP/1.0", b"Connection: close"), "9112 9.6: close"),
    Case("upgrade-h2c", req(GET, b"Connection: Upgrade, HTTP2-Settings", b"Upgrade: h2c",
                            b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"),
         "9113 3.1 (obsoleted h2c): a server without HTTP/2 MAY ignore Upgrade"),
    Case("forwarded-proto", req(GET, b"X-Forwarded-Proto: https"),
         "gunicorn's forwarded_allow_ips default trusts 127.0.0.1: its scheme headers count"),
    Case("forwarded-ssl", req(GET, b"X-Forwarded-Ssl: on"), "as forwarded-proto"),
    Case("forwarded-for", req(GET, b"X-Forwarded-For: 10.0.0.1"), "X-Forwarded-For reaches the app"),
    Case("delete-with-body", req(b"DELETE /p HTTP/1.1", b"Content-Length: 2", body=b"{}"),
         "9110 9.3.5: DELETE content has no defined semantics, but is framed"),
    Case("options-with-body", req(b"OPTIONS * HTTP/1.1", b"Content-Length: 2", body=b"ab"),
         "9110 9.3.7: OPTIONS content is framed by Content-Length"),
    Case("chunked-ext-escaped-quote", chunked(b'5;n="a\\"b"\r\nhello\r\n0\r\n\r\n'),
         "9110 5.6.4: quoted-pair inside a quoted chunk-ext-val"),
    Case("chunked-data-crlf", chunked(b"4\r\n\r\n\r\n\r\n0\r\n\r\n"), "chunk data is opaque, CRLF included"),
    Case("chunked-big", chunked(b"10000\r\n" + b"c" * 0x10000 + b"\r\n0\r\n\r\n"), "a 64 KiB chunk"),
    Case("expect-continue", req(POST, b"Content-Length: 3", b"Expect: 100-continue", body=b"abc"),
         "9110 10.1.1: 100-continue; the body follows at once here"),
    Case("expect-continue-case", req(POST, b"Content-Length: 3", b"Expect: 100-Continue", body=b"abc"),
         "9110 10.1.1: the Expect field value is case-insensitive"),
    Case("expect-continue-http10", req(b"POST / HTTP/1.0", b"Content-Length: 3",
                                       b"Expect: 100-continue", body=b"abc"),
         "9110 10.1.1: a 100-continue in an HTTP/1.0 request MUST be ignored"),
    Case("http10", req(b"GET / HTTP/1.0"), "9112 9.3: HTTP/1.0 closes unless keep-alive is asked"),
    Case("http10-keep-alive", req(b"GET / HTTP/1.0", b"Connection: keep-alive"),
         "9112 9.3: an HTTP/1.0 keep-alive request is kept open"),
    Case("http10-post", req(b"POST / HTTP/1.0", b"Content-Length: 2", body=b"hi"), "HTTP/1.0 POST"),
    Case("connection-close", req(GET, b"Connection: close"),
         "9112 9.6: a server that receives close MUST close after the response"),
    Case("connection-close-case", req(GET, b"Connection: Close"),
         "9110 7.6.1: connection options are case-insensitive"),
    Case("connection-list", req(GET, b"Connection: keep-alive, x-opt", b"X-Opt: 1"),
         "9110 7.6.1: Connection is a list of options"),
    Case("upgrade-ignored", req(GET, b"Connection: Upgrade", b"Upgrade: websocket"),
         "9110 7.8: a server MAY ignore Upgrade; the WSGI app answers"),
    Case("te-trailers", req(GET, b"TE: trailers", b"Connection: TE"), "9110 10.1.4: TE in a request"),
    Case("http-minor-version", req(b"GET / HTTP/1.2"),
         "9110 2.5: a recipient of a higher minor version SHOULD process it as the highest it "
         "conforms to"),
    # --- more shapes (methods, targets, fields, codings, proxies)
    Case("method-query", req(b"QUERY /p HTTP/1.1", b"Content-Length: 2", body=b"q="),
         "the QUERY method (httpbis draft), a safe method with content"),
    Case("method-purge", req(b"PURGE /p HTTP/1.1"), "a method caches use"),
    Case("method-mkcalendar", req(b"MKCALENDAR /p HTTP/1.1"), "4791: a registered method"),
    Case("pri-method", req(b"PRI /p HTTP/1.1"), "9110 9.1: PRI is a token; only 'PRI * HTTP/2.0' is "
         "HTTP/2's preface"),
    Case("target-printable-odd", req(b'GET /"<>\\^`{|} HTTP/1.1'),
         "printable ASCII outside 3986's set: gunicorn passes it (3986 2 would have it encoded)"),
    Case("query-utf8", req(b"GET /?q=\xc3\xa9 HTTP/1.1"), "3986 2: a raw UTF-8 byte in the query"),
    Case("query-ctl", req(b"GET /?a=\x01 HTTP/1.1"), "3986 2: a CTL in the query"),
    Case("version-leading-zero", req(b"GET / HTTP/1.01"), "9112 2.3: DIGIT \".\" DIGIT, one each"),
    Case("long-field-name", req(GET, b"X-" + b"n" * 8000 + b": v"), "a field name of 8 KB"),
    Case("host-ip-port", req(GET, b"Host: 127.0.0.1:80", host=False), "9110 7.2: an IPv4 host"),
    Case("host-ows", req(GET, b"Host:  t  ", host=False), "9112 5.1: OWS around the Host value"),
    Case("vt-in-value", req(GET, b"X-A: \x0bv"), "9110 5.5: VT is a CTL"),
    Case("cl-trailing-comma", req(POST, b"Content-Length: 5,", body=b"hello"), "9110 8.6: 1*DIGIT"),
    Case("te-upper", req(POST, b"Transfer-Encoding: CHUNKED", body=b"0\r\n\r\n"),
         "9112 7: coding names are case-insensitive"),
    Case("te-identity-chunked", req(POST, b"Transfer-Encoding: identity, chunked", body=b"0\r\n\r\n"),
         "gunicorn accepts identity before chunked"),
    Case("te-deflate-chunked", req(POST, b"Transfer-Encoding: deflate, chunked", body=b"1\r\na\r\n0\r\n\r\n"),
         "9112 6.1: a coding list ending with chunked"),
    Case("chunked-ext-many", chunked(b"5;a;b=1;c\r\nhello\r\n0\r\n\r\n"), "9112 7.1.1: *( ... chunk-ext )"),
    Case("chunked-ext-tab-bws", chunked(b"5\t;a\r\nhello\r\n0\r\n\r\n"), "9112 7.1.1: BWS is SP or HTAB"),
    Case("chunk-ext-at-limit", chunked(b"5;a=" + b"x" * 8180 + b"\r\nhello\r\n0\r\n\r\n"),
         "a chunk-size line of 8186 bytes, within limit_request_field_size (8190)"),
    Case("trailer-content-type", chunked(b"5\r\nhello\r\n0\r\nContent-Type: x/y\r\n\r\n"),
         "9110 6.5.1: a field not forbidden in trailers"),
    Case("expect-twice", req(POST, b"Content-Length: 1", b"Expect: 100-continue", b"Expect: 100-continue",
                             body=b"a"), "9110 10.1.1: one expectation, sent twice"),
    Case("expect-on-get", req(GET, b"Expect: 100-continue"), "9110 10.1.1: 100-continue with no content"),
    Case("connection-closex", req(GET, b"Connection: closex"), "9110 7.6.1: 'closex' is not 'close'"),
    Case("websocket-handshake", req(GET, b"Connection: Upgrade", b"Upgrade: websocket",
                                    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                                    b"Sec-WebSocket-Version: 13"),
         "6455 4.2: a WSGI app answers the handshake as any request"),
    Case("forwarded-proto-upper", req(GET, b"X-Forwarded-Proto: HTTPS"),
         "gunicorn compares secure_scheme_headers values exactly"),
    Case("forwarded-protocol", req(GET, b"X-Forwarded-Protocol: ssl"), "a secure_scheme_headers default"),
    Case("forwarded-rfc7239", req(GET, b"Forwarded: proto=https;for=1.2.3.4"),
         "7239: not among gunicorn's scheme headers"),
    Case("script-name-header", req(b"GET /a/b HTTP/1.1", b"SCRIPT_NAME: /a"),
         "gunicorn's forwarder_headers (trusted 127.0.0.1): SCRIPT_NAME from a proxy"),
    Case("path-info-header", req(b"GET /a/b HTTP/1.1", b"PATH_INFO: /zzz"),
         "a PATH_INFO field does not replace the path"),
    Case("head-with-body", req(b"HEAD / HTTP/1.1", b"Content-Length: 3", body=b"abc") + req(GET),
         "9110 9.3.2: a HEAD body is framed like any", ("HEAD", "GET")),
    Case("get-body-pipelined", req(GET, b"Content-Length: 1", body=b"a") + req(b"GET /2 HTTP/1.1"),
         "9112 6.3: the next request starts after Content-Length bytes"),
    Case("post-no-length", req(POST, body=b"abc"),
         "9112 6.3: a request without length has no content; 'abc' begins the next request"),
    Case("head-near-limit", req(GET, *[b"X-%d: " % i + b"v" * 7000 for i in range(40)]),
         "a 280 KB head, each field under limit_request_field_size"),
    # --- pipelining
    Case("pipelined-get-get", req(b"GET /1 HTTP/1.1") + req(b"GET /2 HTTP/1.1"),
         "9112 9.3.2: a server MAY process pipelined requests, responses in order"),
    Case("pipelined-post-get", req(POST, b"Content-Length: 3", body=b"abc") + req(b"GET /2 HTTP/1.1"),
         "9112 9.3.2: the first body ends where Content-Length says"),
    Case("pipelined-chunked-get", chunked(b"3\r\nabc\r\n0\r\n\r\n") + req(b"GET /2 HTTP/1.1"),
         "9112 7.1: the chunked body ends at the trailer section's end"),
    Case("pipelined-three", req(b"GET /1 HTTP/1.1") + req(b"HEAD /2 HTTP/1.1")
         + req(b"GET /3 HTTP/1.1"), "9112 9.3.2: three at once", ("GET", "HEAD", "GET")),
    Case("pipelined-close-first", req(b"GET /1 HTTP/1.1", b"Connection: close")
         + req(b"GET /2 HTTP/1.1"), "9112 9.6: nothing after a close is served"),
    Case("pipelined-http10", req(b"GET /1 HTTP/1.0") + req(b"GET /2 HTTP/1.1"),
         "9112 9.3: an HTTP/1.0 request without keep-alive ends the connection"),
    Case("pipelined-two-empty-lines", req(b"GET /1 HTTP/1.1") + b"\r\n\r\n" + req(b"GET /2 HTTP/1.1"),
         "9112 2.2: at least one empty line before a request-line SHOULD be ignored; here two"),
    Case("trailing-empty-lines", req(GET) + b"\r\n\r\n",
         "9112 2.2: empty lines after a request, before any next one"),
    Case("pipelined-extra-body-bytes", req(POST, b"Content-Length: 3", body=b"abc") + b"\r\n"
         + req(b"GET /2 HTTP/1.1"), "9112 2.2: an empty line before the next request is ignored"),
]

INVALID = [
    # --- framing and smuggling
    Case("cl-and-te", req(POST, b"Content-Length: 5", TE, body=b"0\r\n\r\n"),
         "9112 6.1: a server MAY reject a request with both Content-Length and Transfer-Encoding "
         "(a smuggling vector); 6.3: it MUST close the connection after responding"),
    Case("te-and-cl", req(POST, TE, b"Content-Length: 5", body=b"0\r\n\r\n"),
         "9112 6.1: both fields, the other order"),
    Case("duplicate-cl", req(POST, b"Content-Length: 5", b"Content-Length: 5", body=b"hello"),
         "9112 6.3: an invalid Content-Length ... the server MUST respond with 400 and close"),
    Case("conflicting-cl", req(POST, b"Content-Length: 5", b"Content-Length: 6", body=b"hello!"),
         "9112 6.3: differing Content-Length values: 400 and close"),
    Case("cl-list", req(POST, b"Content-Length: 5, 5", body=b"hello"),
         "9110 8.6: a list of identical values MAY be merged; gunicorn refuses it"),
    Case("cl-plus", req(POST, b"Content-Length: +5", body=b"hello"), "9110 8.6: 1*DIGIT"),
    Case("cl-minus", req(POST, b"Content-Length: -5", body=b"hello"), "9110 8.6: 1*DIGIT"),
    Case("cl-hex", req(POST, b"Content-Length: 0x5", body=b"hello"), "9110 8.6: 1*DIGIT"),
    Case("cl-inner-space", req(POST, b"Content-Length: 5 5", body=b"hello"), "9110 8.6: 1*DIGIT"),
    Case("cl-empty", req(POST, b"Content-Length:", body=b"hello"), "9110 8.6: 1*DIGIT"),
    Case("cl-unicode-digit", req(POST, b"Content-Length: \xb2", body=b"he"),
         "9110 8.6: DIGIT is ASCII 0-9 (latin-1 superscript two is not)"),
    Case("cl-huge", req(POST, b"Content-Length: 99999999999999999999999", body=b"hello"),
         "9110 8.6: a recipient MUST anticipate large numerals and prevent conversion overflows"),
    Case("te-identity", req(POST, b"Transfer-Encoding: identity", body=b"hello"),
         "9112 6.3: a Transfer-Encoding whose final coding is not chunked: 400 and close"),
    Case("te-gzip", req(POST, b"Transfer-Encoding: gzip", body=b"hello"),
         "9112 6.3: final coding not chunked: 400 (6.1: an unknown coding SHOULD get 501)"),
    Case("te-chunked-gzip", req(POST, b"Transfer-Encoding: chunked, gzip", body=b"0\r\n\r\n"),
         "9112 6.3: chunked is not the final coding: 400 and close"),
    Case("te-chunked-chunked", req(POST, b"Transfer-Encoding: chunked, chunked", body=b"0\r\n\r\n"),
         "9112 6.1: a sender MUST NOT apply chunked more than once"),
    Case("te-chunked-twice-lines", req(POST, TE, TE, body=b"0\r\n\r\n"),
         "9112 6.1: chunked twice, on two lines"),
    Case("te-unknown", req(POST, b"Transfer-Encoding: xchunked", body=b"0\r\n\r\n"),
         "9112 6.1: an unknown transfer coding SHOULD get 501"),
    Case("te-empty", req(POST, b"Transfer-Encoding:", body=b"0\r\n\r\n"),
         "9112 6.1: Transfer-Encoding = #transfer-coding with no coding"),
    Case("te-http10", req(b"POST / HTTP/1.0", TE, body=b"0\r\n\r\n"),
         "9112 6.1: TE in an HTTP/1.0 request: treat as faulty framing, close"),
    Case("te-space-name", req(POST, b"Transfer-Encoding : chunked", body=b"0\r\n\r\n"),
         "9112 5.1: whitespace before the colon MUST be rejected (a smuggling vector)"),
    Case("te-vertical-tab", req(POST, b"Transfer-Encoding: \x0bchunked", body=b"0\r\n\r\n"),
         "9110 5.5: a CTL in a value; a proxy may read 'chunked' here"),
    Case("pri-preface-line", req(b"PRI * HTTP/2.0"), "9113 3.4: the HTTP/2 preface's first line"),
    Case("te-trailing-comma", req(POST, b"Transfer-Encoding: chunked,", body=b"0\r\n\r\n"),
         "9110 5.6.1: an empty list element; both refuse a framing field in this shape"),
    Case("chunk-ext-over-limit", chunked(b"5;a=" + b"x" * 8190 + b"\r\nhello\r\n0\r\n\r\n"),
         "9112 7.1.1: a server ought to limit chunk extensions and answer 4xx past the limit"),
    Case("connection-close-in-list", req(GET, b"Connection: keep-alive, close"),
         "9112 9.6: a server that receives a close option MUST close after the response"),
    Case("connection-close-second-line", req(GET, b"Connection: keep-alive", b"Connection: close"),
         "9110 5.3: two Connection lines are one list, close in it"),
    Case("http10-keep-alive-list", req(b"GET / HTTP/1.0", b"Connection: keep-alive, x-opt"),
         "9112 9.3: HTTP/1.0 persists when keep-alive is among the options"),
    Case("script-name-outside-path", req(b"GET /x HTTP/1.1", b"SCRIPT_NAME: /a"),
         "a proxy's SCRIPT_NAME that the path is not under"),
    Case("host-list", req(GET, b"Host: t, u", host=False),
         "9112 3.2: an invalid Host value (two hosts joined) MUST get 400"),
    Case("host-ipv6-unclosed", req(GET, b"Host: [::1", host=False), "9110 7.2: an unclosed IP-literal"),
    Case("lf-before-request", b"\n" + req(GET), "9112 2.2: a lone LF before the request line"),
    Case("two-crlf-before-request", b"\r\n\r\n" + req(GET),
         "9112 2.2: at least one empty line SHOULD be ignored; here two"),
    # --- chunks
    Case("chunk-size-not-hex", chunked(b"zz\r\nhello\r\n0\r\n\r\n"), "9112 7.1: chunk-size = 1*HEXDIG"),
    Case("chunk-size-negative", chunked(b"-5\r\nhello\r\n0\r\n\r\n"), "9112 7.1: 1*HEXDIG"),
    Case("chunk-size-0x", chunked(b"0x5\r\nhello\r\n0\r\n\r\n"), "9112 7.1: 1*HEXDIG"),
    Case("chunk-size-empty", chunked(b"\r\nhello\r\n0\r\n\r\n"), "9112 7.1: 1*HEXDIG"),
    Case("chunk-size-overflow", chunked(b"1" + b"0" * 20 + b"\r\nhello\r\n0\r\n\r\n"),
         "9112 7.1: recipients MUST anticipate large hex numerals and prevent overflows"),
    Case("chunk-size-trailing-space", chunked(b"5 \r\nhello\r\n0\r\n\r\n"),
         "9112 7.1.1: BWS is allowed only before a chunk-ext"),
    Case("chunk-missing-crlf", chunked(b"5\r\nhelloX0\r\n\r\n"),
         "9112 7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF"),
    Case("chunk-too-long", chunked(b"3\r\nhello\r\n0\r\n\r\n"), "9112 7.1: the data is chunk-size bytes"),
    Case("chunk-bare-lf", chunked(b"5\nhello\n0\n\n"), "9112 7.1: chunk lines end with CRLF"),
    Case("chunk-ext-ctl", chunked(b"5;a\x01b\r\nhello\r\n0\r\n\r\n"), "9112 7.1.1: chunk-ext-name = token"),
    Case("chunk-ext-bare-cr", chunked(b"5;a\rb\r\nhello\r\n0\r\n\r\n"), "9112 2.2: a bare CR is invalid"),
    Case("chunk-ext-no-name", chunked(b"5;\r\nhello\r\n0\r\n\r\n"), "9112 7.1.1: chunk-ext-name = token"),
    Case("chunk-ext-bad-quote", chunked(b'5;a="b\r\nhello\r\n0\r\n\r\n'),
         "9110 5.6.4: an unterminated quoted-string"),
    Case("trailer-content-length", chunked(b"5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n"),
         "9110 6.5.1: a sender MUST NOT generate a trailer that ... is needed for framing"),
    Case("trailer-transfer-encoding", chunked(b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n"),
         "9110 6.5.1: framing fields are forbidden in trailers"),
    Case("trailer-host", chunked(b"5\r\nhello\r\n0\r\nHost: evil\r\n\r\n"),
         "9110 6.5.1: routing fields (Host) are forbidden in trailers"),
    Case("trailer-authorization", chunked(b"5\r\nhello\r\n0\r\nAuthorization: x\r\n\r\n"),
         "9110 6.5.1: authentication fields are forbidden in trailers"),
    Case("trailer-obs-fold", chunked(b"5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n"),
         "9112 5.2: obs-fold in the trailer section"),
    Case("trailer-bad-name", chunked(b"5\r\nhello\r\n0\r\nX T: 1\r\n\r\n"), "9110 5.1: field-name = token"),
    Case("absolute-form-authority-chars", req(b"GET http://t\\^/x HTTP/1.1"),
         "3986 3.2.2: '\\' and '^' are not in reg-name"),
    Case("absolute-form-ipv6-unclosed", req(b"GET http://[::1/x HTTP/1.1"),
         "3986 3.2.2: an IP-literal ends with ']'"),
    Case("target-no-form", req(b"GET =http://t/x HTTP/1.1"),
         "9112 3.2: a target is origin-, absolute-, authority- or asterisk-form; '=http' is no "
         "scheme (RFC 3986 3.1)"),
    Case("absolute-form-userinfo", req(b"GET http://u@t/x HTTP/1.1"),
         "9110 4.2.4: userinfo in an http URI SHOULD be treated as an error"),
    Case("scheme-headers-conflict", req(GET, b"X-Forwarded-Proto: https", b"X-Forwarded-Ssl: off"),
         "gunicorn: secure scheme headers that disagree are refused"),
    Case("te-chunked-identity", req(POST, TE, b"Transfer-Encoding: identity", body=b"0\r\n\r\n"),
         "9112 6.3: chunked is not the final coding"),
    Case("te-chunked-param", req(POST, b"Transfer-Encoding: chunked;q=1", body=b"0\r\n\r\n"),
         "9112 7: chunked takes no parameters"),
    Case("chunk-size-leading-space", chunked(b" 5\r\nhello\r\n0\r\n\r\n"), "9112 7.1: 1*HEXDIG"),
    Case("chunk-last-missing-crlf", chunked(b"5\r\nhello\r\n0\r\n"),
         "9112 7.1: the trailer section ends with CRLF (never sent here: both wait)"),
    Case("bad-name-utf8", req(GET, b"X-\xc3\xa9: a"), "9110 5.1: field-name = token (ASCII only)"),
    Case("request-line-fold", b"GET /\r\n HTTP/1.1\r\nHost: t\r\n\r\n", "9112 3: one line"),
    Case("tab-before-version", req(b"GET /\tHTTP/1.1"), "9112 3: SP, not HTAB"),
    # --- line endings and whitespace
    Case("bare-cr-request-line", b"GET / HTTP/1.1\rHost: t\r\n\r\n",
         "9112 2.2: a bare CR MUST be considered invalid or replaced with SP"),
    Case("bare-cr-in-value", req(GET, b"X-A: a\rb"), "9112 2.2 / 9110 5.5: a bare CR in a field value"),
    Case("bare-lf-everywhere", b"GET / HTTP/1.1\nHost: t\n\n",
         "9112 2.2: a recipient MAY recognize a single LF as a line terminator"),
    Case("bare-lf-in-fields", b"GET / HTTP/1.1\r\nHost: t\nX-A: 1\r\n\r\n",
         "9112 2.2: a lone LF between field lines"),
    Case("obs-fold", req(GET, b"X-A: a", b" b"),
         "9112 5.2: a server that receives an obs-fold MUST reject it with 400 or replace it"),
    Case("obs-fold-tab", req(GET, b"X-A: a", b"\tb"), "9112 5.2: obs-fold with HTAB"),
    Case("space-before-colon", req(GET, b"X-A : a"),
         "9112 5.1: whitespace between field name and colon MUST be rejected with 400"),
    Case("tab-before-colon", req(GET, b"X-A\t: a"), "9112 5.1: whitespace before the colon"),
    Case("space-before-first-field", b"GET / HTTP/1.1\r\n Host: t\r\n\r\n",
         "9112 2.2: whitespace between start-line and the first field MUST be rejected or ignored"),
    Case("nul-in-value", req(GET, b"X-A: a\x00b"), "9110 5.5: NUL in a value MUST be rejected or replaced"),
    Case("ctl-in-value", req(GET, b"X-A: a\x01b"), "9110 5.5: field-vchar excludes CTLs"),
    Case("del-in-value", req(GET, b"X-A: a\x7fb"), "9110 5.5: field-vchar excludes DEL"),
    Case("bad-name-token", req(GET, b"X(A): a"), "9110 5.1: field-name = token"),
    Case("bad-name-space", req(GET, b"X A: a"), "9110 5.1: field-name = token"),
    Case("bad-name-obs-text", req(GET, b"X-\xe9: a"), "9110 5.1: field-name = token (ASCII only)"),
    Case("empty-name", req(GET, b": a"), "9110 5.1: field-name = token, at least one tchar"),
    Case("no-colon", req(GET, b"X-A a"), "9112 5: field-line = field-name \":\" OWS field-value OWS"),
    # --- request line
    Case("lowercase-method", req(b"get / HTTP/1.1"),
         "9110 9.1: methods are case-sensitive; gunicorn refuses lowercase ones"),
    Case("bad-method-token", req(b"G(T / HTTP/1.1"), "9110 9.1: method = token"),
    Case("method-too-long", req(b"ABCDEFGHIJKLMNOPQRSTU / HTTP/1.1"),
         "gunicorn: a method is 3 to 20 characters unless permit_unconventional_http_method"),
    Case("method-too-short", req(b"GE / HTTP/1.1"), "gunicorn: a method is at least 3 characters"),
    Case("double-space-target", req(b"GET  / HTTP/1.1"),
         "9112 3: request-line = method SP request-target SP HTTP-version"),
    Case("double-space-version", req(b"GET /  HTTP/1.1"), "9112 3: one SP before the version"),
    Case("trailing-space", req(b"GET / HTTP/1.1 "), "9112 3: nothing after the version"),
    Case("tab-separator", req(b"GET\t/ HTTP/1.1"), "9112 3: SP, not HTAB (3: MAY parse on whitespace)"),
    Case("no-version", b"GET /\r\nHost: t\r\n\r\n", "9112 3: the version is required (no HTTP/0.9)"),
    Case("no-version-unfinished", b"GET /\r\nHost: t\r\n", "9112 3: the version is required; "
         "the head is not finished yet"),
    Case("lowercase-version", req(b"GET / http/1.1"), "9112 2.3: HTTP-name is case-sensitive"),
    Case("version-two-digits", req(b"GET / HTTP/1.10"), "9112 2.3: HTTP-version = HTTP-name \"/\" DIGIT \".\" DIGIT"),
    Case("version-2", req(b"GET / HTTP/2.0"), "9110 15.6.6: 505 for an unsupported major version"),
    Case("version-0-9", req(b"GET / HTTP/0.9"), "9110 2.5: an unsupported major version"),
    Case("h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
         "9113 3.4: prior-knowledge HTTP/2 on an HTTP/1.1 port"),
    Case("fragment", req(b"GET /a#b HTTP/1.1"), "9110 4.2.4: a fragment is never sent in a target"),
    Case("asterisk-get", req(b"GET * HTTP/1.1"), "9112 3.2.4: asterisk-form is only for OPTIONS"),
    Case("authority-form-get", req(b"GET t:80 HTTP/1.1"), "9112 3.2.3: authority-form is only for CONNECT"),
    Case("relative-target", req(b"GET a/b HTTP/1.1"), "9112 3.2: no request-target form is relative"),
    Case("empty-target", req(b"GET  HTTP/1.1"), "9112 3.2: the target is never empty"),
    Case("target-raw-space", req(b"GET /a b HTTP/1.1"), "9112 3.2: SP ends the target"),
    Case("target-obs-text", req(b"GET /caf\xe9 HTTP/1.1"),
         "9112 3.2 / 3986 2: a target is printable ASCII; the rest MUST be percent-encoded"),
    Case("target-ctl", req(b"GET /a\x01b HTTP/1.1"), "3986 2: no CTLs in a URI"),
    Case("target-del", req(b"GET /a\x7fb HTTP/1.1"), "3986 2: no DEL in a URI"),
    Case("target-nul", req(b"GET /a\x00b HTTP/1.1"), "3986 2: no NUL in a URI"),
    # --- Host
    Case("missing-host", req(GET, host=False),
         "9112 3.2: an HTTP/1.1 request without Host MUST get 400"),
    Case("two-hosts", req(GET, b"Host: u"), "9112 3.2: more than one Host field line MUST get 400"),
    Case("host-space", req(GET, b"Host: a b", host=False), "9112 3.2: an invalid Host value MUST get 400"),
    Case("host-userinfo", req(GET, b"Host: user@t", host=False),
         "9110 7.2: Host = uri-host [ \":\" port ] (no userinfo)"),
    Case("host-bad-port", req(GET, b"Host: t:port", host=False), "9110 4.1: port = *DIGIT"),
    Case("host-slash", req(GET, b"Host: t/x", host=False), "9110 7.2: no path in Host"),
    Case("two-content-types", req(POST, b"Content-Type: a/b", b"Content-Type: c/d", b"Content-Length: 0"),
         "9110 5.3: Content-Type is a singleton field; gunicorn refuses a repeat"),
    # --- Expect
    Case("expect-unknown", req(POST, b"Content-Length: 3", b"Expect: something", body=b"abc"),
         "9110 10.1.1: a server that receives an Expect it cannot meet MUST answer 417 (or 4xx)"),
    # --- limits (gunicorn's defaults, which are ours)
    Case("line-over-limit", req(b"GET /" + b"a" * (4095 - 14) + b" HTTP/1.1"),
         "limit_request_line (4094): one byte over; 9112 3: 414 for a target too long"),
    Case("line-far-over-limit", req(b"GET /" + b"a" * 9000 + b" HTTP/1.1"), "limit_request_line"),
    Case("fields-over-limit", req(GET, *[b"X-%d: v" % i for i in range(100)]),
         "limit_request_fields (100): 101 fields, Host included: 431"),
    Case("field-over-limit", req(GET, b"X-A: " + b"v" * 8184),
         "limit_request_field_size (8190): a field line one byte over"),
    Case("field-far-over-limit", req(GET, b"X-A: " + b"v" * 20000), "limit_request_field_size"),
    Case("head-huge", req(GET, *[b"X-%d: " % i + b"v" * 8000 for i in range(60)]),
         "limit_request_fields * limit_request_field_size: a head of 480 KB"),
    # --- not HTTP at all
    Case("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
         "a TLS ClientHello on a cleartext port"),
    Case("only-crlf", b"\r\n\r\n\r\n", "9112 2.2: empty lines and nothing else"),
]

CASES = VALID + INVALID
BY_ID = {case.id: case for case in CASES}
assert len(BY_ID) == len(CASES), "case ids are unique"

# What the generated cases start from (mutated by test_gunicorn_parity's strategy): requests
# both servers serve the same, one of each framing. None is a HEAD, whose answer's framing
# depends on the method a mutation may change.
SEEDS = [BY_ID[i].raw for i in (
    "get-query", "post-length", "chunked-trailers", "pipelined-get-get", "expect-continue",
    "http10-keep-alive", "asterisk-options", "absolute-form", "chunked-ext", "repeated-field",
)]

# The generated cases' edits: bytes that matter to an HTTP/1.1 parser, inserted or put in place
# of others (test_gunicorn_parity draws them with hypothesis).
TOKENS = [b" ", b"\t", b"\r", b"\n", b"\r\n", b":", b";", b",", b"=", b"\x00", b"\x01", b"\x7f",
          b"\x80", b"\xff", b"_", b"-", b"0", b"9", b"f", b"a", b"Z", b"/", b"?", b"#", b"%", b"%2",
          b'"', b"\\", b"(", b"@", b"*", b".", b"HTTP/1.1", b"chunked", b"close", b"\r\n ",
          b"\r\n\r\n", b"Content-Length: 3\r\n", b"Transfer-Encoding: chunked\r\n", b"Host: u\r\n"]


def edit(data: bytes, ops) -> bytes:
    """Apply ``ops``, each (kind, position, argument); positions wrap around the length."""
    buf = bytearray(data)
    for kind, pos, arg in ops:
        pos %= len(buf) + 1
        if kind == "insert":
            buf[pos:pos] = arg
        elif kind == "replace":
            buf[pos:pos + 1] = arg
        elif kind == "delete":
            del buf[pos:pos + arg]
        elif kind == "case":
            buf[pos:pos + arg] = bytes(buf[pos:pos + arg]).swapcase()
        elif kind in ("dup-line", "drop-line"):
            lines = bytes(buf).split(b"\r\n")
            i = pos % len(lines)
            if kind == "dup-line":
                lines.insert(i, lines[i])
            else:
                del lines[i]
            buf = bytearray(b"\r\n".join(lines))
    return bytes(buf)
