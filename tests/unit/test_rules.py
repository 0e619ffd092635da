"""Request rules (http/rules.py), h11-style: a table of cases, each the exact header fields (or
bytes) of one request, the outcome, and the RFC 9112/9110 sentence it comes from.

rules.py checks what llhttp (httptools) lets through; its docstring names what llhttp refuses
itself.  The second table pins that division of labour on bytes: the parser and the rules
together, composed as HttpProtocol.on_headers_complete composes them.
"""

from __future__ import annotations

import httptools
import pytest

from unicorn_aio.http.rules import (
    PLAIN,
    Framing,
    Reject,
    add_scheme_fields,
    check_headers,
    check_request_target,
    check_version,
    is_token,
    unknown_method_status,
    valid_host,
    without_fragment,
)

H = (b"Host", b"t")


def fields(*lines: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    for line in lines:
        name, _, value = line.partition(b": ")
        out.append((name, value))
    return out


# -- check_headers: framing -------------------------------------------------------------------

# (id, header lines, version, expected Framing attributes, the rule)
FRAMING = [
    ("plain", [b"Host: t"], "1.1",
     dict(content_length=None, chunked=False, expect_continue=False, close=False, upgrade=False),
     "9112 6.3: no Content-Length or Transfer-Encoding: the body length is 0"),
    ("content-length", [b"Host: t", b"Content-Length: 42"], "1.1", dict(content_length=42),
     "9112 6.3: a valid Content-Length gives the body length in octets"),
    ("content-length-lower", [b"Host: t", b"content-length: 7"], "1.1", dict(content_length=7),
     "9110 5.1: field names are case-insensitive"),
    ("chunked", [b"Host: t", b"Transfer-Encoding: chunked"], "1.1", dict(chunked=True),
     "9112 6.3: chunked as the final coding: the body is read until the last chunk"),
    ("chunked-upper", [b"Host: t", b"TRANSFER-ENCODING: Chunked"], "1.1", dict(chunked=True),
     "9112 7: transfer coding names are case-insensitive"),
    ("chunked-ows", [b"Host: t", b"Transfer-Encoding: chunked  "], "1.1", dict(chunked=True),
     "9110 5.5: OWS around a field value is not part of it"),
    ("expect-continue", [b"Host: t", b"Expect: 100-continue"], "1.1", dict(expect_continue=True),
     "9110 10.1.1: 100-continue asks for an interim 100 before the content is sent"),
    ("expect-continue-case", [b"Host: t", b"Expect: 100-Continue"], "1.1",
     dict(expect_continue=True), "9110 10.1.1: the expectation is case-insensitive"),
    ("expect-continue-http10", [b"Expect: 100-continue"], "1.0", dict(expect_continue=False),
     "9110 10.1.1: a server that receives a 100-continue expectation in an HTTP/1.0 request MUST "
     "ignore that expectation"),
    ("connection-close", [b"Host: t", b"Connection: close"], "1.1", dict(close=True),
     "9112 9.6: the close connection option ends the connection after the response"),
    ("connection-list", [b"Host: t", b"Connection: keep-alive, Close"], "1.1", dict(close=True),
     "9110 7.6.1: Connection = #connection-option, case-insensitive"),
    ("connection-not-a-token", [b"Host: t", b"Connection: x-close-hint"], "1.1",
     dict(close=False, upgrade=False), "9110 7.6.1: connection options are whole tokens"),
    ("connection-upgrade", [b"Host: t", b"Connection: Upgrade", b"Upgrade: websocket"], "1.1",
     dict(upgrade=True), "9110 7.8: Upgrade is sent with the upgrade connection option"),
    ("http10-no-host", [], "1.0", dict(content_length=None, chunked=False, close=False),
     "9112 3.2: Host is required of HTTP/1.1 requests only"),
    ("empty-host", [b"Host: "], "1.1", dict(content_length=None, chunked=False, close=False),
     "9112 3.2: a target URI without authority is sent with an empty Host field value"),
    ("te-gzip-chunked", [b"Host: t", b"Transfer-Encoding: gzip, chunked"], "1.1",
     dict(chunked=True, close=True),
     "9112 6.3: chunked is the final coding: the body is framed by it (gunicorn 27 hands the app "
     "the gzip coding, and closes the connection after the response)"),
    ("te-two-lines", [b"Host: t", b"Transfer-Encoding: deflate", b"Transfer-Encoding: chunked"],
     "1.1", dict(chunked=True, close=True), "9110 5.3: field lines of one name make one list"),
    ("te-identity-chunked", [b"Host: t", b"Transfer-Encoding: identity, chunked"], "1.1",
     dict(chunked=True, close=False), "gunicorn 27 lets identity come before chunked"),
]


@pytest.mark.parametrize("lines, version, expected",
                         [pytest.param(c[1], c[2], c[3], id=c[0]) for c in FRAMING])
def test_framing(lines, version, expected):
    framing, kept = check_headers(fields(*lines), version, "drop")
    assert {name: getattr(framing, name) for name in expected} == expected
    assert kept == fields(*lines)


# (id, header lines, version, header_map, status, the rule)
REJECTED = [
    ("missing-host", [], "1.1", "drop", 400,
     "9112 3.2: a server MUST respond with a 400 to any HTTP/1.1 request message that lacks a "
     "Host header field"),
    ("two-hosts", [b"Host: a", b"Host: a"], "1.1", "drop", 400,
     "9112 3.2: ... and to any request message that contains more than one Host header field "
     "line"),
    ("two-hosts-http10", [b"Host: a", b"host: b"], "1.0", "drop", 400,
     "9112 3.2: more than one Host header field line, whatever the version"),
    ("te-gzip", [b"Host: t", b"Transfer-Encoding: gzip"], "1.1", "drop", 400,
     "9112 6.3: a Transfer-Encoding whose final coding is not chunked: the server MUST respond "
     "with 400 (gunicorn 27 too)"),
    ("te-identity", [b"Host: t", b"Transfer-Encoding: identity"], "1.1", "drop", 400,
     "9112 6.3: not ending with chunked"),
    ("te-chunked-gzip", [b"Host: t", b"Transfer-Encoding: chunked, gzip"], "1.1", "drop", 400,
     "9112 6.3: chunked is not the final coding"),
    ("te-unknown-chunked", [b"Host: t", b"Transfer-Encoding: br, chunked"], "1.1", "drop", 501,
     "9112 6.1: a transfer coding the server does not understand SHOULD get 501 (gunicorn "
     "passes only gzip, deflate, compress and identity)"),
    ("te-empty-member", [b"Host: t", b"Transfer-Encoding: gzip,,chunked"], "1.1", "drop", 501,
     "gunicorn 27: an empty list member is an unsupported coding"),
    ("two-content-types", [b"Host: t", b"Content-Type: a", b"content-type: b"], "1.1", "drop",
     400, "9110 5.3: a field that is not a list cannot be repeated (gunicorn 27 refuses it)"),
    ("two-content-types-http10", [b"Content-Type: a", b"Content-Type: a"], "1.0", "drop", 400,
     "9110 5.3: whatever the version, even with equal values"),
    ("te-http10", [b"Transfer-Encoding: chunked"], "1.0", "drop", 400,
     "9112 6.1: a server that receives an HTTP/1.0 message containing a Transfer-Encoding "
     "header field MUST treat the message as if the framing is faulty"),
    ("expect-other", [b"Host: t", b"Expect: 200-ok"], "1.1", "drop", 417,
     "9110 10.1.1: a server that receives an Expect field value containing a member other than "
     "100-continue MAY respond with a 417"),
    ("expect-list", [b"Host: t", b"Expect: 100-continue, x"], "1.1", "drop", 417,
     "9110 10.1.1: any member other than 100-continue"),
    ("underscore-refused", [b"Host: t", b"X_Forwarded_For: 1.2.3.4"], "1.1", "refuse", 400,
     "gunicorn --header-map refuse: an underscore name could pose as a dash name in the environ"),
]


@pytest.mark.parametrize("lines, version, header_map, status",
                         [pytest.param(c[1], c[2], c[3], c[4], id=c[0]) for c in REJECTED])
def test_rejected(lines, version, header_map, status):
    with pytest.raises(Reject) as info:
        check_headers(fields(*lines), version, header_map)
    assert info.value.status == status and info.value.reason


@pytest.mark.parametrize("host", [b"a b", b"a/b@c", b"exa\tmple.org", b"example.org:8o",
                                  b"[::1", b"[1.2.3.4]", b"a%zz", b"\xe9.org", b"a:80:80"])
def test_invalid_host_value_is_rejected(host):
    # 9112 3.2: A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1
    # request message that lacks a Host header field and to any request message that contains
    # more than one Host header field line or a Host header field with an invalid field value.
    # (Host = uri-host [ ":" port ], 9110 7.2.)
    with pytest.raises(Reject) as info:
        check_headers([(b"Host", host)], "1.1", "drop")
    assert info.value.status == 400
    assert not valid_host(host)


@pytest.mark.parametrize("host", [b"", b"example.org", b"example.org:8080", b"EXAMPLE.org:",
                                  b"127.0.0.1:80", b"[::1]", b"[2001:db8::1]:443", b"[v1.x:y]",
                                  b"a-b_c~d.e", b"%41b", b"!$&'()*+,;="])
def test_valid_host_values(host):
    # 9110 7.2: Host = uri-host [ ":" port ]; 3986 3.2.2: IP-literal / IPv4address / reg-name,
    # reg-name = *( unreserved / pct-encoded / sub-delims ); 3986 3.2.3: port = *DIGIT.
    framing, _ = check_headers([(b"Host", host)], "1.1", "drop")
    assert framing is PLAIN and valid_host(host)


def test_plain_heads_share_one_unchangeable_framing():
    framing, _ = check_headers(fields(b"Host: t", b"Content-Type: text/plain", b"X-A: 1"), "1.1",
                               "drop")
    assert framing is PLAIN
    with pytest.raises(AttributeError):
        framing.close = True
    # A field that frames a body or changes the connection gets the head a Framing of its own.
    for line in (b"Content-Length: 0", b"Connection: close", b"Transfer-Encoding: chunked",
                 b"Expect: 100-continue", b"X_A: 1"):
        framing, _ = check_headers(fields(b"Host: t", line), "1.1", "dangerous")
        assert framing is not PLAIN and type(framing) is Framing
    assert (PLAIN.content_length, PLAIN.chunked, PLAIN.close, PLAIN.upgrade,
            PLAIN.expect_continue, PLAIN.forwarded) == (None, False, False, False, False, False)


def test_reject_reason_names_the_value():
    with pytest.raises(Reject, match="unsupported Transfer-Encoding: br"):
        check_headers(fields(b"Host: t", b"Transfer-Encoding: br"), "1.1", "drop")


# -- check_headers: header_map ----------------------------------------------------------------

UNDERSCORED = fields(b"Host: t", b"X_Real_IP: 1.2.3.4", b"X-A: 1", b"Script_Name: /x", b"X-B: 2")


def test_header_map_drop():
    framing, kept = check_headers(list(UNDERSCORED), "1.1", "drop")
    assert kept == fields(b"Host: t", b"X-A: 1", b"X-B: 2")


def test_header_map_dangerous_keeps_all():
    _, kept = check_headers(list(UNDERSCORED), "1.1", "dangerous")
    assert kept == UNDERSCORED


def test_header_map_drop_keeps_listed_forwarders():
    # forwarder_headers pass the head; the app side keeps them only from a trusted proxy.
    _, kept = check_headers(list(UNDERSCORED), "1.1", "drop", frozenset({b"SCRIPT_NAME"}))
    assert kept == fields(b"Host: t", b"X-A: 1", b"Script_Name: /x", b"X-B: 2")


def test_header_map_refuse_spares_listed_forwarders():
    _, kept = check_headers(fields(b"Host: t", b"SCRIPT_NAME: /x"), "1.1", "refuse",
                            frozenset({b"SCRIPT_NAME"}))
    assert kept == fields(b"Host: t", b"SCRIPT_NAME: /x")


def test_header_map_drop_leaves_the_list_alone_without_underscores():
    headers = fields(b"Host: t", b"X-A: 1")
    assert check_headers(headers, "1.1", "drop")[1] is headers


def test_dropped_header_does_not_frame():
    # A dropped name is gone before the framing is read: "Content_Length" is not Content-Length.
    framing, kept = check_headers(fields(b"Host: t", b"Content_Length: 5"), "1.1", "drop")
    assert framing.content_length is None and kept == fields(b"Host: t")


# -- check_request_target ---------------------------------------------------------------------

# (id, method, target, status or None, the rule)
TARGETS = [
    ("origin", b"GET", b"/a/b?c=d", None, "9112 3.2.1: origin-form = absolute-path [ ? query ]"),
    ("origin-double-slash", b"GET", b"//a", None, "9110 4.1: a segment may be empty"),
    ("absolute-http", b"GET", b"http://example.org/a", None,
     "9112 3.2.2: a server MUST accept the absolute-form in requests"),
    ("absolute-https-upper", b"GET", b"HTTPS://example.org", None,
     "9110 4.2.3: the scheme is case-insensitive"),
    ("asterisk-options", b"OPTIONS", b"*", None,
     "9112 3.2.4: asterisk-form = * is only used for a server-wide OPTIONS request"),
    ("asterisk-get", b"GET", b"*", 400, "9112 3.2.4: asterisk-form is only for OPTIONS"),
    ("authority-get", b"GET", b"example.org:80", 400,
     "9112 3.2.3: the authority-form is only used for CONNECT requests"),
    ("connect", b"CONNECT", b"example.org:443", 501,
     "9110 9.1: an origin server that does not implement a method SHOULD answer 501"),
    ("relative", b"GET", b"a/b", 400, "9112 3.2: request-target is one of four forms"),
    ("other-scheme", b"GET", b"ftp://example.org/", None,
     "9112 3.2.2: absolute-form = absolute-URI, any scheme (as gunicorn: the app sees the path)"),
    ("no-scheme", b"GET", b"=http://example.org/", 400,
     "3986 3.1: scheme = ALPHA *( ALPHA / DIGIT / '+' / '-' / '.' ); no form of 9112 3.2"),
    ("ipv6-unclosed", b"GET", b"http://[::1/x", 400, "3986 3.2.2: IP-literal = '[' ... ']'"),
    ("fragment", b"GET", b"/a#b", None,
     "9110 4.2.4: the fragment is never sent; gunicorn 27 serves the request without it"),
    ("fragment-absolute", b"GET", b"http://example.org/#b", None, "9110 4.2.4: absolute-form"),
]


@pytest.mark.parametrize("method, target, status",
                         [pytest.param(c[1], c[2], c[3], id=c[0]) for c in TARGETS])
def test_request_target(method, target, status):
    if status is None:
        check_request_target(method, target)
    else:
        with pytest.raises(Reject) as info:
            check_request_target(method, target)
        assert info.value.status == status


@pytest.mark.parametrize("url, expected", [
    (b"/a?b=1#frag", b"/a?b=1"), (b"/a#b?c", b"/a"), (b"/a", b"/a"), (b"/#", b"/"),
])
def test_without_fragment(url, expected):
    assert without_fragment(url) == expected


# -- check_version ----------------------------------------------------------------------------

@pytest.mark.parametrize("version, status", [
    ("1.1", None), ("1.0", None),
    ("2.0", 505),  # 9110 15.6.6: 505 for a major version the server does not support
    ("3.0", 505),
    ("0.9", 400),  # 9112 2.3: HTTP/0.9 has no version in its request line at all
    ("1.2", 400),
])
def test_check_version(version, status):
    if status is None:
        check_version(version)
    else:
        with pytest.raises(Reject) as info:
            check_version(version)
        assert info.value.status == status and version in info.value.reason


# -- methods llhttp does not know ------------------------------------------------------------

@pytest.mark.parametrize("method, status", [
    (b"FROB", 501),  # 9110 9.1: a method the server does not implement: 501
    (b"X" * 20, 501),
    (b"get", 400),  # gunicorn 27's conventions: no lower case, no "#", 3 to 20 bytes
    (b"GeT", 400), (b"A#B", 400), (b"GE", 400), (b"X" * 21, 400),
    (b"G(T", 400),  # 9110 9.1: method = token
])
def test_unknown_method_status(method, status):
    assert unknown_method_status(method) == status


# -- is_token ---------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (b"GET", True), (b"X-Custom_1", True), (b"!#$%&'*+-.^_`|~", True), (b"PROPFIND", True),
    (b"", False),  # 9110 5.6.2: token = 1*tchar
    (b"G T", False), (b"G(T", False), (b"G\"T", False), (b"G:T", False), (b"G\tT", False),
    (b"caf\xe9", False), (b"GET\n", False),
])
def test_is_token(value, expected):
    assert is_token(value) is expected


