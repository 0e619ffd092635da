"""Response framing (http/response.py), byte for byte: what goes on the wire around the app's
status, headers and body.  Each case names the RFC 9110/9112 sentence (or PEP 3333 rule) it pins.
"""

from __future__ import annotations

import logging

import pytest

from unicorn_aio.http.body import RequestBody
from unicorn_aio.http.protocol import Request
from unicorn_aio.http.response import (
    LAST_CHUNK,
    app_headers,
    bodyless,
    check_status,
    clip_to_length,
    error_response,
    head,
    head_for,
    prepare,
    status_line,
)

OURS = "Date: D\r\nServer: S\r\n\r\n"  # the server's Date and Server lines, as Server._tick makes them


def request(method=b"GET", version="1.1", complete=True) -> Request:
    req = Request(0.0, RequestBody())
    req.method, req.version = method, version
    if complete:
        req.body.finish()
    return req


# -- check_status: the WSGI status line -------------------------------------------------------

@pytest.mark.parametrize("status, line", [
    ("200 OK", "200 OK"),
    ("404 Not Found", "404 Not Found"),
    ("200", "200 "),  # 9112 4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
    ("299 ", "299 "),
    ("200 caf\xe9\tok", "200 caf\xe9\tok"),  # 9112 4: reason-phrase may hold HTAB and obs-text
])
def test_check_status_accepts(status, line):
    assert check_status(status) == line


@pytest.mark.parametrize("status", [
    "OK", "20 OK", "2000 OK", "200OK", "099 Low", "",
    "200 OK\r\nX-Injected: 1",  # 9112 4: no CR or LF in a reason-phrase
    "200 OK\n",
    "200 caf\u20ac",  # past latin-1: reason-phrase = *( HTAB / SP / VCHAR / obs-text )
    b"200 OK", 200, None,  # PEP 3333: the status is a str
])
def test_check_status_refuses(status):
    with pytest.raises(ValueError, match="invalid WSGI status"):
        check_status(status)


@pytest.mark.parametrize("status", ["100 Continue", "101 Switching Protocols", "103"])
def test_check_status_refuses_interim(status):
    # 9110 15.2: a 1xx is interim; the client would wait on for the final response.
    with pytest.raises(ValueError, match="1xx is interim"):
        check_status(status)


# -- status_line: the ASGI status -------------------------------------------------------------

@pytest.mark.parametrize("status, line", [
    (200, "200 OK"),
    (404, "404 Not Found"),
    (101, "101 Switching Protocols"),
    (299, "299 "),  # 9112 4: an unknown code gets an empty reason, the SP stays
    (999, "999 "),
])
def test_status_line(status, line):
    assert status_line(status) == line


@pytest.mark.parametrize("status", [99, 1000, 0, -200, "200", 201.0, True, None])
def test_status_line_refuses(status):
    with pytest.raises(ValueError, match="invalid ASGI status"):
        status_line(status)


def test_status_line_refuses_a_float_equal_to_a_cached_int():
    # ASGI HTTP spec: 'status' (int); a float must be refused whatever was answered before.
    status_line(200)
    with pytest.raises(ValueError, match="invalid ASGI status"):
        status_line(200.0)


# -- app_headers: what the app may send -------------------------------------------------------

def test_app_headers_kept_as_given():
    headers = [("Content-Type", "text/plain"), ("X-Two", "a"), ("x-two", "b")]
    assert app_headers(headers) == (headers, None, False, None)


@pytest.mark.parametrize("name", ["Connection", "Keep-Alive", "Proxy-Authenticate",
                                  "Proxy-Authorization", "TE", "Trailers", "Transfer-Encoding",
                                  "Upgrade", "TRANSFER-ENCODING"])
def test_app_headers_drop_hop_by_hop(name):
    # 9110 7.6.1 and PEP 3333: framing and connection management are the server's.
    kept, length, close, own = app_headers([(name, "x"), ("X-Kept", "1")])
    assert kept == [("X-Kept", "1")] and length is None and not close


@pytest.mark.parametrize("value, close", [("close", True), ("Close", True),
                                          ("keep-alive", False), ("upgrade", False)])
def test_app_headers_connection_close_is_noted(value, close):
    kept, _, asked, _ = app_headers([("Connection", value)])
    assert kept == [] and asked is close


