"""Where a request's head is in the bytes read: what llhttp reports, held against the raw bytes;
and refusing a request (``_reject``), with gunicorn's log line and the host's count.

llhttp says what it parsed, never where.  The checks here need the raw bytes: that the request
line is exactly method SP target SP version CRLF (llhttp accepts runs of spaces, RFC 9112 3
allows one SP), how long that line is (limit_request_line counts the whole line, as gunicorn
does), and where the head ends (a body read without llhttp begins there).  ``HttpProtocol``
keeps stream offsets for them: ``feeding`` is the read being parsed, at offset ``fed``; the
current request line begins at ``line_start``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from unicorn_aio.http.body import ClientDisconnected
from unicorn_aio.http.forwarded import peer_address
from unicorn_aio.http.output import Output
from unicorn_aio.http.requestline import may_become, stand_in
from unicorn_aio.http.response import error_response
from unicorn_aio.http.rules import Reject, check_request_target, check_version

# What ends a request line, by version: joined, not %-formatted, for every request.
_LINE_ENDS: Final = {"1.1": b" HTTP/1.1\r\n", "1.0": b" HTTP/1.0\r\n"}
# A complete request line, roughly: the exact check is _check_request_line's.
_LINE_SHAPE: Final = re.compile(rb"[^ \r\n]+ [^ \r\n]+ HTTP/[0-9]\.[0-9]$")

if TYPE_CHECKING:
    import asyncio

    import httptools

    from unicorn_aio.http.contract import Address
    from unicorn_aio.http.options import HttpOptions
    from unicorn_aio.http.request import Request


class RawHead(Output):
    """HttpProtocol's checks on the raw bytes of a head (its base class: the state is set by
    HttpProtocol)."""

    # Set by HttpProtocol: the offsets and bytes below, read and kept here.
    __slots__ = ("fed", "feeding", "line_start", "line_window", "tail", "head_bytes", "blank",
                 "held", "line_override", "pending_error")
    fed: int
    feeding: bytes
    line_start: int
    line_window: bytes | None
    tail: bytes
    head_bytes: int
    blank: bytes  # the CR and LF bytes read since the last message ended
    held: bytes  # a request line llhttp refused, incomplete: parsed again with the next read
    line_override: tuple[bytes, bytes, str] | None  # what a stand-in line stands for
    pending_error: bytes | None  # a refusal's response, once the requests before it are answered
    # HttpProtocol's
    limit_line: int
    limit_head: int
    limit_window: int
    parser: httptools.HttpRequestParser | None
    options: HttpOptions
    peername: Address
    loop: asyncio.AbstractEventLoop
    current: Request | None
    requests: list[Request]

    def pause_reading(self) -> None:
        raise NotImplementedError  # HttpProtocol's

    def _close(self, linger: bool) -> None:
        raise NotImplementedError  # HttpProtocol's

    def _reject(self, status: int, reason: str) -> None:
        """Refuse the request being read: answer ``status`` (after the answers to earlier
        pipelined requests) and close."""
        self.pause_reading()
        self._refused(status, reason)  # logged and counted
        data = error_response(status, reason)
        current = self.current
        if current is not None and current.dispatched:
            # A bad chunk in a body its app reads: its reads fail now (not at --body-timeout),
            # the client is told why unless its response has begun.
            current.body.abort(ClientDisconnected(f"invalid request body: {reason}"))
            cycle = current.cycle
            if cycle is not None:
                if cycle.head_sent:
                    data = b""
                cycle.connection_lost()  # its handler writes no more
        elif any(req.dispatched for req in self.requests):
            # Earlier pipelined requests are still being answered; the error goes after them.
            self.pending_error = data
            return
        self.requests.clear()
        self.write(data)
        self._close(True)  # lingering

    def _refused(self, status: int, reason: str) -> None:
        """A request refused with ``status``: gunicorn's warning, and the host's count of it
        (stats; an access line and statsd's counters once its request line was read and
        accepted, as gunicorn logs one only with a request).  Only refusals pay for this."""
        peer = self.peername  # gunicorn's line, at its level:
        self.host.log.warning("Invalid request from ip=%s: %s", peer[0] if type(peer) is tuple
                              else peer or "unix socket", reason or status)
        req, line = self.current, None
        if req is not None and self.line_window is not None and self.line_override is None \
                and self.parser is not None:
            try:  # llhttp refused the head before any field reached us: was the line whole?
                self._check_request_line(req)
            except Reject:
                pass
        if req is not None and req.dispatched:
            cycle = req.cycle  # a bad chunk in a body its app reads
            if cycle is not None and cycle.head_sent:
                return  # its app's answer is on the way: its handler counts that
        # The line was read and checked (see below); gunicorn has no request for a 431.
        if req is not None and self.line_window is None and status != 431:
            method = getattr(req, "method", None)  # set once the line was checked
            parser = self.parser
            if method is not None:
                line = (method, req.url, req.version)
            elif self.line_override is not None:
                line = self.line_override
            elif parser is not None:
                line = (parser.get_method(), req.url, parser.get_http_version())
            try:  # what on_headers_complete checks of the line: refused, it is not one
                if line is not None:
                    check_version(line[2])
                    check_request_target(line[0], line[1])
            except Reject:
                line = None
        self.host.request_refused(status, self.loop.time() - req.start if req else 0.0,
                                  peer, line)

    def _head_continues(self, data: bytes) -> None:
        """A read ended inside a head: keep what the next read needs of it."""
        self.head_bytes += len(data)
        if self.head_bytes > self.limit_head:
            self._reject(431, "request header block too large")
            return
        self.tail = (self.tail + data)[-3:]  # see _head_end
        window = self.line_window
        if window is not None:  # the request line has not been checked yet
            window += data[max(self.line_start - self.fed, 0):]
            end = window.find(b"\r\n")
            if len(window) > self.limit_window or self.limit_line and (
                    end > self.limit_line or end < 0 and len(window) > self.limit_line + 1):
                self._reject(414, f"request line longer than {self.limit_line} bytes")
                return
            if end >= 0 and not _LINE_SHAPE.match(window, 0, end):
                # llhttp would wait for the head's end to refuse it; gunicorn refuses the line.
                self._reject(400, "malformed request line (RFC 9112 3: method SP target SP "
                                  "HTTP-version)")
                return
            self.line_window = window

    def _head_end(self) -> int:
        """Where the head llhttp has just parsed ends: after the first blank line past its
        request line (llhttp refuses a bare CR or LF, so no other CRLF CRLF comes first)."""
        start = self.line_start - self.fed
        if start >= 0:
            return self.fed + self.feeding.find(b"\r\n\r\n", start) + 4
        tail = self.tail  # the head began in an earlier read; its end may straddle the two
        return self.fed + (tail + self.feeding).find(b"\r\n\r\n") - len(tail) + 4

    def _check_request_line(self, req: Request) -> None:
        """The request line is complete: it must be exactly method SP target SP version CRLF,
        and, as gunicorn counts it, no longer than limit_request_line without its CRLF.  Sets
        the request's method and version, as llhttp parsed them."""
        window = self.line_window  # None once the line passed (_refused reads that)
        parser = self.parser
        assert window is not None and parser is not None
        start = self.line_start - self.fed
        # The usual line, recognised by its bytes: llhttp parsed these very bytes, so its method
        # and version are GET and 1.1 (and asking it costs two calls).
        line = b"".join((b"GET ", req.url, _LINE_ENDS["1.1"]))
        feeding = self.feeding
        # startswith without a start is compiled to a memcmp; with one, it is a method call.
        usual = feeding.startswith(line) if start == 0 else start > 0 and \
            feeding.startswith(line, start)
        if usual:
            req.method, req.version = b"GET", "1.1"
        else:
            req.method = method = parser.get_method()
            req.version = version = parser.get_http_version()
            end = _LINE_ENDS.get(version) or b" HTTP/%s\r\n" % version.encode()
            line = b"".join((method, b" ", req.url, end))
        if self.limit_line and len(line) - 2 > self.limit_line:
            raise Reject(414, f"request line longer than {self.limit_line} bytes")
        if not usual:
            if start >= 0:
                ok = self.feeding.startswith(line, start)
            else:  # begun in an earlier read
                ok = (window + self.feeding).startswith(line)
            if not ok:
                raise Reject(400, "malformed request line (RFC 9112 3: single spaces, CRLF)")
        self.line_window = None

    def _line_so_far(self, data: bytes) -> bytes:
        """The bytes from the current request line's start to the end of ``data`` (the read
        being parsed), those of earlier reads included."""
        start = self.line_start - self.fed
        return data[start:] if start >= 0 else (self.line_window or b"") + data

    def _line_refused(self, data: bytes) -> bytes | None:
        """llhttp refused the request line being read (``data`` is the read): the bytes to
        parse again from the line's start, with a stand-in line (requestline.py); b"" when the
        line is not complete yet (it is held for the next read); None when it is not a line
        gunicorn would serve either."""
        raw = self._line_so_far(data)
        end = raw.find(b"\r\n")
        if end < 0:
            if len(raw) > self.limit_window or not may_become(raw):
                return None
            self.held = raw
        else:
            if self.limit_line and end > self.limit_line:
                return None
            options = self.options
            found = stand_in(raw[:end], options.permit_method, options.casefold_method)
            if found is None:
                return None
            line, self.line_override = found
            raw = line + raw[end:]
        return raw if end >= 0 else b""

    def _check_blank(self, blank: bytes, line_follows: bool) -> None:
        """RFC 9112 2.2: a server SHOULD ignore at least one empty line (CRLF) before a request
        line.  As gunicorn, exactly one is: any other CR or LF there is a request line that
        cannot be one (llhttp would skip any number of CRs and LFs)."""
        blank = self.blank + blank
        if blank != b"\r\n" and (line_follows or not b"\r\n".startswith(blank)) and blank:
            raise Reject(400, "invalid request line: more than one empty line, or a bare CR "
                              "or LF, before it")
        self.blank = b"" if line_follows else blank

    def _dropped(self, name: bytes) -> bool:
        """Whether check_headers will drop this underscore name (header_map drop), or
        ProxyHeaders will (a forwarder header from an untrusted peer): gunicorn does not count
        it against limit_request_fields."""
        options = self.options
        if options.header_map != "drop":
            return False
        forwarders = options.forwarder_headers
        if forwarders and (name.upper() in forwarders or b"*" in forwarders):
            return peer_address(self.peername) not in options.proxy_headers.trusted
        return True
