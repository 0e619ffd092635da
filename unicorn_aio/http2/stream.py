"""One HTTP/2 stream as the app handlers see a connection: the seam to WSGI and ASGI.

The handlers (wsgi/handler.py, asgi/handler.py) answer a request through a ``Connection``
(http/contract.py) and its transport, writing the HTTP/1.1 bytes response.py frames.  An
``H2Stream`` is both for one stream: it reads the head the handler writes back into a header
list (":status" first, names lower-case, the connection-specific fields of RFC 9113 8.2.2
dropped) and queues the body bytes after it; the connection (protocol.py) sends them as
HEADERS and DATA as the peer's windows allow.  The handlers frame an HTTP/2 request as they
frame HTTP/1.0 (``Request.version`` is "2"): never chunked, so what follows the head is the
body as it is.  One code path per interface serves both protocols.

The request body flows the other way, bounded as HTTP/1.1's is (http/body.py): what arrives
is given back to the peer (WINDOW_UPDATE) at once while the body buffers less than HIGH_WATER;
past it the peer's window closes until the app has read it below LOW_WATER, or waits for more
(``resume_reading``).  A peer can therefore be at most HIGH_WATER plus one window ahead of the
app.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

from unicorn_aio.http.contract import Address, ConnectionHost
from unicorn_aio.http.options import HttpOptions
from unicorn_aio.http.request import Request
from unicorn_aio.http.rules import PLAIN, Framing, Reject, check_headers, check_request_target
from unicorn_aio.http2.engine import Headers

if TYPE_CHECKING:
    from unicorn_aio.http2.protocol import H2Protocol

# RFC 9113 8.2.2: connection-specific fields are malformed in HTTP/2.  Content-Length stays.
CONNECTION_FIELDS = frozenset((b"connection", b"keep-alive", b"proxy-connection",
                               b"transfer-encoding", b"upgrade", b"te"))
_HEAD_END = b"\r\n\r\n"
_NO_BODY = (b"204", b"304")  # with 1xx: response.NO_BODY_STATUS


# Header lines already read, as HTTP/2 fields (None: a connection-specific one): apps send the
# same few lines again and again, and this runs for every response.  Short ones only, 1024 at
# most: a cookie per user must not fill memory.
_FIELDS: dict[bytes, tuple[bytes, bytes] | None] = {}
_UNSEEN = (b"", b"")


def response_headers(head: bytes) -> tuple[Headers, int | None]:
    """An HTTP/1.1 head (without its blank line) as HTTP/2 fields, and its Content-Length."""
    lines = head.split(b"\r\n")
    headers: Headers = [(b":status", lines[0][9:12])]
    length = None
    fields = _FIELDS
    for line in lines[1:]:
        field = fields.get(line, _UNSEEN)
        if field is _UNSEEN:
            name, _, value = line.partition(b": ")
            name = name.lower()
            if name == b"content-length":
                length = int(value)
                headers.append((name, value))
                continue
            field = None if name in CONNECTION_FIELDS else (name, value)
            if len(fields) < 1024 and len(line) <= 256 and name != b"date":
                fields[line] = field
        if field is not None:
            headers.append(field)
    return headers, length


def read_request(req: Request, headers: Headers, options: HttpOptions, peer: Address) -> None:
    """Fill ``req`` from a header block the engine has validated (RFC 9113 8.3): as
    HttpProtocol fills one from an HTTP/1.1 head, with the same checks (http/rules.py); raises
    Reject."""
    fields: Headers = []
    cookies: list[bytes] = []
    authority = None
    method = path = b""
    host = expect = False
    for name, value in headers:
        if name[0] == 58:  # ":"
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name == b":authority":
                authority = value
        elif name == b"cookie":
            cookies.append(value)  # RFC 9113 8.2.3: split crumbs are one field again
        else:
            if name == b"host":
                host = True
            elif name == b"expect":
                expect = True
            fields.append((name, value))
    req.method, req.url, req.version, req.keep_alive = method, path, "2", True
    if cookies:
        fields.append((b"cookie", b"; ".join(cookies)))
    limit = options.limits[1]
    if len(fields) > limit:
        raise Reject(431, f"more than {limit} header fields")
    if authority is not None and not host:
        fields.insert(0, (b"host", authority))  # RFC 9113 8.3.1: what Host would say
    if path[:1] != b"/":
        check_request_target(method, path)
    framing, req.headers = check_headers(fields, "2", options.header_map,
                                         options.forwarder_headers)
    # check_headers honours 100-continue in HTTP/1.1 only; RFC 9110 10.1.1 is the same in
    # HTTP/2 (an interim HEADERS frame).
    if framing is not PLAIN:
        framing.expect_continue = expect
        framing.upgrade = framing.close = False
    elif expect:
        framing = Framing()
        framing.expect_continue = True
    req.framing = framing
    if framing.forwarded and options.proxy_headers.enabled:
        req.headers, req.proxied = options.proxy_headers.read(req.headers, peer)


class H2Stream(asyncio.Transport):
    """A stream's request, and the ``Connection`` and transport its handler answers through."""

    __slots__ = ("conn", "stream_id", "req", "headers", "pending", "queued", "sent", "length",
                 "bodyless", "head_seen", "finished", "ended", "closed", "paused", "failed",
                 "in_app", "remote_done", "owed", "upgraded", "partial_head", "trailers", "dirty")

    def __init__(self, conn: H2Protocol, stream_id: int, req: Request) -> None:
        # No asyncio.Transport.__init__: its extra-info dict is never read (get_extra_info
        # is ours), and a stream is made per request.
        self.conn = conn
        self.stream_id = stream_id
        self.req = req
        self.headers: Headers | None = None  # the response head, until it is sent
        self.pending: deque[memoryview] = deque()  # body bytes not yet sent
        self.queued = 0  # their length
        self.sent = 0  # body bytes written by the handler
        self.length: int | None = None  # the response's Content-Length
        self.bodyless = False  # HEAD, or a status without a body: known with the head
        self.head_seen = False
        self.partial_head = b""
        self.finished = False  # the handler is done (finish_request)
        self.ended = False  # END_STREAM or RST_STREAM sent: nothing more goes out
        self.closed = False  # reset by either side, or answered and done with
        self.paused = False  # the app is told to stop writing (limits.py)
        self.failed = False  # the response cannot complete: reset instead of END_STREAM
        self.in_app = False  # the app call started and the response is not finished
        self.remote_done = False  # the peer's END_STREAM arrived
        self.owed = 0  # flow-controlled bytes received and not yet given back (WINDOW_UPDATE)
        self.upgraded = False  # stream 1 of an h2c upgrade: counted as HTTP/1.1's request
        self.trailers: Headers | None = None  # sent instead of an empty END_STREAM DATA
        self.dirty = False  # in the connection's list of streams to send from

    # -- Connection (http/contract.py): what the handler uses -------------------------------

    @property
    def transport(self) -> asyncio.Transport:
        return self

    @property
    def peername(self) -> Address:
        return self.conn.peername

    @property
    def sockname(self) -> Address:
        return self.conn.sockname

    @property
    def app_state(self) -> Any:
        return self.conn.app_state

    @app_state.setter
    def app_state(self, value: Any) -> None:
        self.conn.app_state = value

    @property
    def closing(self) -> bool:
        return self.conn.closing

    @property
    def write_paused(self) -> bool:
        return self.paused

    @property
    def host(self) -> ConnectionHost:
        return self.conn.host

    def answering(self, req: Request) -> bool:
        return req is self.req and not self.closed

    def finish_request(self, req: Request, keep_alive: bool) -> None:
        cycle, req.cycle = req.cycle, None  # as HttpProtocol does: the two part
        if self.finished:
            return
        self.finished = True
        if getattr(cycle, "failed", False):
            self.failed = True  # the app raised after the head: the response is cut short
        self.conn.stream_finished(self, cycle)

    def send_trailers(self, headers: Headers) -> None:
        """ASGI's http.response.trailers: they end the stream (before finish_request)."""
        self.trailers = [(name, value) for name, value in headers
                         if name not in CONNECTION_FIELDS and name[:1] != b":"]

    def send_continue(self) -> None:
        """The app reads a body its client sent Expect: 100-continue for."""
        self.conn.send_continue(self)

    def detach(self, req: Request, successor: asyncio.Protocol) -> None:
        raise RuntimeError("an HTTP/2 stream cannot be taken over (RFC 9113 8.6)")

    # -- the transport the handler writes HTTP/1.1 bytes to ---------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.ended or self.finished:
            return
        if not self.head_seen:
            data = self._read_head(bytes(data))
            if not data:
                return
        elif self.bodyless:
            return
        n = len(data)
        if n:
            self.pending.append(memoryview(data))
            self.queued += n
            self.sent += n
            self.conn.stream_output(self, n)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        """Nothing is held here (http/output.py is HTTP/1.1's): the connection frames what
        ``write`` is given on its own schedule."""

    def _read_head(self, data: bytes) -> bytes:
        if self.partial_head:
            data = self.partial_head + data
        end = data.find(_HEAD_END)
        if end < 0:
            self.partial_head = data
            return b""
        self.partial_head = b""
        headers, length = response_headers(data[:end])
        if headers[0][1][:1] == b"1":  # 103 Early Hints: an interim HEADERS frame, then the head
            self.conn.send_interim(self, headers)
            rest = data[end + 4:]
            return self._read_head(rest) if rest else b""
        self.head_seen = True
        self.headers, self.length = headers, length
        status = data[9:12]
        if status[0] == 49 or status in _NO_BODY or self.req.method == b"HEAD":  # 49: "1"
            self.bodyless = True
        self.conn.stream_output(self, 0)
        return b"" if self.bodyless else data[end + 4:]

    def is_closing(self) -> bool:
        return self.ended or self.closed or self.conn.transport.is_closing()

    def close(self) -> None:
        """The handler gives up on the response (a stalled body): the stream is reset."""
        self.abort()

    def abort(self) -> None:
        if not self.ended:
            self.conn.reset_stream(self)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return None  # the socket carries frames: no sendfile(2), no raw writes
        if name == "peername":
            return self.conn.peername
        return self.conn.transport.get_extra_info(name, default)

    def get_write_buffer_size(self) -> int:
        return self.queued

    def can_write_eof(self) -> bool:
        return False

    def is_reading(self) -> bool:
        return not self.closed

    def pause_reading(self) -> None:
        pass

    # -- request body flow control ----------------------------------------------------------

    def resume_reading(self) -> None:
        """The app read the body below body.LOW_WATER, or waits for more: the bytes held back
        since it passed HIGH_WATER are given back to the peer (on the loop)."""
        self.conn.credit(self)
