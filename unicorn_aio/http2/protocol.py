"""One HTTP/2 connection (RFC 9113) on the worker's loop, beside http/protocol.HttpProtocol.

The protocol owns the socket and drives an engine (engine.py: the frames, HPACK and stream
states, sans-IO) with the bytes it reads; each request stream becomes an ``H2Stream``
(stream.py), handed to the same app handler as an HTTP/1.1 request.  What it adds to the
engine is the server's part: when a stream reaches the app, how its body is credited back, how
responses share the connection (windows, backpressure), the bounds of limits.py, and the
connection's life - idle and stall timeouts, the graceful GOAWAY on a stop or after
max_streams_per_connection streams, and the ``TrackedConnection`` the server sweeps.

A graceful end (a stop, a reload, a retirement, the streams-per-connection bound) waits for
the connection to be idle, then sends GOAWAY naming the last stream served (RFC 9113 6.8) and
closes: a client is never told of it while a stream of its is in flight (httpx fails such a
stream), and one that opens a stream meanwhile learns from the GOAWAY that it was not
processed, and retries it.  A client that is never idle is told at once after
max_concurrent_streams more streams.  The close half-closes first and reads on for a moment,
so that what the client sends meanwhile does not reset the connection under the GOAWAY.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from unicorn_aio.http.body import ClientDisconnected, RequestBody
from unicorn_aio.http.contract import (
    NEVER,
    Address,
    AppHandler,
    ConnectionHost,
    RequestCycle,
    peer_of,
)
from unicorn_aio.http.options import HttpOptions
from unicorn_aio.http.protocol import LINGER_SECONDS
from unicorn_aio.http.request import Request
from unicorn_aio.http.response import error_response
from unicorn_aio.http.rules import Reject, check_request_target
from unicorn_aio.http2.engine import (
    CANCEL,
    ENHANCE_YOUR_CALM,
    INTERNAL_ERROR,
    NO_ERROR,
    REFUSED_STREAM,
    ConnectionTerminated,
    DataReceived,
    H2Settings,
    Headers,
    ProtocolError,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from unicorn_aio.http2.engines import make_engine
from unicorn_aio.http2.limits import (
    CONNECTION_HIGH,
    STREAM_HIGH,
    STREAM_LOW,
    ResetCounter,
)
from unicorn_aio.http2.stream import H2Stream, read_request

if TYPE_CHECKING:
    from unicorn_aio.http2.engine import Event


class H2Protocol(asyncio.Protocol):
    """An HTTP/2 connection; the ``TrackedConnection`` (http/contract.py) the server keeps."""

    transport: asyncio.Transport  # set by connection_made

    def __init__(self, host: ConnectionHost, handler: AppHandler, options: HttpOptions,
                 settings: H2Settings, upgrade: tuple[bytes, Request] | None = None) -> None:
        self.host = host
        self.handler = handler
        self.options = options
        self.settings = settings
        self.loop = host.loop
        self.engine = make_engine(settings)
        self.upgrade = upgrade  # an h2c Upgrade: (its HTTP2-Settings, the request: stream 1)
        self.peername: Address = None
        self.app_state: object = None  # the handler's per-connection cache (contract.py)
        self.streams: dict[int, H2Stream] = {}  # open: not yet answered in full, nor reset
        self.deadline = NEVER
        self.quiet = False
        self.opened = NEVER  # loop time of connection_made (the server's shedding reads it)
        self.closing = host.shutting_down  # answer what is in flight, then close
        self.draining = False  # to end once idle (see the module docstring)
        self.goaway_id: int | None = None  # the last stream id a GOAWAY of ours named
        self.ended = False  # closing: the GOAWAY is out, or the connection failed
        self.write_paused = False  # the socket's buffer is full
        self.out_bytes = 0  # response bytes queued in streams, not yet framed
        self.dirty: list[H2Stream] = []  # streams with something to send
        self.blocked: set[H2Stream] = set()  # streams waiting for a window
        self.flush_due = False
        self.receiving = False  # in data_received: it flushes once at the end
        self.last_stream_id = 0
        self.stream_count = 0  # streams accepted on this connection
        self.late_streams = 0  # accepted while draining
        self.resets = ResetCounter()

    # -- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        self.peername = peer_of(transport)
        self.opened = now = self.loop.time()
        self.deadline = now + self.options.header_timeout  # for the client's preface
        self.host.connection_made(self)
        upgrade = self.upgrade
        if upgrade is None:
            self.engine.initiate()
        else:
            self.upgrade = None
            settings, req = upgrade
            self.engine.initiate(settings)
            self._upgraded_stream(req)
        self._flush()

    @property
    def sockname(self) -> Address:
        return self.transport.get_extra_info("sockname")

    def data_received(self, data: bytes) -> None:
        if self.ended:
            return
        self.quiet = False
        self.receiving = True
        try:
            events = self.engine.receive(data)
            if events:
                self.deadline = NEVER  # progress: _update_deadline sets a fresh one
            for event in events:
                self._on_event(event)
                if self.ended:
                    break
        except Exception:
            # Our bug, or an engine's: the connection's state cannot be trusted any more.
            self.host.log.exception("internal error on an HTTP/2 connection from %s",
                                    self.peername)
            self._fail("internal error", INTERNAL_ERROR)
        finally:
            self.receiving = False
        self._flush()

    def eof_received(self) -> bool:
        # An HTTP/2 client that half-closes is gone (no stream can end now), or answers our
        # closing half-close.
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.host.connection_lost(self)
        self.ended = True
        self.deadline = NEVER
        for stream in list(self.streams.values()):
            self._lose(stream)
        self.streams.clear()
        self.blocked.clear()
        self.dirty.clear()

    def pause_writing(self) -> None:
        # The socket's buffer is full: apps pause, and frames the peer sends wait in the kernel
        # (a flood of PINGs whose answers it does not read stops here).
        self.write_paused = True
        self.transport.pause_reading()
        for stream in self.streams.values():
            self._pause(stream)

    def resume_writing(self) -> None:
        self.write_paused = False
        if not self.transport.is_closing():
            self.transport.resume_reading()
        self._resume_all()

    # -- engine events ----------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        kind = type(event)
        if kind is DataReceived:
            assert isinstance(event, DataReceived)
            self._on_data(event)
        elif kind is RequestReceived:
            assert isinstance(event, RequestReceived)
            self._on_request(event.stream_id, event.headers, event.end_stream)
        elif kind is WindowUpdated:
            if self.blocked:
                for waiting in self.blocked:
                    self._mark(waiting)
                self.blocked.clear()
        elif kind is StreamReset:
            assert isinstance(event, StreamReset)
            self._on_reset(event.stream_id)
        elif kind is TrailersReceived or kind is StreamEnded:
            assert isinstance(event, (TrailersReceived, StreamEnded))
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                self._body_ended(stream)
        elif kind is ConnectionTerminated:
            assert isinstance(event, ConnectionTerminated)
            if event.error_code:
                self._fail(f"client sent GOAWAY {event.error_code:#x}", None)
            else:
                self.draining = True  # the client opens no more: close once answered
        elif kind is ProtocolError:
            assert isinstance(event, ProtocolError)
            self._fail(event.message, None)

    def _on_request(self, stream_id: int, headers: Headers, end_stream: bool) -> None:
        self.last_stream_id = max(self.last_stream_id, stream_id)
        engine = self.engine
        if self.goaway_id is not None and stream_id > self.goaway_id or \
                len(self.streams) >= self.settings.max_concurrent_streams:
            # Past our GOAWAY, or over what the peer was told it may open (before our
            # SETTINGS took effect, or while reset streams' apps still run: RFC 9113 5.1.2):
            # refused, which it may retry.
            engine.reset(stream_id, REFUSED_STREAM)
            return
        if self.draining:
            self.late_streams += 1
            if self.late_streams > self.settings.max_concurrent_streams:
                self._goaway()  # never idle: told now, served up to here
        req = Request(self.loop.time(), RequestBody())  # DATA frames may follow any HEADERS
        stream = H2Stream(self, stream_id, req)
        self.streams[stream_id] = stream
        self.stream_count += 1
        if self.stream_count == self.settings.max_streams_per_connection:
            self._drain()
        try:
            read_request(req, headers, self.options, self.peername)
        except Reject as exc:
            self._refuse(stream, exc.status, exc.reason)
            return
        if end_stream:
            self._body_ended(stream)
        elif req.framing.expect_continue:
            self._dispatch(stream)  # the client waits for the app's first read (or a refusal)

    def _on_data(self, event: DataReceived) -> None:
        stream = self.streams.get(event.stream_id)
        data = event.data
        if stream is None or stream.remote_done or stream.finished:
            self.engine.consume(event.stream_id, event.flow_length)  # the connection's share
            return
        body = stream.req.body
        stream.req.received += len(data)
        stream.owed += event.flow_length
        if not body.feed(data):  # under HIGH_WATER: given back at once (see stream.py)
            self.credit(stream)
        # Until the app starts, --inline-body-max bytes at most, as for HTTP/1.1.
        if not stream.req.dispatched and body.buffered > self.options.inline_body_max \
                and not event.end_stream:
            self._dispatch(stream)
        if event.end_stream:
            self._body_ended(stream)

    def _body_ended(self, stream: H2Stream) -> None:
        stream.remote_done = True
        req = stream.req
        req.body.finish()
        if not req.dispatched and not stream.finished:
            self._dispatch(stream)

    def _on_reset(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        started = stream.in_app
        self._lose(stream)
        if started and self.resets.reset():
            self._fail(f"client reset over {self.resets.resets} streams in flight "
                       "(rapid reset)", ENHANCE_YOUR_CALM)

    # -- the app ----------------------------------------------------------------------------

    def _dispatch(self, stream: H2Stream) -> None:
        req = stream.req
        req.dispatched = True
        stream.in_app = True
        body = req.body
        if not body.complete:
            on_loop = self.handler.loop_callback
            body.start_streaming(
                resume_reading=on_loop(stream.resume_reading),
                send_continue=on_loop(stream.send_continue)
                if req.framing.expect_continue else None,
                timeout=self.options.body_timeout, min_rate=self.options.body_min_rate)
        self.handler.start(stream, req)

    def _upgraded_stream(self, req: Request) -> None:
        """Stream 1 of an h2c upgrade: the HTTP/1.1 request, whole (RFC 9113 3.2 in 7540)."""
        stream = H2Stream(self, 1, req)
        stream.upgraded = True
        stream.remote_done = True
        self.streams[1] = stream
        self.stream_count = 1
        self.last_stream_id = 1
        req.version, req.keep_alive = "2", True
        req.framing.upgrade = req.framing.close = False
        self._dispatch(stream)

    def _refuse(self, stream: H2Stream, status: int, reason: str) -> None:
        self.host.log.debug("rejected HTTP/2 request from %s: %d %s", self.peername, status,
                            reason)
        stream.write(error_response(status, reason, stream.req.method))
        stream.finished = True
        self._mark(stream)
        req = stream.req  # counted as HTTP/1.1's refusals are (http/rawhead.py _refused)
        line = (req.method, req.url, "2") if req.method and status not in (414, 431) else None
        if line is not None and req.url[:1] != b"/":
            try:
                check_request_target(req.method, req.url)
            except Reject:
                line = None  # not a request target: no request to log, as for HTTP/1.1
        self.host.request_refused(status, self.loop.time() - req.start, self.peername, line)

    def stream_output(self, stream: H2Stream, n: int) -> None:
        """The handler wrote to ``stream`` (``n`` body bytes)."""
        self.out_bytes += n
        self._mark(stream)
        if stream.queued >= STREAM_HIGH or self.out_bytes >= CONNECTION_HIGH \
                or self.write_paused:
            self._pause(stream)
            if self.out_bytes >= CONNECTION_HIGH:
                for other in self.streams.values():
                    self._pause(other)
        self._schedule_flush()

    def stream_finished(self, stream: H2Stream, cycle: RequestCycle | None) -> None:
        """The handler is done with ``stream`` (finish_request)."""
        stream.in_app = False
        if not stream.upgraded:  # else HTTP/1.1 counted it, at the upgrade
            self.host.services.request_finished(stream.req, cycle)
        if stream.closed:
            return
        if not stream.head_seen or stream.length is not None and not stream.bodyless \
                and stream.sent < stream.length:
            stream.failed = True  # cut short: only a reset tells the client (RFC 9113 8.1.1)
        else:
            self.resets.answered += 1
        self._mark(stream)
        self._schedule_flush()

    def credit(self, stream: H2Stream) -> None:
        """Give the body bytes held back on ``stream`` back to the peer."""
        owed, stream.owed = stream.owed, 0
        if owed and not stream.closed:
            self.engine.consume(stream.stream_id, owed)
            self._schedule_flush()

    def send_continue(self, stream: H2Stream) -> None:
        if not stream.remote_done:
            self.send_interim(stream, [(b":status", b"100")])

    def send_interim(self, stream: H2Stream, headers: Headers) -> None:
        """A 1xx response on ``stream`` (100 Continue, 103 Early Hints), before its head."""
        if not stream.closed and not stream.head_seen:
            self.engine.send_headers(stream.stream_id, headers, False)
            self._schedule_flush()

    def reset_stream(self, stream: H2Stream) -> None:
        """The handler gave the response up (a stalled client): reset, CANCEL."""
        if not stream.closed:
            self.engine.reset(stream.stream_id, CANCEL)
            self._lose(stream)
            self._schedule_flush()

    def _lose(self, stream: H2Stream) -> None:
        """``stream`` is gone (reset, or the connection): its reader and writer are told."""
        stream.closed = stream.ended = True
        self.streams.pop(stream.stream_id, None)
        self.blocked.discard(stream)
        self.out_bytes -= stream.queued
        stream.pending.clear()
        stream.queued = 0
        if stream.owed:  # the connection's window counts them still
            self.engine.consume(stream.stream_id, stream.owed)
            stream.owed = 0
        req = stream.req
        req.body.abort(ClientDisconnected("client reset the stream"))
        cycle = req.cycle
        if cycle is not None:
            cycle.connection_lost()
            req.cycle = None

    # -- sending ----------------------------------------------------------------------------

    def _mark(self, stream: H2Stream) -> None:
        """``stream`` has something to send at the next flush."""
        if not stream.dirty:
            stream.dirty = True
            self.dirty.append(stream)

    def _schedule_flush(self) -> None:
        if not self.flush_due and not self.receiving:
            self.flush_due = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_due = False
        dirty, self.dirty = self.dirty, []
        for stream in dirty:
            stream.dirty = False
            if not stream.ended:
                self._send(stream)
        transport = self.transport
        data = self.engine.data_to_send()
        if data and not transport.is_closing():
            transport.write(data)
        if not self.ended:
            self._update_deadline()

    def _send(self, stream: H2Stream) -> None:
        engine, sid = self.engine, stream.stream_id
        if stream.failed:
            engine.reset(sid, INTERNAL_ERROR)
            self._lose(stream)
            return
        headers = stream.headers
        if headers is not None:
            stream.headers = None
            done = stream.finished and not stream.queued and stream.trailers is None
            engine.send_headers(sid, headers, done)
            if done:
                self._ended(stream)
                return
        elif not stream.head_seen:
            return
        pending = stream.pending
        while pending:
            window = engine.outbound_window(sid)
            if window <= 0:
                self.blocked.add(stream)
                break
            chunk = pending[0]
            if len(chunk) > window:
                part, pending[0] = chunk[:window], chunk[window:]
            else:
                part = pending.popleft()
            n = len(part)
            stream.queued -= n
            self.out_bytes -= n
            last = stream.finished and not pending and stream.trailers is None
            engine.send_data(sid, part, last)  # type: ignore[arg-type]  # a bytes-like
            if last:
                self._ended(stream)
                return
        if stream.finished and not pending:
            if stream.trailers is None:
                engine.send_data(sid, b"", True)
            else:
                engine.send_trailers(sid, stream.trailers)
            self._ended(stream)
        elif stream.paused:
            self._resume_all()

    def _ended(self, stream: H2Stream) -> None:
        """END_STREAM is out: the response is complete."""
        stream.ended = stream.closed = True
        del self.streams[stream.stream_id]
        self.blocked.discard(stream)
        if not stream.remote_done:
            # RFC 9113 8.1: the response is complete; the rest of the body is not wanted.
            self.engine.reset(stream.stream_id, NO_ERROR)
            stream.req.body.abort(ClientDisconnected("the response ended before the body"))
            if stream.owed:
                self.engine.consume(stream.stream_id, stream.owed)
                stream.owed = 0

    def _pause(self, stream: H2Stream) -> None:
        if not stream.paused and stream.in_app:
            stream.paused = True
            cycle = stream.req.cycle
            if cycle is not None:
                cycle.pause_writing()

    def _resume_all(self) -> None:
        if self.write_paused or self.out_bytes >= CONNECTION_HIGH:
            return
        for stream in self.streams.values():
            if stream.paused and stream.queued < STREAM_LOW:
                stream.paused = False
                cycle = stream.req.cycle
                if cycle is not None:
                    cycle.resume_writing()

    # -- life -------------------------------------------------------------------------------

    def _update_deadline(self) -> None:
        now = self.loop.time()
        if not self.streams:
            if self.draining:
                self._close()
            elif self.deadline == NEVER:
                self.deadline = now + (self.options.keepalive or LINGER_SECONDS)
        elif self.blocked or self.write_paused or any(
                not s.req.dispatched for s in self.streams.values()):
            # The client owes us a window or a body: --body-timeout from its last progress.
            if self.deadline == NEVER:
                self.deadline = now + self.options.body_timeout
        else:
            self.deadline = NEVER  # the apps are running

    def on_timeout(self) -> None:
        self.deadline = NEVER
        if self.transport.is_closing():
            return
        if self.ended:
            self.transport.close()  # the lingering close is over
        elif self.streams:
            self.host.log.info("HTTP/2 client %s stalled (a window or a body) for %gs; "
                               "closing", self.peername, self.options.body_timeout)
            self._fail("stalled", NO_ERROR)
        else:
            self._close()

    def _drain(self) -> None:
        """End gracefully: at once if idle, else once the streams in flight are answered."""
        self.draining = True
        if not self.streams and not self.ended:
            self._close()

    def _goaway(self) -> None:
        if self.goaway_id is None:
            self.goaway_id = self.last_stream_id
            self.engine.goaway(NO_ERROR, self.last_stream_id)
            self._schedule_flush()

    def _close(self) -> None:
        """GOAWAY naming the last stream served, then a lingering close (module docstring)."""
        if self.ended:
            return
        self._goaway()
        self.ended = True
        transport = self.transport
        data = self.engine.data_to_send()
        if data:
            transport.write(data)
        if transport.can_write_eof():
            transport.write_eof()
            self.deadline = self.loop.time() + LINGER_SECONDS
        else:
            transport.close()

    def _fail(self, why: str, error_code: int | None) -> None:
        """End the connection now: with GOAWAY ``error_code`` (None: the engine queued its
        own); streams in flight are lost."""
        self.host.log.debug("HTTP/2 connection from %s ends: %s", self.peername, why)
        if error_code is not None and not self.ended:
            self.engine.goaway(error_code, self.last_stream_id)
        self.ended = True
        for stream in list(self.streams.values()):
            self._lose(stream)
        data = self.engine.data_to_send()
        transport = self.transport
        if data and not transport.is_closing():
            transport.write(data)
        if transport.get_write_buffer_size() > CONNECTION_HIGH:
            transport.abort()  # a peer that does not read would hold the close
        else:
            transport.close()

    def shed(self) -> None:
        if not self.streams:
            self.app_state = None

    def shutdown(self) -> None:
        """Graceful stop: the streams in flight finish, then GOAWAY and the close."""
        self.closing = True
        self._drain()
