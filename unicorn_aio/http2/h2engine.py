"""The HTTP/2 engine on python-hyper ``h2`` (pure Python): the reference ``H2Engine``.

h2 does the framing, HPACK, the stream states and flow-control accounting; this adapter turns
its events into engine.py's and adds what h2 leaves to its user: splitting DATA by the peer's
frame size, and the budget of PING and SETTINGS frames answered without a request between them
(``FLOOD_BUDGET``), counted before h2 answers them.  h2 itself bounds a header block at 64
CONTINUATION frames and decodes it no larger than SETTINGS_MAX_HEADER_LIST_SIZE (an HPACK
bomb is a COMPRESSION_ERROR).
"""

from __future__ import annotations

import base64
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import GoAwayFrame

from unicorn_aio.http2.engine import (
    ENHANCE_YOUR_CALM,
    FLOOD_BUDGET,
    PROTOCOL_ERROR,
    ConnectionTerminated,
    DataReceived,
    Event,
    H2Settings,
    Headers,
    ProtocolError,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)

_CONFIG = h2.config.H2Configuration(
    client_side=False, header_encoding=None,
    # What we send is built by the protocol, lower-case and without connection headers: h2's
    # checks of it would cost a pass per response for nothing.
    validate_outbound_headers=False, normalize_outbound_headers=False,
    validate_inbound_headers=True, normalize_inbound_headers=True)

_SettingCodes = h2.settings.SettingCodes


