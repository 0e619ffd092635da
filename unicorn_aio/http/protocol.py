"""One HTTP/1.1 connection on httptools: parsing, keep-alive, pipelining, timeouts, flow control.

The protocol owns the socket; it knows nothing of WSGI or ASGI.  Each parsed request becomes a
``Request`` queued in ``requests``; the head of the queue is handed to the app handler
(``handler.start``) once it can run without waiting on the client - when its body is in, or when
the body is too large to buffer and must stream.  The handler answers through ``transport`` and
calls ``finish_request`` when done, which starts the next pipelined request: responses leave
strictly in request order.  What each side may ask of the other is written down in contract.py.

httptools' callbacks below only record what the parser saw; they never run application code.
"""

from __future__ import annotations

import asyncio
import re
from functools import partial
from typing import Any, Final, cast

import httptools

from unicorn_aio.http.body import ClientDisconnected, RequestBody
from unicorn_aio.http.chunked import ChunkedBody, LengthBody
from unicorn_aio.http.contract import (
    NEVER,
    Address,
    AppHandler,
    ConnectionHost,
    peer_of,
)
from unicorn_aio.http.options import HttpOptions
from unicorn_aio.http.proxy_protocol import HeaderReader
from unicorn_aio.http.rawhead import RawHead
from unicorn_aio.http.request import Request
from unicorn_aio.http.requestline import refused_method_status
from unicorn_aio.http.response import error_response
from unicorn_aio.http.rules import (
    PLAIN,
    Reject,
    check_headers,
    check_request_target,
    check_version,
)

# Read on every request, and imported from a module that is not compiled: as a Final name the
# compiled build reads it from a C static, not from this module's dict.
_NEVER: Final = NEVER
MAX_PIPELINE: Final = 16  # parsed, unanswered requests before we stop reading: pipelining is bounded
LINGER_SECONDS: Final = 2.0
# At a graceful stop an idle keep-alive connection stays this long: time for a request already on
# the wire to be answered, not --keep-alive (nginx's idle upstreams would hold every stop).
STOP_IDLE_GRACE: Final = 1.0
# Empty lines before a request line: llhttp skips CR and LF alike (see RawHead._check_blank).
_EMPTY_LINES: Final = re.compile(rb"[\r\n]*")


class BodyTakeover(Exception):
    """Raised by on_headers_complete to stop llhttp at the end of a head whose body the
    protocol reads itself (``HttpProtocol.body_reader``)."""