@pytest.mark.parametrize("value, length", [("0", 0), ("12", 12), (" 12\t", 12), ("007", 7)])
def test_app_headers_content_length(value, length):
    kept, got, _, _ = app_headers([("Content-Length", value)])
    assert got == length and kept == [("Content-Length", value)]


def test_app_headers_same_content_length_twice_sent_once():
    kept, length, _, _ = app_headers([("Content-Length", "5"), ("content-length", "5")])
    assert kept == [("Content-Length", "5")] and length == 5


@pytest.mark.parametrize("values", [["5", "6"], ["abc"], ["-1"], ["+1"], ["1e3"], [""], ["5 5"],
                                    ["\u0663"], ["\xb2"]])  # Arabic-Indic 3, superscript 2
def test_app_headers_refuse_bad_content_length(values):
    # 9110 8.6: Content-Length = 1*DIGIT, and one value for the message.
    with pytest.raises(ValueError, match="invalid Content-Length from the app"):
        app_headers([("Content-Length", v) for v in values])


@pytest.mark.parametrize("name", ["", "X Y", "X:Y", "X\r\nY", "X(Y)", "Caf\xe9", b"X", None])
def test_app_headers_refuse_bad_name(name):
    # 9110 5.1: field-name = token
    with pytest.raises(ValueError, match="invalid response header name"):
        app_headers([(name, "v")])


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\rb", "a\x00b", "a\x7fb",
                                   "\x1b[0m", b"v", 5, None])
def test_app_headers_refuse_bad_value(value):
    # 9110 5.5: field values never hold CR, LF, NUL or other CTLs.
    with pytest.raises(ValueError, match="invalid value for response header X-A"):
        app_headers([("X-A", value)])


@pytest.mark.parametrize("value", ["a\tb", "caf\xe9", "\x85", "", "  spaced  "])
def test_app_headers_accept_htab_and_obs_text(value):
    # 9110 5.5: field-vchar = VCHAR / obs-text, and HTAB or SP inside.
    assert app_headers([("X-A", value)])[0] == [("X-A", value)]


@pytest.mark.parametrize("headers, own", [
    ([("Date", "x")], frozenset({"date"})),
    ([("server", "x")], frozenset({"server"})),
    ([("Server", "x"), ("DATE", "y")], frozenset({"date", "server"})),
    ([("X-Date", "x")], None),
])
def test_app_headers_own_date_and_server(headers, own):
    kept, _, _, got = app_headers(headers)
    assert got == own and kept == headers


# -- head: the response head ------------------------------------------------------------------

# -- prepare and head_for: the same checks and head, from what an app sent before -------------