# -- bytes on the wire: llhttp and the rules together ----------------------------------------

class _Head:
    """Parser callbacks doing what HttpProtocol's do with a head, and nothing else."""

    def __init__(self) -> None:
        self.url = b""
        self.headers: list = []
        self.body = b""
        self.framing = None
        self.done = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        version = self.parser.get_http_version()
        check_version(version)
        check_request_target(self.parser.get_method(), self.url)
        self.framing, self.headers = check_headers(self.headers, version, "drop")

    def on_body(self, data: bytes) -> None:
        self.body += data

    def on_message_complete(self) -> None:
        self.done = True


def outcome(raw: bytes):
    """What the request's bytes come to: ("ok", body), ("reject", status) or ("parser", error)."""
    head = _Head()
    head.parser = httptools.HttpRequestParser(head)
    try:
        head.parser.feed_data(raw)
    except httptools.HttpParserCallbackError as exc:
        assert isinstance(exc.__context__, Reject)
        return "reject", exc.__context__.status
    except httptools.HttpParserUpgrade:
        return "upgrade", None
    except httptools.HttpParserError:
        return "parser", None
    assert head.done
    return "ok", head.body


def raw(line: bytes, *lines: bytes, body: bytes = b"") -> bytes:
    return line + b"\r\n" + b"".join(x + b"\r\n" for x in lines) + b"\r\n" + body


