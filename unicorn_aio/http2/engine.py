"""The HTTP/2 engine seam: a sans-IO HTTP/2 server session the connection protocol drives.

``http2/protocol.py`` never imports a frame library. It feeds the bytes it reads to an engine
(``receive``), acts on the events that come back, asks it to frame responses (``send_*``) and
writes what ``data_to_send`` returns. Two engines implement ``H2Engine``:

* ``http2/h2engine.py`` on python-hyper ``h2`` (pure Python; the reference, always works);
* ``http2/nghttp2.py`` on libnghttp2 (the C library curl uses) through cffi in ABI mode.

``engines.make_engine`` picks nghttp2 when it loads, else h2; ``UNICORN_AIO_H2_ENGINE=h2|nghttp2``
forces one (the tests run both).

Both engines produce exactly the events below. Limits an engine enforces by itself (a flood of
SETTINGS or PING, a CONTINUATION flood, an HPACK bomb) come back as ``ProtocolError`` with its
GOAWAY queued; the limits that must be the same whatever the engine (resets of streams the app
started, bytes buffered, app calls started) are the protocol's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Union

Headers = list[tuple[bytes, bytes]]

# RFC 9113 7 error codes the protocol and engines use by name.
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
ENHANCE_YOUR_CALM = 0xB

# PING and SETTINGS frames an engine answers without a request (HEADERS) between them before it
# sends GOAWAY ENHANCE_YOUR_CALM (ProtocolError): answering costs us, a flood costs the peer
# nothing (CVE-2019-9512 ping flood, CVE-2019-9515 settings flood).
FLOOD_BUDGET = 1000


class RequestReceived:
    """A request's header block: pseudo-headers included, in received order, names lowercase."""

    __slots__ = ("stream_id", "headers", "end_stream")

    def __init__(self, stream_id: int, headers: Headers, end_stream: bool) -> None:
        self.stream_id = stream_id
        self.headers = headers
        self.end_stream = end_stream

    def __repr__(self) -> str:
        return f"RequestReceived({self.stream_id}, {self.headers!r}, end_stream={self.end_stream})"


class DataReceived:
    """Body bytes. ``flow_length`` counts padding too: the protocol gives it back to the peer
    (``H2Engine.consume``) only as the app reads the body; that is the flow control."""

    __slots__ = ("stream_id", "data", "flow_length", "end_stream")

    def __init__(self, stream_id: int, data: bytes, flow_length: int, end_stream: bool) -> None:
        self.stream_id = stream_id
        self.data = data
        self.flow_length = flow_length
        self.end_stream = end_stream

    def __repr__(self) -> str:
        return (f"DataReceived({self.stream_id}, {len(self.data)} bytes, "
                f"flow_length={self.flow_length}, end_stream={self.end_stream})")


class TrailersReceived:
    """A trailer section; it ends the stream."""

    __slots__ = ("stream_id", "headers")

    def __init__(self, stream_id: int, headers: Headers) -> None:
        self.stream_id = stream_id
        self.headers = headers

    def __repr__(self) -> str:
        return f"TrailersReceived({self.stream_id}, {self.headers!r})"


class StreamEnded:
    """END_STREAM on a frame not reported with end_stream=True (engines may never emit it)."""

    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id

    def __repr__(self) -> str:
        return f"StreamEnded({self.stream_id})"


class StreamReset:
    """The peer reset the stream (RST_STREAM), or the engine did."""

    __slots__ = ("stream_id", "error_code")

    def __init__(self, stream_id: int, error_code: int) -> None:
        self.stream_id = stream_id
        self.error_code = error_code

    def __repr__(self) -> str:
        return f"StreamReset({self.stream_id}, {self.error_code:#x})"


class WindowUpdated:
    """The peer opened a send window (stream 0: the connection's): retry pending sends."""

    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id

    def __repr__(self) -> str:
        return f"WindowUpdated({self.stream_id})"


class ConnectionTerminated:
    """The peer sent GOAWAY."""

    __slots__ = ("error_code", "last_stream_id")

    def __init__(self, error_code: int, last_stream_id: int) -> None:
        self.error_code = error_code
        self.last_stream_id = last_stream_id

    def __repr__(self) -> str:
        return f"ConnectionTerminated({self.error_code:#x}, {self.last_stream_id})"


class ProtocolError:
    """A connection error the engine saw (a flood, a bad frame, an HPACK bomb). It has queued
    its GOAWAY: the protocol writes ``data_to_send()`` and closes the transport."""

    __slots__ = ("error_code", "message")

    def __init__(self, error_code: int, message: str) -> None:
        self.error_code = error_code
        self.message = message

    def __repr__(self) -> str:
        return f"ProtocolError({self.error_code:#x}, {self.message!r})"


Event = Union[RequestReceived, DataReceived, TrailersReceived, StreamEnded, StreamReset,
              WindowUpdated, ConnectionTerminated, ProtocolError]


@dataclass(frozen=True, slots=True)
class H2Settings:
    """What we advertise and enforce; gunicorn's --http2-* settings plus the streams one
    connection may open before a graceful GOAWAY (nginx's keepalive_requests)."""

    max_concurrent_streams: int = 100
    initial_window_size: int = 65535
    max_frame_size: int = 16384
    max_header_list_size: int = 65536
    max_streams_per_connection: int = 1000


class H2Engine(Protocol):
    """A sans-IO HTTP/2 server session (see the module docstring)."""

    def initiate(self, upgrade_settings: bytes | None = None) -> None:
        """Queue our SETTINGS preface. With ``upgrade_settings`` (the decoded HTTP2-Settings
        of an h2c Upgrade) stream 1 is the upgraded request, half-closed (remote)."""

    def receive(self, data: bytes) -> list[Event]: ...

    def send_headers(self, stream_id: int, headers: Headers, end_stream: bool) -> None: ...

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """At most ``outbound_window(stream_id)`` bytes; the engine splits them into frames."""

    def outbound_window(self, stream_id: int) -> int:
        """min(the stream's send window, the connection's)."""

    def send_trailers(self, stream_id: int, headers: Headers) -> None:
        """Ends the stream."""

    def consume(self, stream_id: int, n: int) -> None:
        """The app read ``n`` flow-controlled bytes: give them back (WINDOW_UPDATE)."""

    def reset(self, stream_id: int, error_code: int) -> None: ...

    def goaway(self, error_code: int = 0, last_stream_id: int | None = None) -> None: ...

    def data_to_send(self) -> bytes:
        """The bytes queued for the peer; b"" when none."""

    @property
    def open_streams(self) -> int:
        """Streams the peer opened that are not closed."""
