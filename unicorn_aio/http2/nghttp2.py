"""The HTTP/2 engine on libnghttp2 (the C library curl uses), bound in http2/libnghttp2.py.

libnghttp2 frames, decodes HPACK, tracks stream states and enforces RFC 9113's rules in C; this
module turns its callbacks into the events of ``http2/engine.py``. What it defends by itself,
and how the engine reports it (``ProtocolError`` with a GOAWAY queued):

* CONTINUATION flood (CVE-2024-28182, nghttp2's of the CVE-2024-27316 family): more than
  ``MAX_CONTINUATIONS`` CONTINUATION frames after a HEADERS is a fatal error (Debian's
  1.52.0-1+deb12u2 carries the fix);
* rapid reset (CVE-2023-44487): RST_STREAMs past a token bucket end the session with GOAWAY
  (1.52.0-1+deb12u1); the count the tests check is the protocol's, the bucket is a backstop;
* PING and SETTINGS floods: answered at most ``FLOOD_BUDGET`` times without a request between
  them, as the h2 engine does, and the library's own cap on queued acks;
* HPACK bombs and oversized header lists: a header list past ``max_header_list_size`` stops
  being decoded into Python and its stream is reset (RST_STREAM ENHANCE_YOUR_CALM); with at
  most 9 frames of max_frame_size in a block, the C side's work is bounded too.

Each cffi callback costs about a microsecond of Python, so a request costs: one
``on_begin_headers``, one ``on_header`` per field, one ``on_frame_recv`` (HEADERS), one data
read per DATA frame sent and one ``on_stream_close``. Frames we send are taken with
``nghttp2_session_mem_send`` (no callback), and nothing is called per frame sent.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from unicorn_aio.http2.engine import (
    ENHANCE_YOUR_CALM,
    FLOOD_BUDGET,
    NO_ERROR,
    PROTOCOL_ERROR,
    ConnectionTerminated,
    DataReceived,
    Event,
    H2Settings,
    Headers,
    ProtocolError,
    RequestReceived,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from unicorn_aio.http2.libnghttp2 import (
    DATA,
    DATA_FLAG_EOF,
    DATA_FLAG_NO_END_STREAM,
    ERR_DEFERRED,
    ERR_FLOODED,
    ERR_TEMPORAL_CALLBACK_FAILURE,
    ERR_TOO_MANY_CONTINUATIONS,
    FLAG_ACK,
    FLAG_END_STREAM,
    GOAWAY,
    HCAT_REQUEST,
    HEADERS,
    PING,
    RST_STREAM,
    SETTINGS,
    SETTINGS_INITIAL_WINDOW_SIZE,
    SETTINGS_MAX_CONCURRENT_STREAMS,
    SETTINGS_MAX_FRAME_SIZE,
    SETTINGS_MAX_HEADER_LIST_SIZE,
    WINDOW_UPDATE,
    check,
    ffi,
    from_buffer,
    lib,
    library_version,
    memmove,
    newp,
    strerror,
    unpack,
)

# CONTINUATION frames accepted after one HEADERS (the library's default since the fix): with
# max_frame_size they bound a header block's bytes, hence the HPACK work a peer can ask for.
MAX_CONTINUATIONS = 8
# RST_STREAMs the library accepts in a burst, then per second, before GOAWAY: a backstop
# behind the protocol's count of streams reset after its app call started.
RESET_BURST, RESET_RATE = 1000, 33
# --http2-max-header-list-size 0: no limit but the protocol's largest value (as the h2 engine).
UNLIMITED = 2 ** 31 - 1
# Per HPACK (RFC 7541 4.1) a field costs its name and value plus 32 octets.
FIELD_OVERHEAD = 32
# Hop-by-hop fields HTTP/2 forbids (RFC 9113 8.2.2): a client treats the response as malformed.
CONNECTION_SPECIFIC = frozenset((b"connection", b"keep-alive", b"proxy-connection",
                                 b"transfer-encoding", b"upgrade"))

_CHAR_P = ffi.typeof("char *")
_CHAR_A = ffi.typeof("char[]")
_NV_ARRAY = ffi.typeof("nghttp2_nv[]")


class _Outbound:
    """One stream's response body between ``send_data`` and the library's data reads."""

    __slots__ = ("chunks", "offset", "size", "ended", "trailers", "deferred", "then_reset")

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.offset = 0          # into chunks[0]
        self.size = 0            # bytes not yet framed
        self.ended = False       # the app's last byte is in chunks
        self.trailers: Headers | None = None
        self.deferred = False    # the library waits for resume_data
        self.then_reset = False  # RST_STREAM(NO_ERROR) once the last byte is framed


def _bind_callbacks(self: NghttpEngine) -> dict[str, Any]:
    """The library's callbacks for one engine, as closures over it: a handle looked up per
    call would add a Python call to each of the ~11 callbacks a request costs."""
    block: Headers = []
    block_size = 0
    max_header_list = self.settings.max_header_list_size or UNLIMITED
    events_of = self  # self._events is replaced on each receive
    open_streams = self._open
    reported = self._reported
    outbound = self._outbound
    cast = ffi.cast

    def on_begin_headers(session: Any, frame: Any, user_data: Any) -> int:
        nonlocal block, block_size
        block = []
        block_size = 0
        self._floods = 0
        return 0

    def on_header(session: Any, frame: Any, name: Any, namelen: int, value: Any, valuelen: int,
                  flags: int, user_data: Any) -> int:
        nonlocal block_size
        block_size += namelen + valuelen + FIELD_OVERHEAD
        if block_size > max_header_list:
            # The rest of the block is still decoded (the HPACK state stays in step) but
            # reaches no callback: an HPACK bomb costs C time, not Python's. The stream is
            # refused (RFC 9113 10.5.1: the connection goes on).
            self.oversized_header_lists += 1
            lib.nghttp2_submit_rst_stream(session, 0, frame.hd.stream_id, ENHANCE_YOUR_CALM)
            return ERR_TEMPORAL_CALLBACK_FAILURE
        block.append((unpack(name, namelen), unpack(value, valuelen)))
        return 0

    chunk_stream = 0
    chunks: list[bytes] = []

    def on_data_chunk(session: Any, flags: int, stream_id: int, data: Any, length: int,
                      user_data: Any) -> int:
        nonlocal chunk_stream, chunks
        chunk = unpack(cast(_CHAR_P, data), length)
        if chunk_stream == stream_id:
            chunks.append(chunk)
        else:
            chunk_stream = stream_id
            chunks = [chunk]
        return 0

    def on_frame_recv(session: Any, frame: Any, user_data: Any) -> int:
        nonlocal block, chunk_stream
        hd = frame.hd
        kind = hd.type
        if kind == HEADERS:
            sid = hd.stream_id
            if frame.headers.cat == HCAT_REQUEST:
                open_streams.add(sid)
                events_of._events.append(RequestReceived(sid, block, bool(hd.flags & FLAG_END_STREAM)))
            else:
                events_of._events.append(TrailersReceived(sid, block))
            block = []
        elif kind == DATA:
            sid = hd.stream_id
            if chunk_stream == sid:
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                chunk_stream = 0
            else:
                data = b""
            # The library gives padding back itself; the protocol gives back the data.
            events_of._events.append(DataReceived(sid, data, len(data), bool(hd.flags & FLAG_END_STREAM)))
        elif kind == RST_STREAM:
            sid = hd.stream_id
            self._resets += 1
            self._drop_outbound(sid)
            if sid in open_streams:
                reported.add(sid)
                events_of._events.append(StreamReset(sid, frame.rst_stream.error_code))
        elif kind == WINDOW_UPDATE:
            events_of._events.append(WindowUpdated(hd.stream_id))
        elif kind == SETTINGS:
            if not hd.flags & FLAG_ACK:
                self._count_flood()
                settings = frame.settings
                for i in range(settings.niv):
                    if settings.iv[i].settings_id == SETTINGS_INITIAL_WINDOW_SIZE:
                        events_of._events.append(WindowUpdated(0))
                        break
        elif kind == PING:
            if not hd.flags & FLAG_ACK:
                self._count_flood()
        elif kind == GOAWAY:
            goaway = frame.goaway
            events_of._events.append(ConnectionTerminated(goaway.error_code, goaway.last_stream_id))
        return 0

    def on_stream_close(session: Any, stream_id: int, error_code: int, user_data: Any) -> int:
        if stream_id in outbound:
            self._drop_outbound(stream_id)
        if stream_id in open_streams:
            open_streams.discard(stream_id)
            if stream_id in reported:
                reported.discard(stream_id)
            elif error_code:
                # The library reset it (a malformed request, a wrong content-length...): the
                # protocol must stop the app's reads and writes on it.
                events_of._events.append(StreamReset(stream_id, error_code))
        return 0

    def on_error(session: Any, code: int, msg: Any, length: int, user_data: Any) -> int:
        self._last_error = unpack(msg, length).decode("utf-8", "replace")
        return 0

    def read_body(session: Any, stream_id: int, buf: Any, length: int, data_flags: Any,
                  source: Any, user_data: Any) -> int:
        out = outbound.get(stream_id)
        if out is None:
            data_flags[0] = DATA_FLAG_EOF
            return 0
        written = 0
        pending = out.chunks
        while pending and written < length:
            chunk = pending[0]
            start = out.offset
            n = min(len(chunk) - start, length - written)
            if start == 0 and n == len(chunk):
                memmove(buf + written, chunk, n)
                pending.popleft()
            else:
                memmove(buf + written, memoryview(chunk)[start:start + n], n)
                if start + n == len(chunk):
                    pending.popleft()
                    out.offset = 0
                else:
                    out.offset = start + n
            written += n
        out.size -= written
        self._buffered -= written
        if not pending and out.ended:
            del outbound[stream_id]
            if out.trailers is None:
                data_flags[0] = DATA_FLAG_EOF
            else:
                # Trailers go after the last DATA, so they are submitted from here, where the
                # library has taken it (nghttp2.h, nghttp2_data_source_read_callback).
                data_flags[0] = DATA_FLAG_EOF | DATA_FLAG_NO_END_STREAM
                nva, count, _keep = _nv_array(out.trailers)
                lib.nghttp2_submit_trailer(session, stream_id, nva, count)
            if out.then_reset:
                lib.nghttp2_submit_rst_stream(session, 0, stream_id, NO_ERROR)
            return written
        if written == 0:
            out.deferred = True
            return ERR_DEFERRED
        return written

    callback = ffi.callback
    return {
        "begin_headers": callback("nghttp2_on_begin_headers_callback", on_begin_headers),
        "header": callback("nghttp2_on_header_callback", on_header),
        "data_chunk": callback("nghttp2_on_data_chunk_recv_callback", on_data_chunk),
        "frame_recv": callback("nghttp2_on_frame_recv_callback", on_frame_recv),
        "stream_close": callback("nghttp2_on_stream_close_callback", on_stream_close),
        "error": callback("nghttp2_error_callback2", on_error),
        "read_body": callback("nghttp2_data_source_read_callback", read_body),
    }


# (name, value) -> the cdata nghttp2_nv fields pointing into them: a response's fields repeat
# (status, content-type, server, the date for a second), and building them is most of
# submitting a response. Bounded: cleared when full.
_FIELDS: dict[tuple[bytes, bytes], tuple[Any, Any, int, int, int]] = {}
_FIELDS_MAX = 1024
_FIELD_CACHED_MAX = 64

def _nv_array(headers: Headers) -> tuple[Any, int, list[Any]]:
    """The nghttp2_nv array for ``headers`` (the library copies it), its length, and the
    fields whose buffers it points into (alive until the library has copied them)."""
    fields: list[Any] = []
    cache = _FIELDS
    for pair in headers:
        field = cache.get(pair)
        if field is None:
            name, value = pair
            lowered = name.lower()
            if lowered in CONNECTION_SPECIFIC:
                continue
            field = (from_buffer(_CHAR_A, lowered), from_buffer(_CHAR_A, value),
                     len(lowered), len(value), 0)
            if len(value) <= _FIELD_CACHED_MAX:  # a cookie or a token would only churn it
                if len(cache) >= _FIELDS_MAX:
                    cache.clear()
                cache[pair] = field
        fields.append(field)
    return newp(_NV_ARRAY, fields), len(fields), fields


class NghttpEngine:
    """A sans-IO HTTP/2 server session on libnghttp2 (see ``H2Engine`` in http2/engine.py)."""

    def __init__(self, settings: H2Settings) -> None:
        self.settings = settings
        self._events: list[Event] = []
        # Header lists refused for their size (the stream reset), for the protocol's counts.
        self.oversized_header_lists = 0
        self._open: set[int] = set()
        self._reported: set[int] = set()   # streams whose reset the protocol already knows
        self._outbound: dict[int, _Outbound] = {}
        self._buffered = 0                  # body bytes in _outbound, all streams
        self._resets = 0                    # RST_STREAM frames received
        self._floods = 0
        self._last_error = ""
        self._pending: list[bytes] = []
        self._failed = False                # a ProtocolError was reported
        self._goaway_ours: int | None = None  # the error code of our GOAWAY
        self._out_ptr = ffi.new("const char **")
        self._callbacks = _bind_callbacks(self)
        self._provider = ffi.new("nghttp2_data_provider *")
        self._provider.read_callback = self._callbacks["read_body"]
        self._session = _new_session(self._callbacks)

    # -- the H2Engine interface -------------------------------------------------------------

    def initiate(self, upgrade_settings: bytes | None = None) -> None:
        s = self.settings
        session = self._session
        if upgrade_settings is not None:
            # Stream 1 is the HTTP/1.1 request that asked for the upgrade, half-closed (remote).
            rv = lib.nghttp2_session_upgrade2(session, upgrade_settings, len(upgrade_settings),
                                              0, ffi.NULL)
            if rv != 0:
                raise ValueError(f"bad HTTP2-Settings: {strerror(rv)}")
            self._open.add(1)
        iv = ffi.new("nghttp2_settings_entry[4]", [
            (SETTINGS_MAX_CONCURRENT_STREAMS, s.max_concurrent_streams),
            (SETTINGS_INITIAL_WINDOW_SIZE, s.initial_window_size),
            (SETTINGS_MAX_FRAME_SIZE, s.max_frame_size),
            (SETTINGS_MAX_HEADER_LIST_SIZE, s.max_header_list_size or UNLIMITED),
        ])
        check(lib.nghttp2_submit_settings(session, 0, iv, 4))
        if s.initial_window_size > 65535:
            # The connection's window starts at 65535 whatever SETTINGS say (RFC 9113 6.9.2).
            check(lib.nghttp2_session_set_local_window_size(session, 0, 0, s.initial_window_size))

    def receive(self, data: bytes) -> list[Event]:
        if self._failed:
            return []
        events: list[Event] = []
        self._events = events
        rv = lib.nghttp2_session_mem_recv(self._session, data, len(data))
        if rv < 0:
            self._fail(rv)
        else:
            # A connection error makes the library queue GOAWAY and stop reading, and not all
            # of them reach a callback: framing what is queued (work data_to_send would do
            # next anyway) and asking want_read tells it for every one.
            start = len(self._pending)
            self._drain()
            if not lib.nghttp2_session_want_read(self._session):
                self._terminated_by_library(start)
        return events

    def send_headers(self, stream_id: int, headers: Headers, end_stream: bool) -> None:
        if stream_id not in self._open:
            return  # reset or closed meanwhile (StreamReset said so): nothing to answer
        nva, count, _keep = _nv_array(headers)
        if headers and headers[0][1][:1] == b"1" and headers[0][0] == b":status":
            # An interim response (100 Continue, 103 Early Hints): the final one follows.
            check(lib.nghttp2_submit_headers(self._session, 0, stream_id, ffi.NULL, nva, count,
                                              ffi.NULL))
            return
        if end_stream:
            rv = lib.nghttp2_submit_response(self._session, stream_id, nva, count, ffi.NULL)
        else:
            self._outbound[stream_id] = _Outbound()
            rv = lib.nghttp2_submit_response(self._session, stream_id, nva, count, self._provider)
        check(rv)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        out = self._outbound.get(stream_id)
        if out is None:
            return  # reset or closed meanwhile: the bytes have nowhere to go
        if data:
            out.chunks.append(bytes(data))
            out.size += len(data)
            self._buffered += len(data)
        if end_stream:
            out.ended = True
        if out.deferred:
            out.deferred = False
            lib.nghttp2_session_resume_data(self._session, stream_id)

    def outbound_window(self, stream_id: int) -> int:
        session = self._session
        stream = lib.nghttp2_session_get_stream_remote_window_size(session, stream_id)
        if stream < 0:
            return 0
        out = self._outbound.get(stream_id)
        buffered = out.size if out is not None else 0
        conn = lib.nghttp2_session_get_remote_window_size(session) - self._buffered
        return max(0, min(stream - buffered, conn))

    def send_trailers(self, stream_id: int, headers: Headers) -> None:
        out = self._outbound.get(stream_id)
        if out is None:
            return
        out.trailers = list(headers)
        self.send_data(stream_id, b"", True)

    def consume(self, stream_id: int, n: int) -> None:
        if n <= 0:
            return
        # The connection's window is given back even when the stream is gone by now.
        lib.nghttp2_session_consume(self._session, stream_id, n)

    def reset(self, stream_id: int, error_code: int) -> None:
        out = self._outbound.get(stream_id)
        if out is not None and out.ended and error_code == NO_ERROR:
            # A complete response, the request body unwanted (RFC 9113 8.1): the RST goes out
            # after the response's last frame, which the library has not framed yet.
            out.then_reset = True
            self._reported.add(stream_id)
            return
        self._drop_outbound(stream_id)
        if stream_id in self._open:  # else closed already, or never opened (idle: RFC 9113 5.1)
            self._reported.add(stream_id)
            if error_code == NO_ERROR:
                # The library sends a RST_STREAM ahead of a response HEADERS still queued
                # (the response would be lost): frame what is queued first.
                self._drain()
            lib.nghttp2_submit_rst_stream(self._session, 0, stream_id, error_code)

    def goaway(self, error_code: int = NO_ERROR, last_stream_id: int | None = None) -> None:
        if last_stream_id is None:
            last_stream_id = lib.nghttp2_session_get_last_proc_stream_id(self._session)
        self._goaway_ours = error_code
        lib.nghttp2_submit_goaway(self._session, 0, last_stream_id, error_code, ffi.NULL, 0)

    def data_to_send(self) -> bytes:
        self._drain()
        if not self._pending:
            return b""
        pending = self._pending
        self._pending = []
        return pending[0] if len(pending) == 1 else b"".join(pending)

    @property
    def open_streams(self) -> int:
        return len(self._open)

    # -- internals ---------------------------------------------------------------------------

    def _drain(self) -> None:
        session = self._session
        ptr = self._out_ptr
        pending = self._pending
        while True:
            n = lib.nghttp2_session_mem_send(session, ptr)
            if n <= 0:
                if n < 0:
                    self._failed = True
                return
            pending.append(unpack(ptr[0], n))

    def _drop_outbound(self, stream_id: int) -> None:
        out = self._outbound.pop(stream_id, None)
        if out is not None:
            self._buffered -= out.size

    def _count_flood(self) -> None:
        self._floods += 1
        if self._floods == FLOOD_BUDGET + 1:
            lib.nghttp2_session_terminate_session(self._session, ENHANCE_YOUR_CALM)
            self._last_error = f"more than {FLOOD_BUDGET} PING or SETTINGS frames without a request"

    def _terminated_by_library(self, start: int) -> None:
        """The session reads no more: a connection error (the library's GOAWAY, framed from
        ``self._pending[start]`` on), or only the end of a GOAWAY exchange (the peer's, or ours,
        with no stream left), which is no error."""
        goaway = _find_goaway(self._pending[start:])
        if goaway is None or goaway[0] == self._goaway_ours:
            return
        self._failed = True
        code, last_stream_id, reason = goaway
        if not reason and self._resets >= RESET_BURST:
            reason = f"over {RESET_BURST} RST_STREAM frames at once (rapid reset)"
        self._forget_past(last_stream_id)
        self._events.append(ProtocolError(code, reason or self._last_error or "connection error"))

    def _forget_past(self, last_stream_id: int) -> None:
        """The library goes on parsing what was in the same read after it decided on GOAWAY;
        the streams past the GOAWAY's last stream were not processed, so the app never hears
        of them (RFC 9113 6.8)."""
        self._events[:] = [e for e in self._events if getattr(e, "stream_id", 0) <= last_stream_id]

    def _fail(self, rv: int) -> None:
        """A fatal library error: the session takes no more input. Queue GOAWAY ourselves if
        the library could not."""
        self._failed = True
        code = ENHANCE_YOUR_CALM if rv in (ERR_FLOODED, ERR_TOO_MANY_CONTINUATIONS) else PROTOCOL_ERROR
        lib.nghttp2_session_terminate_session(self._session, code)
        self._drain()
        goaway = _find_goaway(self._pending)
        if goaway is None:
            last = lib.nghttp2_session_get_last_proc_stream_id(self._session)
            self._pending.append(_goaway_frame(last, code))
        else:
            last = goaway[1]
        self._forget_past(last)
        self._events.append(ProtocolError(code, strerror(rv)))


def _new_session(callbacks: dict[str, Any]) -> Any:
    cbs_ptr = ffi.new("nghttp2_session_callbacks **")
    check(lib.nghttp2_session_callbacks_new(cbs_ptr))
    cbs = cbs_ptr[0]
    opt_ptr = ffi.new("nghttp2_option **")
    check(lib.nghttp2_option_new(opt_ptr))
    opt = opt_ptr[0]
    try:
        lib.nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, callbacks["begin_headers"])
        lib.nghttp2_session_callbacks_set_on_header_callback(cbs, callbacks["header"])
        lib.nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, callbacks["data_chunk"])
        lib.nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, callbacks["frame_recv"])
        lib.nghttp2_session_callbacks_set_on_stream_close_callback(cbs, callbacks["stream_close"])
        lib.nghttp2_session_callbacks_set_error_callback2(cbs, callbacks["error"])
        # Request bodies are given back as the app reads them (consume), not as they arrive.
        lib.nghttp2_option_set_no_auto_window_update(opt, 1)
        lib.nghttp2_option_set_max_continuations(opt, MAX_CONTINUATIONS)
        lib.nghttp2_option_set_stream_reset_rate_limit(opt, RESET_BURST, RESET_RATE)
        session_ptr = ffi.new("nghttp2_session **")
        check(lib.nghttp2_session_server_new2(session_ptr, cbs, ffi.NULL, opt))
    finally:
        lib.nghttp2_session_callbacks_del(cbs)
        lib.nghttp2_option_del(opt)
    return ffi.gc(session_ptr[0], lib.nghttp2_session_del)


def _goaway_frame(last_stream_id: int, error_code: int) -> bytes:
    return (b"\x00\x00\x08\x07\x00\x00\x00\x00\x00"
            + last_stream_id.to_bytes(4, "big") + error_code.to_bytes(4, "big"))


def _find_goaway(frames: list[bytes]) -> tuple[int, int, str] | None:
    """The error code, last stream id and debug text (the library's reason) of a GOAWAY
    among ``frames``; each mem_send returns whole frames."""
    for buf in frames:
        pos = 0
        while pos + 9 <= len(buf):
            length = int.from_bytes(buf[pos:pos + 3], "big")
            if buf[pos + 3] == GOAWAY and pos + 17 <= len(buf):
                debug = buf[pos + 17:pos + 9 + length].decode("utf-8", "replace")
                last_stream_id = int.from_bytes(buf[pos + 9:pos + 13], "big") & 0x7FFFFFFF
                return int.from_bytes(buf[pos + 13:pos + 17], "big"), last_stream_id, debug
            pos += 9 + length
    return None


__all__ = ["NghttpEngine", "library_version"]