POST = b"POST / HTTP/1.1"

WIRE = [
    ("cl", raw(POST, b"Host: t", b"Content-Length: 5", body=b"hello"), ("ok", b"hello"),
     "9112 6.3: Content-Length gives the length"),
    ("cl-leading-zeros", raw(POST, b"Host: t", b"Content-Length: 007", body=b"abcdefg"),
     ("ok", b"abcdefg"), "9110 8.6: Content-Length = 1*DIGIT"),
    ("chunked", raw(POST, b"Host: t", b"Transfer-Encoding: chunked",
                    body=b"5\r\nhello\r\n0\r\n\r\n"), ("ok", b"hello"),
     "9112 7.1: chunked-body = *chunk last-chunk trailer-section CRLF"),
    ("chunk-ext", raw(POST, b"Host: t", b"Transfer-Encoding: chunked",
                      body=b"5;a=b\r\nhello\r\n0\r\n\r\n"), ("ok", b"hello"),
     "9112 7.1.1: a recipient MUST ignore unrecognized chunk extensions"),
    ("cl-and-te", raw(POST, b"Host: t", b"Content-Length: 5", b"Transfer-Encoding: chunked",
                      body=b"0\r\n\r\n"), ("parser", None),
     "9112 6.1: a server MAY reject a request that contains both Content-Length and "
     "Transfer-Encoding"),
    ("te-and-cl", raw(POST, b"Host: t", b"Transfer-Encoding: chunked", b"Content-Length: 5",
                      body=b"0\r\n\r\n"), ("parser", None), "9112 6.1: in either order"),
    ("duplicate-cl", raw(POST, b"Host: t", b"Content-Length: 5", b"Content-Length: 5",
                         body=b"hello"), ("parser", None),
     "9112 6.3: if a message is received without Transfer-Encoding and with an invalid "
     "Content-Length header field, the server MUST respond with a 400"),
    ("cl-list", raw(POST, b"Host: t", b"Content-Length: 5, 5", body=b"hello"), ("parser", None),
     "9110 8.6: a list of identical values MAY be rejected"),
    ("cl-overflow", raw(POST, b"Host: t", b"Content-Length: 99999999999999999999999"),
     ("parser", None), "9112 6.3: a length past what the recipient can hold is invalid"),
    ("te-twice", raw(POST, b"Host: t", b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked",
                     body=b"0\r\n\r\n"), ("parser", None),
     "9112 6.1: a sender MUST NOT apply the chunked transfer coding more than once"),
    ("te-chunked-chunked", raw(POST, b"Host: t", b"Transfer-Encoding: chunked, chunked",
                               body=b"0\r\n\r\n"), ("parser", None),
     "9112 6.1: chunked only once"),
    ("te-empty", raw(POST, b"Host: t", b"Transfer-Encoding: "), ("parser", None),
     "9112 6.1: Transfer-Encoding = #transfer-coding, at least one"),
    ("te-gzip", raw(POST, b"Host: t", b"Transfer-Encoding: gzip", body=b"x"), ("reject", 400),
     "9112 6.3: a final coding other than chunked MUST get 400 (llhttp passes it)"),
    ("te-gzip-chunked", raw(POST, b"Host: t", b"Transfer-Encoding: gzip, chunked",
                            body=b"5\r\nhello\r\n0\r\n\r\n"), ("ok", b"hello"),
     "9112 6.3: framed by the final chunked; the gzip coding is the app's (gunicorn 27)"),
    ("te-unknown", raw(POST, b"Host: t", b"Transfer-Encoding: br, chunked", body=b"0\r\n\r\n"),
     ("reject", 501), "9112 6.1: a coding we do not understand SHOULD get 501"),
    ("te-http10", raw(b"POST / HTTP/1.0", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
     ("reject", 400), "9112 6.1: HTTP/1.0 with Transfer-Encoding: faulty framing"),
    ("bare-cr-in-value", raw(b"GET / HTTP/1.1", b"Host: t", b"X-A: a\rb"), ("parser", None),
     "9112 2.2: a recipient of a bare CR MUST consider that element to be invalid or replace "
     "each bare CR with SP"),
    ("bare-cr-line-end", b"GET / HTTP/1.1\rHost: t\r\n\r\n", ("parser", None), "9112 2.2: bare CR"),
    ("del-in-value", raw(b"GET / HTTP/1.1", b"Host: t", b"X-A: a\x7fb"), ("parser", None),
     "9110 5.5: field-vchar = VCHAR / obs-text; DEL is neither"),
    ("obs-text-in-value", raw(b"GET / HTTP/1.1", b"Host: t", b"X-A: a\x80b"), ("ok", b""),
     "9110 5.5: obs-text is allowed in a field value"),
    ("htab-in-value", raw(b"GET / HTTP/1.1", b"Host: t", b"X-A: a\tb"), ("ok", b""),
     "9110 5.5: HTAB is allowed inside a field value"),
    ("name-not-token", raw(b"GET / HTTP/1.1", b"Host: t", b"\xff: a"), ("parser", None),
     "9110 5.1: field-name = token"),
    ("empty-name", raw(b"GET / HTTP/1.1", b"Host: t", b": a"), ("parser", None),
     "9110 5.1: token = 1*tchar"),
    ("http12", raw(b"GET / HTTP/1.2", b"Host: t"), ("parser", None),
     "llhttp knows HTTP/1.0 and 1.1 only (9110 2.5 would have 1.2 read as 1.1)"),
    ("http09-line", raw(b"GET / HTTP/0.9", b"Host: t"), ("reject", 400),
     "9112 2.3: HTTP/0.9 has no HTTP-version"),
    ("http2-line", raw(b"GET / HTTP/2.0", b"Host: t"), ("reject", 505),
     "9110 15.6.6: 505 for a major version not supported"),
    ("missing-host", raw(b"GET / HTTP/1.1"), ("reject", 400), "9112 3.2: Host is required"),
    ("http10-no-host", raw(b"GET / HTTP/1.0"), ("ok", b""), "9112 3.2: of HTTP/1.1 requests"),
    ("asterisk-get", raw(b"GET * HTTP/1.1", b"Host: t"), ("reject", 400),
     "9112 3.2.4: asterisk-form only for OPTIONS"),
    ("upgrade", raw(b"GET / HTTP/1.1", b"Host: t", b"Connection: Upgrade", b"Upgrade: websocket"),
     ("upgrade", None), "9110 7.8: the parser stops at a protocol switch"),
]


@pytest.mark.parametrize("data, expected", [pytest.param(c[1], c[2], id=c[0]) for c in WIRE])
def test_on_the_wire(data, expected):
    assert outcome(data) == expected


# -- Framing.forwarded: whether a trusted proxy's headers need reading at all -----------------

def test_forwarded_is_noted_for_a_scheme_header_even_one_seen_before_it_counted():
    head = [H, (b"X-Test-Scheme", b"https")]
    assert not check_headers(head, "1.1", "drop")[0].forwarded  # its kind is now cached
    add_scheme_fields([b"x-test-scheme"])  # a server trusting a proxy for it starts
    assert check_headers(head, "1.1", "drop")[0].forwarded
    assert check_headers([H, (b"x-TEST-scheme", b"https")], "1.1", "drop")[0].forwarded


@pytest.mark.parametrize("header_map", ["drop", "dangerous"])
def test_forwarded_is_noted_for_an_underscore_name(header_map):
    framing, _ = check_headers([H, (b"SCRIPT_NAME", b"/app")], "1.1", header_map,
                               frozenset((b"SCRIPT_NAME",)))
    assert framing.forwarded
    assert not check_headers([H, (b"Accept", b"*/*")], "1.1", header_map)[0].forwarded
