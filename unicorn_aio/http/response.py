"""HTTP/1.1 response framing shared by the WSGI and ASGI bridges.

Both interfaces hand us a status, the app's headers and then body chunks; what goes on the wire
around them is decided here, once: which app headers are refused or dropped, whether the body is
delimited by Content-Length, chunked, or the close, and whether the connection stays open.
"""

from __future__ import annotations

import http
import re
import time
from collections.abc import Iterable, Sequence
from html import escape as html_escape
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from unicorn_aio.http.protocol import Request
    from unicorn_aio.log.logger import Logger

NO_BODY_STATUS: Final = ("1", "204", "304")  # RFC 9110 6.4.1: never a body, whatever the app says
# RFC 9110 7.6.1: framing and connection management belong to the server, not the app.
HOP_BY_HOP: Final = frozenset(("connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "te", "trailers", "transfer-encoding", "upgrade"))
LAST_CHUNK: Final = b"0\r\n\r\n"
HEADER_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
BAD_VALUE: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


# RFC 9112 4: reason-phrase = *( HTAB / SP / VCHAR / obs-text ) - no CR or LF to split the
# head with, nothing past latin-1.
STATUS: Final = re.compile(r"[1-9][0-9][0-9](?: [\t\x20-\x7e\x80-\xff]*)?\Z")

# Names and statuses already validated: apps send the same few again and again, and these
# checks run for every response.
_CHECKED_NAMES: Final[dict[str, str]] = {}
_CHECKED_STATUSES: Final[dict[str, str]] = {}
_DATE_SERVER: Final = frozenset(("date", "server"))


def check_status(status: Any) -> str:
    """A WSGI status line: three digits, then an optional reason (PEP 3333).  Returns it as the
    status line needs it: "200" becomes "200 ", since the SP before the reason is not optional
    (RFC 9112 4)."""
    checked = _CHECKED_STATUSES.get(status)
    if checked is None:
        if not isinstance(status, str) or not STATUS.match(status):
            raise ValueError(f"invalid WSGI status {status!r}: expected a str like '200 OK'")
        if status[0] == "1":
            # The client would take it for an interim answer and wait for the real one.
            raise ValueError(f"invalid WSGI status {status!r}: 1xx is interim (RFC 9110 15.2), "
                             f"never a final response")
        checked = status if len(status) > 3 else status + " "
        if len(_CHECKED_STATUSES) < 1024:
            _CHECKED_STATUSES[status] = checked
    return checked


def _checked_name(name: Any) -> str:
    if not isinstance(name, str) or not HEADER_NAME.match(name):
        raise ValueError(f"invalid response header name {name!r}")
    lname = name.lower()
    if len(_CHECKED_NAMES) < 1024:
        _CHECKED_NAMES[name] = lname
    return lname


def app_headers(headers: Iterable[Any]) -> tuple[list[tuple[str, str]], int | None, bool,
                                                  frozenset[str] | None]:
    """Check the app's ``(name, value)`` str pairs; returns what to send, its Content-Length
    (None if not given), whether the app asked for ``Connection: close``, and which of Date and
    Server it set itself (None, or their lower-case names): those it sets replace ours.

    Raises ValueError for a header that would corrupt the response (RFC 9110 5.1, 5.5).
    """
    kept = []
    content_length = None
    close = False
    own = None
    for item in headers:
        name, value = item
        lname = _CHECKED_NAMES.get(name) or _checked_name(name)
        # isprintable() is one C pass that is False for every control character; only the
        # values it doubts (tabs, some non-ASCII) need the precise regex.  A value latin-1
        # cannot carry fails where the head is encoded, as a UnicodeEncodeError (a ValueError).
        if not isinstance(value, str) or not value.isprintable() and BAD_VALUE.search(value):
            raise ValueError(f"invalid value for response header {name}: {value!r}")
        if lname in HOP_BY_HOP:
            if lname == "connection" and "close" in value.lower():
                close = True
            continue
        if lname == "content-length":
            digits = value.strip(" \t")
            if not (digits.isascii() and digits.isdigit()) or \
                    content_length is not None and int(digits) != content_length:
                raise ValueError(f"invalid Content-Length from the app: {value!r}")
            if content_length is not None:
                continue  # the same length twice: send it once
            content_length = int(digits)
        elif lname in _DATE_SERVER:
            own = frozenset((lname,)) if own is None else own | {lname}
        kept.append(item)
    return kept, content_length, close, own


class Prepared:
    """A status and header list as an app gave them, checked (check_status, app_headers), with
    the head's first lines built from them once they are needed.

    Apps answer with the same few pairs again and again (a Content-Type and a Content-Length
    that only changes with the body): ``prepare`` keeps them, so a repeated pair costs one dict
    lookup instead of the checks, and its head is one concatenation (``head_for``)."""

    __slots__ = ("status", "headers", "content_length", "close", "own", "start", "usual")

    def __init__(self, status: Any, headers: Iterable[Any]) -> None:
        self.status = check_status(status)
        headers, self.content_length, self.close, self.own = app_headers(headers)
        self.headers = tuple(headers)
        # Most responses: a length from the app, a status that has a body, our Date and
        # Server - what head_for builds, given an HTTP/1.1 request that is not HEAD.
        self.usual = self.content_length is not None and self.own is None and \
            not self.status.startswith(NO_BODY_STATUS)
        # The status line and the app's fields, encoded; None until a head is built.  An
        # encoding error (a value latin-1 cannot carry) raises there, each time, as head() does.
        self.start: bytes | None = None

    def head_start(self) -> bytes:
        start = self.start
        if start is None:
            start = self.start = "".join([f"HTTP/1.1 {self.status}\r\n",
                                          *[f"{n}: {v}\r\n" for n, v in self.headers]]
                                         ).encode("latin-1")
        return start


# (status, tuple of the header pairs) -> Prepared, for the pairs apps repeat.  Bounded: an app
# whose headers vary per response (cookies, ETags) fills it once and then pays the checks.
_PREPARED: Final[dict[tuple[Any, tuple[Any, ...]], Prepared]] = {}
_PREPARED_MAX: Final = 512


def prepare(status: Any, headers: Any) -> Prepared:
    """What ``start_response(status, headers)`` gives, checked: raises ValueError as
    check_status and app_headers do."""
    if type(headers) is list:
        try:
            key = (status, tuple(headers))
            prepared = _PREPARED.get(key)
        except TypeError:  # an unhashable pair, or a list for one: checked (and refused) below
            return Prepared(status, headers)
        if prepared is None:
            prepared = Prepared(status, headers)
            if len(_PREPARED) < _PREPARED_MAX:
                _PREPARED[key] = prepared
        return prepared
    return Prepared(status, headers)


def head_for(prepared: Prepared, added_length: int | None, keep_alive: bool,
             date_and_server: bytes) -> bytes:
    """The head of a response to an HTTP/1.1 request whose length is known: ``head``'s result
    for that case, from the prepared lines.  ``added_length`` is a Content-Length the app did
    not give (None if it did).  Not for 204, nor when the app set Date or Server (``own``)."""
    start = prepared.start or prepared.head_start()
    if added_length is not None:
        start += b"Content-Length: %d\r\n" % added_length
    if not keep_alive:
        start += b"Connection: close\r\n"
    return start + date_and_server


def clip_to_length(data: bytes, content_length: int | None, sent: int,
                   log: Logger) -> tuple[bytes, bool]:
    """The part of ``data`` that fits the Content-Length the app promised, and whether some was
    cut: the client then has its whole body and the connection must close after it."""
    if content_length is None or len(data) <= content_length - sent:
        return data, False
    log.warning("app sent more than its Content-Length (%d); truncated", content_length)
    return data[:content_length - sent], True


def bodyless(method: bytes, status: str) -> bool:
    """HEAD responses and 1xx/204/304 carry no body (RFC 9110 9.3.2, 15.3.5, 15.4.5)."""
    return method == b"HEAD" or status.startswith(NO_BODY_STATUS)


def head(req: Request, status: str, headers: Sequence[tuple[str, str]], content_length: int | None,
         keep_alive: bool, date_and_server: str,
         own: frozenset[str] | None = None) -> tuple[bytes, bool, bool]:
    """The response head for ``req``; returns it with (chunked, keep_alive).

    ``keep_alive`` is what the request, the app and the server's state allow; the framing may
    still take it away.  ``own`` names the Date and Server headers the app set (app_headers).
    The head is built as one str and encoded once: this runs per request.
    """
    # A body still unread when the answer starts may never be read; finish_request would then
    # close, so say so now rather than promise a keep-alive we cannot keep.
    keep_alive = keep_alive and req.body_complete()
    chunked = False
    if content_length is None and not bodyless(req.method, status):
        if req.version == "1.1":
            chunked = True
        else:
            keep_alive = False  # HTTP/1.0 without a length: the close ends the body
    if status[2] == "4" and status[:3] == "204":  # RFC 9110 8.6: no Content-Length on a 204
        headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
    lines = [f"HTTP/1.1 {status}\r\n"]
    lines += [f"{name}: {value}\r\n" for name, value in headers]
    if chunked:
        lines.append("Transfer-Encoding: chunked\r\n")
    if not keep_alive:
        lines.append("Connection: close\r\n")
    elif req.version == "1.0":
        lines.append("Connection: keep-alive\r\n")
    if own is not None:  # the app's own Date or Server replaces ours: one of each
        date_and_server = "".join(line + "\r\n" for line in date_and_server.split("\r\n")
                                  if line and line.split(":", 1)[0].lower() not in own) + "\r\n"
    lines.append(date_and_server)
    return "".join(lines).encode("latin-1"), chunked, keep_alive


# RFC 9110's names where Python 3.11's http.HTTPStatus still has RFC 7231's (3.13 has these).
_PHRASES: Final = {413: "Content Too Large", 414: "URI Too Long", 416: "Range Not Satisfiable",
            422: "Unprocessable Content"}


def error_response(status: int, reason: str = "", method: bytes = b"",
                   html: bool = False) -> bytes:
    """A complete plain-text error answer that closes the connection; no body for a HEAD
    request (RFC 9110 9.3.2), whose client would take the body for the next response.
    ``html``: gunicorn's page instead (util.write_error), as for an app's failure."""
    phrase = _PHRASES.get(status) or http.HTTPStatus(status).phrase
    if html:
        page = _HTML_ERROR % (phrase, phrase, html_escape(reason))
        return (f"HTTP/1.1 {status} {phrase}\r\nConnection: close\r\nContent-Type: text/html"
                f"\r\nContent-Length: {len(page)}\r\n\r\n{page if method != b'HEAD' else ''}"
                ).encode("latin-1", "replace")
    body = f"{phrase}\n{reason}\n" if reason else f"{phrase}\n"
    return (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        f"{body if method != b'HEAD' else ''}"
    ).encode("latin-1", "replace")


def early_hints_head(headers: Iterable[Any]) -> bytes:
    """gunicorn 27's ``wsgi.early_hints``: a 103 Early Hints head with the app's (name, value)
    pairs, str or latin-1 bytes.  Raises ValueError for a name or value that would split the
    head (as gunicorn, the message names the field, never its value)."""
    lines = ["HTTP/1.1 103 Early Hints\r\n"]
    for name, value in headers:
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if type(name) is not str or not HEADER_NAME.match(name):
            raise ValueError(f"invalid early hint header name {name!r}")
        if type(value) is not str or BAD_VALUE.search(value):
            raise ValueError(f"invalid value for early hint header {name}")
        value = value.strip(" \t")
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")



# gunicorn's error page, byte for byte (util.write_error): title, heading, message.
_HTML_ERROR: Final = ("<html>\n  <head>\n    <title>%s</title>\n  </head>\n  <body>\n"
               "    <h1><p>%s</p></h1>\n    %s\n  </body>\n</html>\n")

_STATUS_LINES: Final[dict[int, str]] = {}


def status_line(status: Any) -> str:
    # The type first: 200.0 and True are equal to cached ints, and would pass as them.
    line = _STATUS_LINES.get(status) if type(status) is int else None
    if line is None:
        if type(status) is not int or not 100 <= status <= 999:
            raise ValueError(f"invalid ASGI status {status!r}: expected an int like 200")
        try:
            line = f"{status} {_PHRASES.get(status) or http.HTTPStatus(status).phrase}"
        except ValueError:
            line = f"{status} "  # RFC 9112 4: the reason phrase may be empty
        _STATUS_LINES[status] = line
    return line


class ServerHeaders:
    """The Date and Server fields that end every response head, with its blank line, as one
    string and as its bytes: the server's sweep remakes them once a second, handlers read them
    per response."""

    __slots__ = ("software", "lines", "data")

    def __init__(self, software: str) -> None:
        self.software = software
        self.lines = ""
        self.data = b""

    def refresh(self, now: float | None = None) -> None:
        self.lines = f"Date: {http_date(now)}\r\nServer: {self.software}\r\n\r\n"
        self.data = self.lines.encode("latin-1", "replace")


_DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(now: float | None = None) -> str:
    """RFC 9110 5.6.7 IMF-fixdate; by hand because email.utils costs 600 KB per worker and
    strftime's names follow the locale."""
    t = time.gmtime(now)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")