class H2LibEngine:
    """An ``H2Engine`` (engine.py) on h2.H2Connection."""

    __slots__ = ("conn", "control_frames", "extra", "preface_left", "frame_left", "partial")

    def __init__(self, settings: H2Settings) -> None:
        conn = self.conn = h2.connection.H2Connection(config=_CONFIG)
        conn.local_settings = h2.settings.Settings(client=False, initial_values={
            _SettingCodes.MAX_CONCURRENT_STREAMS: settings.max_concurrent_streams,
            _SettingCodes.INITIAL_WINDOW_SIZE: settings.initial_window_size,
            _SettingCodes.MAX_FRAME_SIZE: settings.max_frame_size,
            _SettingCodes.MAX_HEADER_LIST_SIZE: settings.max_header_list_size or 2 ** 31 - 1,
        })
        # Until the peer acknowledges our SETTINGS h2 applies the defaults; the protocol
        # refuses streams over the limit before that.
        conn.max_inbound_frame_size = settings.max_frame_size
        # The header list limit holds from the first request, not from the peer's ACK: the
        # peer is told in the same SETTINGS, and an HPACK bomb needs no second round trip.
        conn.decoder.max_header_list_size = settings.max_header_list_size or 2 ** 31 - 1
        self.control_frames = 0  # PING and SETTINGS answered since the last request
        # Where frames begin in what the peer sends (see _over_budget): the client preface's
        # bytes still to come, the current frame's, a frame header split between reads.
        self.preface_left = 24
        self.frame_left = 0
        self.partial = b""
        self.extra = b""  # frames sent past h2 (a graceful GOAWAY), before what it queues next

    def initiate(self, upgrade_settings: bytes | None = None) -> None:
        conn = self.conn
        if upgrade_settings is None:
            conn.initiate_connection()
        else:
            # h2 takes the HTTP2-Settings field as it came: base64url
            conn.initiate_upgrade_connection(base64.urlsafe_b64encode(upgrade_settings))
        window = conn.local_settings.initial_window_size
        if window > 65535:
            # The connection's window starts at 65535 whatever SETTINGS say (RFC 9113 6.9.2):
            # a larger stream window would be bounded by it, so it grows alike.
            conn.increment_flow_control_window(window - 65535)

    def receive(self, data: bytes) -> list[Event]:
        cut = self._over_budget(data)
        if cut is None:
            return self._feed(data)
        events = self._feed(data[:cut]) if cut else []
        if not any(type(event) is ProtocolError for event in events):
            self.conn.close_connection(ENHANCE_YOUR_CALM)
            events.append(ProtocolError(ENHANCE_YOUR_CALM, f"over {FLOOD_BUDGET} PING/SETTINGS "
                                        "frames without a request"))
        return events

    def _feed(self, data: bytes) -> list[Event]:
        try:
            # Any: dispatched on type(), which mypy does not narrow by
            h2_events: list[Any] = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            code = getattr(exc, "error_code", None) or PROTOCOL_ERROR
            return [ProtocolError(int(code), str(exc) or type(exc).__name__)]
        events: list[Event] = []
        reported: set[int] = set()  # StreamEnded events folded into the one before them
        for ev in h2_events:
            kind = type(ev)
            if kind is h2.events.DataReceived:
                ended = ev.stream_ended
                if ended is not None:
                    reported.add(id(ended))
                events.append(DataReceived(ev.stream_id, ev.data, ev.flow_controlled_length,
                                           ended is not None))
            elif kind is h2.events.RequestReceived:
                ended = ev.stream_ended
                if ended is not None:
                    reported.add(id(ended))
                events.append(RequestReceived(ev.stream_id, ev.headers, ended is not None))
            elif kind is h2.events.StreamEnded:
                if id(ev) not in reported:
                    events.append(StreamEnded(ev.stream_id))
            elif kind is h2.events.TrailersReceived:
                if ev.stream_ended is not None:
                    reported.add(id(ev.stream_ended))
                events.append(TrailersReceived(ev.stream_id, ev.headers))
            elif kind is h2.events.StreamReset:
                events.append(StreamReset(ev.stream_id, int(ev.error_code)))
            elif kind is h2.events.WindowUpdated:
                events.append(WindowUpdated(ev.stream_id))
            elif kind is h2.events.RemoteSettingsChanged:
                if _SettingCodes.INITIAL_WINDOW_SIZE in ev.changed_settings:
                    events.append(WindowUpdated(0))  # every stream's window moved
            elif kind is h2.events.ConnectionTerminated:
                events.append(ConnectionTerminated(int(ev.error_code or 0),
                                                   ev.last_stream_id or 0))
        return events

    def _over_budget(self, data: bytes) -> int | None:
        """Where in ``data`` the frame begins that takes the peer past FLOOD_BUDGET PING and
        SETTINGS frames without a request (CVE-2019-9512, -9515), or None.  h2 answers every
        frame of a read before it returns, so the frames are counted before it sees them,
        from their 9-byte headers."""
        i, n = 0, len(data)
        if self.preface_left:
            i = min(self.preface_left, n)
            self.preface_left -= i
        while i < n:
            if self.frame_left:
                step = min(self.frame_left, n - i)
                self.frame_left -= step
                i += step
                continue
            start = i - len(self.partial)
            header = self.partial + data[i:i + 9 - len(self.partial)]
            i += 9 - len(self.partial)
            if len(header) < 9:
                self.partial = header
                break
            self.partial = b""
            self.frame_left = int.from_bytes(header[:3], "big")
            kind = header[3]
            if kind == 1:  # HEADERS: a request, progress
                self.control_frames = 0
            elif kind in (4, 6) and not header[4] & 1:  # SETTINGS, PING; not an ACK
                self.control_frames += 1
                if self.control_frames > FLOOD_BUDGET:
                    return max(start, 0)
        return None

    def send_headers(self, stream_id: int, headers: Headers, end_stream: bool) -> None:
        self.conn.send_headers(stream_id, headers, end_stream=end_stream)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        conn = self.conn
        size = conn.max_outbound_frame_size
        if len(data) <= size:
            conn.send_data(stream_id, data, end_stream=end_stream)
            return
        view = memoryview(data)
        last = len(data) - size
        for start in range(0, len(data), size):
            conn.send_data(stream_id, view[start:start + size],
                           end_stream=end_stream and start >= last)

    def outbound_window(self, stream_id: int) -> int:
        try:
            return self.conn.local_flow_control_window(stream_id)
        except h2.exceptions.StreamClosedError:
            return 0

    def send_trailers(self, stream_id: int, headers: Headers) -> None:
        self.conn.send_headers(stream_id, headers, end_stream=True)

    def consume(self, stream_id: int, n: int) -> None:
        try:
            self.conn.acknowledge_received_data(n, stream_id)
        except h2.exceptions.StreamClosedError:
            # The stream is gone; the connection window still counts these bytes.
            self.conn.increment_flow_control_window(n)

    def reset(self, stream_id: int, error_code: int) -> None:
        try:
            self.conn.reset_stream(stream_id, error_code)
        except h2.exceptions.StreamClosedError:
            pass  # closed meanwhile: nothing to reset

    def goaway(self, error_code: int = 0, last_stream_id: int | None = None) -> None:
        conn = self.conn
        if error_code:
            conn.close_connection(error_code, last_stream_id=last_stream_id)
            return
        # A graceful GOAWAY (RFC 9113 6.8) lets the streams up to last_stream_id finish; h2's
        # close_connection would refuse to send another frame, so the frame goes out by hand,
        # after what h2 has queued.
        frame = GoAwayFrame(0)
        frame.last_stream_id = (conn.highest_inbound_stream_id if last_stream_id is None
                                else last_stream_id)
        frame.error_code = 0
        self.extra += conn.data_to_send() + frame.serialize()

    def data_to_send(self) -> bytes:
        if self.extra:
            data, self.extra = self.extra + self.conn.data_to_send(), b""
            return data
        return self.conn.data_to_send()

    @property
    def open_streams(self) -> int:
        return self.conn.open_inbound_streams