def test_prepare_keeps_a_repeated_pair_checked_once():
    first = prepare("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    again = prepare("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    assert again is first
    assert (again.status, again.headers, again.content_length, again.close, again.own) == (
        "200 OK", (("Content-Type", "text/plain"), ("Content-Length", "5")), 5, False, None)


@pytest.mark.parametrize("first", [False, True])
def test_prepare_takes_str_subclasses_as_gunicorn_does(first):
    # gunicorn checks isinstance(value, str); a subclass equal to a kept pair is the same bytes.
    class Text(str):
        pass

    if first:
        prepare("201 Created", [("X-Kind", "plain")])
    prepared = prepare(Text("201 Created"), [(Text("X-Kind"), Text("plain"))])
    assert prepared.head_start() == b"HTTP/1.1 201 Created\r\nX-Kind: plain\r\n"


@pytest.mark.parametrize("headers", [
    [["X-List", "pair"]],  # a list for a pair: unhashable, checked each time
    (("X-Tuple", "of pairs"),),  # not a list: not kept
])
def test_prepare_other_shapes_are_checked(headers):
    assert prepare("200 OK", headers).headers == tuple(headers)
    with pytest.raises(ValueError):
        prepare("200 OK", [["X-Bad", "a\r\nb"]])


@pytest.mark.parametrize("headers, length, added, keep_alive", [
    ([("Content-Type", "text/plain"), ("Content-Length", "5")], 5, None, True),
    ([("Content-Type", "text/plain")], 5, 5, True),
    ([("Content-Type", "text/plain"), ("Content-Length", "5")], 5, None, False),
    ([("Content-Type", "text/plain"), ("Connection", "close")], 5, 5, False),
])
def test_head_for_is_head(headers, length, added, keep_alive):
    prepared = prepare("200 OK", headers)
    sent = list(prepared.headers) + ([("Content-Length", str(added))] if added is not None else [])
    expected, chunked, kept = head(request(), "200 OK", sent, length, keep_alive, OURS)
    assert (chunked, kept) == (False, keep_alive)
    assert head_for(prepared, added, keep_alive, OURS.encode()) == expected


def test_head_for_refuses_what_latin1_cannot_carry_each_time():
    prepared = prepare("200 OK", [("X-Name", "\u20ac")])
    for _ in range(2):
        with pytest.raises(UnicodeEncodeError):
            head_for(prepared, 1, True, OURS.encode())


def test_head_with_content_length():
    data, chunked, keep = head(request(), "200 OK", [("Content-Length", "5")], 5, True, OURS)
    assert data == b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nDate: D\r\nServer: S\r\n\r\n"
    assert (chunked, keep) == (False, True)


def test_head_without_length_on_http11_is_chunked():
    # 9112 6.1/7.1: without a length, chunked delimits an HTTP/1.1 body.
    data, chunked, keep = head(request(), "200 OK", [("X-A", "1")], None, True, OURS)
    assert data == (b"HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n"
                    b"Date: D\r\nServer: S\r\n\r\n")
    assert (chunked, keep) == (True, True)


def test_head_without_length_on_http10_closes():
    # 9112 6.3: an HTTP/1.0 client knows no chunked; the close ends the body.
    data, chunked, keep = head(request(version="1.0"), "200 OK", [], None, True, OURS)
    assert data == b"HTTP/1.1 200 OK\r\nConnection: close\r\nDate: D\r\nServer: S\r\n\r\n"
    assert (chunked, keep) == (False, False)


def test_head_http10_keep_alive_is_said():
    # 9112 9.3: an HTTP/1.0 connection persists only when the response says keep-alive.
    data, chunked, keep = head(request(version="1.0"), "200 OK", [("Content-Length", "0")], 0,
                               True, OURS)
    assert data == (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n"
                    b"Date: D\r\nServer: S\r\n\r\n")
    assert (chunked, keep) == (False, True)


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_head_not_keep_alive_says_close(version):
    data, _, keep = head(request(version=version), "200 OK", [("Content-Length", "0")], 0,
                         False, OURS)
    assert data == (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n"
                    b"Date: D\r\nServer: S\r\n\r\n")
    assert keep is False


def test_head_chunked_and_close():
    data, chunked, keep = head(request(), "200 OK", [], None, False, OURS)
    assert data == (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
                    b"Date: D\r\nServer: S\r\n\r\n")
    assert (chunked, keep) == (True, False)


def test_head_unread_body_closes():
    # An unread body would be parsed as the next request: the connection cannot be kept.
    data, chunked, keep = head(request(complete=False), "200 OK", [("Content-Length", "0")], 0,
                               True, OURS)
    assert data == (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n"
                    b"Date: D\r\nServer: S\r\n\r\n")
    assert keep is False


def test_head_204_drops_content_length():
    # 9110 8.6: a server MUST NOT send a Content-Length header field in any response with a
    # status code of 1xx (Informational) or 204 (No Content).
    data, chunked, keep = head(request(), "204 No Content", [("content-length", "0"), ("X-A", "1")],
                               0, True, OURS)
    assert data == b"HTTP/1.1 204 No Content\r\nX-A: 1\r\nDate: D\r\nServer: S\r\n\r\n"
    assert (chunked, keep) == (False, True)


def test_head_204_without_length_is_not_chunked():
    # 9110 15.3.5: a 204 has no content, so no framing of one either.
    data, chunked, _ = head(request(), "204 No Content", [], None, True, OURS)
    assert data == b"HTTP/1.1 204 No Content\r\nDate: D\r\nServer: S\r\n\r\n"
    assert chunked is False


def test_head_304_keeps_content_length():
    # 9110 8.6: a server MAY send Content-Length in a 304 (the length a 200 would have had).
    data, chunked, _ = head(request(), "304 Not Modified", [("Content-Length", "99")], 99, True,
                            OURS)
    assert data == b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\nDate: D\r\nServer: S\r\n\r\n"
    assert chunked is False


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_head_for_head_request_not_chunked_and_kept(version):
    # 9110 9.3.2: a HEAD response has no content; no length does not mean close or chunked.
    data, chunked, keep = head(request(b"HEAD", version), "200 OK", [], None, True, OURS)
    ka = b"Connection: keep-alive\r\n" if version == "1.0" else b""
    assert data == b"HTTP/1.1 200 OK\r\n" + ka + b"Date: D\r\nServer: S\r\n\r\n"
    assert (chunked, keep) == (False, True)


def test_head_app_date_replaces_ours():
    data, _, _ = head(request(), "200 OK", [("Date", "Mine"), ("Content-Length", "0")], 0, True,
                      OURS, frozenset({"date"}))
    assert data == b"HTTP/1.1 200 OK\r\nDate: Mine\r\nContent-Length: 0\r\nServer: S\r\n\r\n"


def test_head_app_date_and_server_replace_ours():
    data, _, _ = head(request(), "200 OK", [("Server", "Me"), ("Date", "Mine"),
                                            ("Content-Length", "0")], 0, True, OURS,
                      frozenset({"date", "server"}))
    assert data == b"HTTP/1.1 200 OK\r\nServer: Me\r\nDate: Mine\r\nContent-Length: 0\r\n\r\n"


def test_head_obs_text_is_latin1_on_the_wire():
    data, _, _ = head(request(), "200 caf\xe9", [("X-A", "caf\xe9")], None, True, OURS)
    assert data.startswith(b"HTTP/1.1 200 caf\xe9\r\nX-A: caf\xe9\r\n")


def test_head_refuses_what_latin1_cannot_carry():
    with pytest.raises(UnicodeEncodeError):
        head(request(), "200 OK", [("X-A", "\u20ac")], None, True, OURS)


# -- bodyless ---------------------------------------------------------------------------------

@pytest.mark.parametrize("method, status, expected", [
    (b"HEAD", "200 OK", True),  # 9110 9.3.2
    (b"HEAD", "404 Not Found", True),
    (b"GET", "204 No Content", True),  # 9110 15.3.5
    (b"GET", "304 Not Modified", True),  # 9110 15.4.5
    (b"GET", "101 Switching Protocols", True),  # 9110 15.2
    (b"GET", "200 OK", False),
    (b"POST", "205 Reset Content", False),
    (b"GET", "404 Not Found", False),
    (b"head", "200 OK", False),  # 9110 9.1: the method token is case-sensitive
])
def test_bodyless(method, status, expected):
    assert bodyless(method, status) is expected


# -- clip_to_length ---------------------------------------------------------------------------

LOG = logging.getLogger("test_response.clip")


@pytest.mark.parametrize("data, length, sent, out, cut", [
    (b"hello", None, 0, b"hello", False),
    (b"hello", 5, 0, b"hello", False),
    (b"hello", 10, 5, b"hello", False),
    (b"hello", 3, 0, b"hel", True),
    (b"hello", 7, 5, b"he", True),
    (b"hello", 5, 5, b"", True),
    (b"", 0, 0, b"", False),
])
def test_clip_to_length(data, length, sent, out, cut):
    assert clip_to_length(data, length, sent, LOG) == (out, cut)


def test_clip_to_length_warns(caplog):
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        clip_to_length(b"hello", 3, 0, LOG)
    assert [r.getMessage() for r in caplog.records] == [
        "app sent more than its Content-Length (3); truncated"]


# -- error_response ---------------------------------------------------------------------------

def test_error_response_with_reason():
    assert error_response(400, "invalid method") == (
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 27\r\nConnection: close\r\n\r\nBad Request\ninvalid method\n")


def test_error_response_without_reason():
    assert error_response(431) == (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8"
        b"\r\nContent-Length: 32\r\nConnection: close\r\n\r\nRequest Header Fields Too Large\n")


def test_error_response_to_head_has_no_body():
    # 9110 9.3.2: the same header fields as GET, no content (the client would read it as the
    # next response).
    assert error_response(505, "use HTTP/1.1", b"HEAD") == (
        b"HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 40\r\nConnection: close\r\n\r\n")
    assert len(b"HTTP Version Not Supported\nuse HTTP/1.1\n") == 40


def test_error_response_length_matches_body_past_latin1():
    data = error_response(400, "bad \u20ac")
    head_part, _, body = data.partition(b"\r\n\r\n")
    assert body == b"Bad Request\nbad ?\n"
    assert b"\r\nContent-Length: %d\r\n" % len(body) in head_part


def test_last_chunk():
    # 9112 7.1: last-chunk = 1*("0") [ chunk-ext ] CRLF, then an empty trailer section and CRLF.
    assert LAST_CHUNK == b"0\r\n\r\n"