class HttpProtocol(RawHead):
    # One of these lives for every open connection, idle keep-alive ones included: slots keep
    # it to a few hundred bytes where an instance dict would take over a kilobyte.
    __slots__ = ("host", "handler", "options", "loop", "limit_line", "limit_fields",
                 "limit_field_size", "limit_head", "limit_window", "parser", "transport",
                 "peername", "requests",
                 "current", "in_head", "deadline", "read_paused", "write_paused", "closing",
                 "lingering", "client_eof", "fed_end", "next_start", "body_len",
                 "uncounted", "app_state", "proxy_header", "quiet", "body_reader", "opened",
                 "idle_since")  # and RawHead's and Output's

    transport: asyncio.Transport  # set by connection_made, before anything reads it

    def __init__(self, host: ConnectionHost, handler: AppHandler, options: HttpOptions) -> None:
        self.host = host
        self.services = host.services
        self.handler = handler
        self.options = options
        self.loop = host.loop
        (self.limit_line, self.limit_fields, self.limit_field_size, self.limit_head,
         self.limit_window) = options.limits
        # None while the connection idles: see shed.
        self.parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self.quiet = False  # no byte since the server's last sweep (it sets this, data clears it)
        self.opened = _NEVER  # loop time of connection_made
        self.idle_since = _NEVER  # loop time its last response finished, if one has (shedding.py)
        # (host, port, ...) for TCP, a path or "" for a unix socket; PROXY header's client
        self.peername: Address = None
        # A list, not a deque: it holds one request or none nearly always, and an empty deque
        # costs 600 bytes on every idle connection.
        self.requests: list[Request] = []
        self.current: Request | None = None  # the request the parser is filling in
        self.in_head = False
        self.head_bytes = 0
        self.deadline = _NEVER
        self.read_paused = False
        self.write_paused = False
        self.closing = host.shutting_down  # answer what is in flight, then close
        self.pending_error: bytes | None = None
        self.out: bytes | list[bytes] | None = None  # response bytes held until the iteration ends
        self.lingering = False
        self.client_eof = False  # the client half-closed: answer what it sent, then close
        # Where the bytes are, as offsets in the stream of bytes parsed so far: llhttp says
        # what it saw, never where, and the request line check, the request line limit and a
        # body_reader need the raw bytes.  ``feeding`` is the read being parsed, at ``fed``.
        self.fed = self.fed_end = 0
        # Where the bytes after the last message begin; -1 until worked out (see _head_end):
        # only a message that follows in the same read needs it.
        self.next_start = 0
        self.body_len = 0  # the Content-Length of the message whose head llhttp parsed last
        self.line_start = 0  # where the current message's request line begins
        # llhttp accepts runs of spaces in the request line ("GET  / HTTP/1.1"); RFC 9112 3
        # allows exactly one SP.  Until the line rebuilt from what llhttp saw has been compared
        # with the raw line, this is b"" (the line begins in ``feeding``) or the line's bytes
        # from earlier reads; None once compared.
        self.line_window: bytes | None = None
        self.tail = b""  # the last bytes of the previous read, while a head spans reads
        self.blank = self.held = b""
        self.line_override: tuple[bytes, bytes, str] | None = None
        self.uncounted = 0  # header fields header_map drops: gunicorn does not count them
        self.feeding = b""
        self.app_state: Any = None  # the app handler's per-connection cache (e.g. base environ)
        # A body read without llhttp (chunked.py), from the end of the head llhttp stopped at.
        self.body_reader: ChunkedBody | LengthBody | None = None
        # --proxy-protocol: reads the PROXY header (and sets peername) before any HTTP byte.
        self.proxy_header = (None if options.proxy_allow is None
                             else HeaderReader(options.proxy_allow))

    # -- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream protocol is always given a full Transport.
        self.transport = transport = cast(asyncio.Transport, transport)
        self.peername = peer_of(transport)
        self.opened = now = self.loop.time()
        self.deadline = now + self.options.header_timeout
        self.host.connection_made(self)

    @property
    def sockname(self) -> Address:
        """The local address, asked of the socket when a request needs it rather than kept:
        146 bytes of every idle connection, the same for all connections to one address."""
        return self.transport.get_extra_info("sockname")

    def connection_lost(self, exc: Exception | None) -> None:
        self.host.connection_lost(self)
        self.parser = None  # it refers back to us: without this, only the collector frees us
        self.deadline = _NEVER
        gone = ClientDisconnected("client disconnected")
        current = self.current
        if current is not None and current not in self.requests:
            current.body.abort(gone)
        for req in self.requests:
            req.body.abort(gone)
            if req.cycle is not None:
                req.cycle.connection_lost()
                req.cycle = None  # as in finish_request
        self.requests.clear()

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return  # closing: the client's remaining bytes are read and dropped
        if self.proxy_header is not None:
            data = self.proxy_header.feed(self, data)
            if not data:
                return
        if self.held:  # the start of a request line llhttp refused (RawHead._line_refused)
            data, self.held = self.held + data, b""
        self.quiet = False
        # llhttp parses, or ``body_reader`` while it reads a body llhttp handed over (see
        # on_headers_complete); each takes what is its own and leaves the rest to the other.
        while data:
            self.fed = fed = self.fed_end
            self.fed_end = fed + len(data)
            reader = self.body_reader
            if reader is not None:
                try:
                    rest = reader.feed(data)
                except Reject as refused:
                    self._reject(refused.status, refused.reason)
                    return
                if rest is None:
                    return
                self.body_reader = None
                self.next_start = self.fed_end = self.fed_end - len(rest)
                self.on_message_complete()
                if self.lingering or self.transport.is_closing():
                    return
                data = rest
                continue
            parser = self.parser
            if parser is None:
                parser = self.parser = httptools.HttpRequestParser(self)
            if self.current is None:
                self.next_start = fed  # between messages: the next begins in this read
            self.feeding = data
            try:
                parser.feed_data(data)
            except httptools.HttpParserUpgrade as upgrade:
                data = self._on_upgrade(data, upgrade.args[0])
                continue
            except httptools.HttpParserCallbackError as failed:
                context = failed.__context__
                if type(context) is BodyTakeover:
                    self.parser = None  # stopped at the head: a fresh one reads what follows
                    data = data[self.next_start - fed:]
                    self.fed_end = self.next_start
                    continue
                if isinstance(context, Reject):
                    self._reject(context.status, context.reason)
                else:
                    self.host.log.exception("internal error while parsing a request")
                    self._reject(500, "")
            except httptools.HttpParserError as exc:
                if self.line_window is not None and self.line_override is None:
                    again = self._line_refused(data)  # one gunicorn serves? (requestline.py)
                    if again is not None:  # parse again from the line's start, with a new parser
                        self.parser, self.current, self.fed_end = None, None, self.line_start
                        if not again:
                            break  # held until the line is complete
                        data = again
                        continue
                if isinstance(exc, httptools.HttpParserInvalidMethodError):
                    status = refused_method_status(self._line_so_far(data))
                    self._reject(status, "unknown method" if status == 501 else "invalid method")
                else:
                    self._reject(400, str(exc))
            else:
                if self.in_head:
                    self._head_continues(data)
                elif self.fed_end > self.next_start:
                    # The head ended in this read and its body goes on, or the message ended
                    # and only CRs and LFs follow: where the next begins is known now.
                    next_start = self.next_start
                    if next_start < 0 and self.current is None and not self.body_len and \
                            len(data) > 4 and data.endswith(b"\r\n\r\n") and data[-5] not in (13, 10):
                        # The usual read, without searching it: a message finished with nothing
                        # begun after it, so only CRs and LFs follow its head (llhttp skips
                        # them), and the byte before the head's blank line is neither (llhttp
                        # refuses them bare).  A read ending in one CRLF CRLF ends with it.
                        next_start = self.next_start = self.fed_end
                    elif next_start < 0:
                        next_start = self.next_start = self._head_end() + self.body_len
                    # Bytes after the message's end, none of them a message: CRs and LFs.
                    if self.current is None and next_start < self.fed_end:
                        try:
                            self._check_blank(data[max(next_start - fed, 0):], False)
                        except Reject as refused:
                            self._reject(refused.status, refused.reason)
            break
        self.feeding = b""  # do not keep the last packet alive on an idle connection

    def eof_received(self) -> bool:
        self.flush()  # a False below closes the transport: what we hold must go first
        if self.lingering:
            return False  # the client has finished too: close now
        self.client_eof = True
        current = self.current
        if current is not None:
            # The message in progress can never complete: without this, a request whose body
            # was cut by a half-close would sit until --body-timeout.  An app already reading
            # it gets ClientDisconnected; one not yet started on it is never called.
            self.current = None
            self.body_reader = None
            current.body.abort(ClientDisconnected("client closed the connection mid-request"))
            if not current.dispatched and current in self.requests:
                self.requests.remove(current)
        # A client that half-closes after its request still wants the answer (RFC 9112 9.6) -
        # unless the handler takes the end of input for the client leaving: an ASGI long-poll
        # must learn that its client is gone (uvicorn does the same).
        return bool(self.requests) and not self.handler.eof_is_disconnect

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.requests and self.requests[0].cycle is not None:
            self.requests[0].cycle.pause_writing()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.requests and self.requests[0].cycle is not None:
            self.requests[0].cycle.resume_writing()

    # -- httptools callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        feeding, fed, next_start = self.feeding, self.fed, self.next_start
        if next_start < 0:  # the last message ended in this read
            next_start = self.next_start = self._head_end() + self.body_len
        start = next_start - fed if next_start > fed else 0  # before: empty lines
        if feeding[start] in (13, 10):  # CR, LF
            stop = _EMPTY_LINES.match(feeding, start).end()  # type: ignore[union-attr]
            self._check_blank(feeding[start:stop], True)
            start = stop
        elif self.blank:
            self._check_blank(b"", True)
        self.line_start = fed + start
        self.line_window = b"" if self.line_override is None else None  # a stand-in: checked
        self.uncounted = 0
        now = self.loop.time()
        self.current = Request(now)
        self.in_head = True
        self.head_bytes = 0
        if not self.requests:
            self.deadline = now + self.options.header_timeout

    # From on_message_begin to on_message_complete the parser fills in ``current`` (asserted).

    def on_url(self, url: bytes) -> None:
        req = self.current
        assert req is not None
        req.url += url
        if self.limit_line and len(req.url) > self.limit_line:
            raise Reject(414, f"request line longer than {self.limit_line} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        req = self.current
        assert req is not None
        if self.line_window is not None:
            self._check_request_line(req)
        headers = req.headers
        # gunicorn counts the fields it keeps, and a field line as "name: value" CRLF, with the
        # value's trailing whitespace: llhttp has dropped the whitespace before the value.
        count = len(headers)
        if count >= self.limit_fields and count - self.uncounted >= self.limit_fields:
            raise Reject(431, f"more than {self.limit_fields} header fields")
        if len(name) + len(value) + 4 > self.limit_field_size:
            raise Reject(431, f"header field longer than {self.limit_field_size} bytes: "
                         + name[:64].decode("latin-1"))
        if value and value[-1] in (32, 9):  # SP, HTAB
            value = value.rstrip(b" \t")  # RFC 9110 5.5: OWS is not part of the value
        headers.append((name, value))
        if 95 in name and self._dropped(name):  # 95: "_", see rules.UNDERSCORE
            self.uncounted += 1

    def on_headers_complete(self) -> None:
        req, parser = self.current, self.parser
        assert req is not None and parser is not None
        self.in_head = False
        if self.line_override is not None:  # parsed from a stand-in line (requestline.py)
            (req.method, req.url, req.version), self.line_override = self.line_override, None
        elif self.line_window is not None:  # no field came: the line is checked here
            self._check_request_line(req)
        # The checks below, for the usual case without their calls.
        if req.version != "1.1" and req.version != "1.0":
            check_version(req.version)
        if req.url[:1] != b"/":
            check_request_target(req.method, req.url)
        options = self.options
        framing, req.headers = check_headers(req.headers, req.version, options.header_map,
                                             options.forwarder_headers)
        req.framing = framing
        self.next_start = -1
        if framing is PLAIN:  # no body, nothing more to decide: most requests
            self.body_len = 0
            # llhttp's should_keep_alive() without its call: no Connection field came.
            req.keep_alive = req.version == "1.1" and options.keepalive > 0
        else:
            if framing.forwarded and options.proxy_headers.enabled:
                req.headers, req.proxied = options.proxy_headers.read(req.headers, self.peername)
            self.body_len = framing.content_length or 0
            if self.body_len or framing.chunked:
                req.body = RequestBody()  # until now the shared NO_BODY
            if framing.upgrade and (framing.chunked or framing.content_length):
                # We switch protocols for none of these (h2c is what curl --http2 -d sends), so
                # it is an ordinary request - whose body llhttp would take for the new
                # protocol's.
                framing.upgrade = False
                if not framing.chunked:
                    self.body_reader = LengthBody(self.on_body, self.body_len)
            if framing.chunked:
                self.body_reader = ChunkedBody(self.on_body, options.header_map,
                                               self.limit_fields, self.limit_field_size)
            # An upgrade we do not perform leaves the connection to HTTP (see _on_upgrade).
            req.keep_alive = (parser.should_keep_alive() and options.keepalive > 0
                              and not framing.close)
        requests = self.requests
        requests.append(req)
        if len(requests) > MAX_PIPELINE:
            self.pause_reading()
        if framing is PLAIN:
            return  # no body: llhttp completes the message next, in this same call
        if req is requests[0] and (self.body_len or framing.chunked):
            self.deadline = self.loop.time() + options.body_timeout
            # A large declared Content-Length alone does not dispatch: the app runs once the
            # first inline_body_max bytes are in (on_body) or the body is.  Dispatching on the
            # head would let any client that declares 1 MB and trickles it pin an app thread
            # in wsgi.input.read(); this way a slow uploader costs a socket and at most
            # inline_body_max bytes.  Only Expect: 100-continue dispatches now, because the
            # client waits for the app's first read before sending anything.
            if req.framing.expect_continue:
                self._start(req)
        if self.body_reader is not None:
            self.next_start = self._head_end()  # llhttp stops here, the reader goes on
            raise BodyTakeover

    def on_body(self, data: bytes) -> None:
        req = self.current
        assert req is not None
        req.received += len(data)
        if req.body.feed(data):
            self.pause_reading()
        if not req.dispatched:
            if req.body.buffered > self.options.inline_body_max:
                if req is self.requests[0]:
                    self._start(req)
                else:
                    self.pause_reading()  # resumed when it reaches the head of the queue
            elif req is self.requests[0]:
                self.deadline = self.loop.time() + self.options.body_timeout

    def on_message_complete(self) -> None:
        req = self.current
        assert req is not None
        self.current = None
        if not req.body_complete():  # most have no body, complete from the start
            req.body.finish()
        if not req.dispatched and req is self.requests[0]:
            # _start, for a body that is complete: nothing to stream.
            req.dispatched = True
            self.deadline = _NEVER
            self.handler.start(self, req)

    # -- request life -----------------------------------------------------------------------

    def _start(self, req: Request) -> None:
        req.dispatched = True
        self.deadline = _NEVER  # the app is running; the client owes us nothing right now
        body = req.body
        if not body.complete:
            # The handler makes these callable from where its app reads the body.
            on_loop = self.handler.loop_callback
            body.start_streaming(
                resume_reading=on_loop(self.resume_reading),
                send_continue=on_loop(partial(self._send_continue, req))
                if req.framing.expect_continue else None,
                timeout=self.options.body_timeout,
                min_rate=self.options.body_min_rate,
            )
        self.handler.start(self, req)

    def _send_continue(self, req: Request) -> None:
        if not self.transport.is_closing() and not req.body.complete:
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def finish_request(self, req: Request, keep_alive: bool) -> None:
        """The handler has written the whole response for ``req`` (the head of the queue)."""
        # The handler's object and the request refer to each other: part them, so that both go
        # when the handler lets go, not at the collector's next pass (which, with 10 objects of
        # garbage per request, came every 70 requests and promoted what was in flight).
        cycle, req.cycle = req.cycle, None
        requests = self.requests
        if not requests or requests[0] is not req:
            return  # connection already lost and cleared
        del requests[0]
        self.services.request_finished(req, cycle)
        if self.transport.is_closing():
            return
        after_upgrade = req.upgrade  # an upgrade not performed: see below
        if after_upgrade is not None:
            req.upgrade = None
        # ``keep_alive`` is what the response head told the client.  A stop that came after the
        # head went out (on an app thread, say) must not close now: the client, told to keep
        # the connection, may be sending its next request already.  It is answered with
        # Connection: close, like any request reaching a closing connection.
        if not (keep_alive and req.body_complete()):
            # An unread body would be parsed as the next request; never keep such a connection.
            self._close(linger=not req.body_complete())
            return
        if requests:
            nxt = requests[0]
            if nxt.body_complete() or nxt.body.buffered > self.options.inline_body_max or \
                    nxt.framing.expect_continue:
                self._start(nxt)
            else:
                self.deadline = self.loop.time() + self.options.body_timeout
        elif self.pending_error is not None:
            self.write(self.pending_error)
            self._close(linger=True)
            return
        elif self.client_eof and not after_upgrade:
            # Nothing more can arrive: waiting out the keep-alive timeout would only hold the
            # socket (and make a client that reads until EOF wait for it).
            self._close(linger=False)
            return
        elif self.current is not None:
            self.deadline = self.current.start + self.options.header_timeout
        else:
            self.idle_since = now = self.loop.time()
            self.deadline = now + self.options.keepalive
            if self.closing:
                self.shutdown()  # idle while the server stops: STOP_IDLE_GRACE, not keep-alive
        if self.read_paused and len(self.requests) <= 1:
            self.resume_reading()
        if after_upgrade:
            self.data_received(after_upgrade)  # what came after it: HTTP, as gunicorn reads it

    def _on_upgrade(self, data: bytes, offset: int) -> bytes:
        """llhttp stopped after a head asking for a protocol switch: the bytes from ``offset``
        on are not its to parse.  A handler that switches (ASGI WebSocket) finds them on the
        request and calls ``detach``; otherwise they are HTTP again once the request is
        answered (finish_request), as gunicorn serves them.  Returns what to parse now."""
        self.next_start = self.fed_end = self.fed + offset
        self.parser = None  # a fresh one for whatever HTTP follows
        rest = data[offset:]
        if not self.requests:
            return rest  # already answered (inline dispatch): go on
        self.pause_reading()
        self.requests[-1].upgrade = rest
        return b""

    def answering(self, req: Request) -> bool:
        """``req`` is the request this connection answers now (it is still open)."""
        return bool(self.requests) and self.requests[0] is req

    def detach(self, req: Request, successor: asyncio.Protocol) -> None:
        """The handler takes the connection over after ``req`` (an upgrade it accepted):
        ``successor`` becomes the transport's protocol and is told so, as asyncio would tell
        it, by ``connection_made`` - where it registers with the host.  The HTTP side forgets
        the connection."""
        self.requests.clear()
        self.deadline = _NEVER
        self.flush()  # the successor writes to the transport itself
        transport = self.transport
        transport.set_protocol(successor)
        successor.connection_made(transport)
        # After the successor registered: the host never counts one connection fewer than it
        # holds (with --worker-connections that would resume accepting while full).
        self.host.connection_lost(self)
        self.services.request_finished()

    def _close(self, linger: bool) -> None:
        """Close; with ``linger``, half-close first and discard what the client still sends.

        Closing a socket with unread input makes the kernel answer with RST, which can destroy
        the response still in flight to the client (nginx's lingering_close solves the same).
        """
        self.flush()
        transport = self.transport
        if linger and transport.can_write_eof():
            self.lingering = True
            transport.write_eof()
            self.deadline = self.loop.time() + LINGER_SECONDS
            self.resume_reading()
        else:
            transport.close()

    def on_timeout(self) -> None:
        self.deadline = _NEVER
        if self.transport.is_closing():
            return
        if self.lingering:
            self.transport.close()
            return
        if self.current is not None or self.requests:
            # Headers or a buffered body stalled: tell the client why (RFC 9110 15.5.9).
            self.write(error_response(408))
        self._close(linger=False)

    @property
    def idle(self) -> bool:
        """Between messages: nothing being parsed, answered or lingered over."""
        return self.current is None and not self.requests and not self.lingering

    def shed(self) -> None:
        """The connection has idled a whole sweep between messages: drop the parser, made again
        by the next byte, and the handler's per-connection cache, made again by the next request.

        With its bound method per callback the parser is 8 of an idle connection's 15 objects
        the garbage collector tracks, and every full collection walks them all: with many idle
        connections, dropping it shortens those pauses.  The cache is 118 bytes of an idle
        connection's 3 KB."""
        if self.idle:
            self.parser = None
            self.app_state = None

    def pause_reading(self) -> None:
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        requests = self.requests  # not while the last holds what followed its upgrade (first)
        if self.read_paused and not self.transport.is_closing() and not (
                requests and requests[-1].upgrade is not None):
            self.read_paused = False
            self.transport.resume_reading()

    def shutdown(self) -> None:
        """Graceful stop: every request that reaches us is answered, with Connection: close.

        An idle connection is not closed on the spot: a client that just connected, or that
        reuses a keep-alive connection, may have its request on the wire already, and closing
        would lose it.  It closes after its next response, or STOP_IDLE_GRACE from now if
        nothing comes - the same race any keep-alive close has, no worse.
        """
        self.closing = True
        if self.idle:
            self.deadline = min(self.deadline, self.loop.time() + STOP_IDLE_GRACE)

