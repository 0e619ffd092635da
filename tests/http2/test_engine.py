"""The HTTP/2 engines (http2/engine.py's H2Engine), sans-IO, driven by python-hyper h2 as the
client: both engines, libnghttp2's and h2's, must produce the same events for the same bytes.

Frames h2 refuses to send (a CONTINUATION flood, a burst of resets, an HPACK bomb) are written
by hand with hyperframe and hpack.
"""

from __future__ import annotations

import base64
import math
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
import pytest
from hyperframe.frame import ContinuationFrame, DataFrame, HeadersFrame, PingFrame, RstStreamFrame

from unicorn_aio.http2.engine import (
    ENHANCE_YOUR_CALM,
    FLOOD_BUDGET,
    FLOW_CONTROL_ERROR,
    NO_ERROR,
    PROTOCOL_ERROR,
    ConnectionTerminated,
    DataReceived,
    H2Settings,
    ProtocolError,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from unicorn_aio.http2.engines import ENGINES, engine_available, make_engine

GET = [(b":method", b"GET"), (b":path", b"/hello?x=1"), (b":scheme", b"http"),
       (b":authority", b"127.0.0.1:8000"), (b"user-agent", b"h2load nghttp2/1.52.0"),
       (b"accept", b"*/*")]
POST = [(b":method", b"POST"), (b":path", b"/upload"), (b":scheme", b"http"),
        (b":authority", b"127.0.0.1:8000")]
OK = [(b":status", b"200"), (b"content-type", b"text/plain")]


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    why = engine_available(request.param)
    if why:
        pytest.skip(why)
    return request.param


class Peer:
    """An h2 client connection and a server engine, with the bytes between them pumped."""

    def __init__(self, name: str, settings: H2Settings | None = None, upgrade: bool = False) -> None:
        self.name = name
        self.client = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.engine = make_engine(settings or H2Settings(), name)
        if upgrade:
            # What an HTTP/1.1 request with Upgrade: h2c carries in its HTTP2-Settings field.
            header = self.client.initiate_upgrade_connection()
            self.engine.initiate(base64.urlsafe_b64decode(header + b"=" * (-len(header) % 4)))
        else:
            self.client.initiate_connection()
            self.engine.initiate()
        self.exchange()

    def exchange(self, raw: bytes = b"") -> tuple[list, list]:
        """Client bytes (and ``raw`` after them) to the engine, its answer to the client:
        (engine events, client events)."""
        events = self.engine.receive(self.client.data_to_send() + raw)
        return events, self.answer()

    def answer(self) -> list:
        out = self.engine.data_to_send()
        self.last_out = out
        return self.client.receive_data(out) if out else []

    def request(self, headers=GET, end_stream: bool = True) -> tuple[int, list]:
        sid = self.client.get_next_available_stream_id()
        self.client.send_headers(sid, headers, end_stream=end_stream)
        events, _ = self.exchange()
        return sid, events


def frames(data: bytes) -> list[tuple[int, int]]:
    """(type, stream id) of each frame in ``data``."""
    found, pos = [], 0
    while pos + 9 <= len(data):
        sid = int.from_bytes(data[pos + 5:pos + 9], "big") & 0x7FFFFFFF
        found.append((data[pos + 3], sid))
        pos += 9 + int.from_bytes(data[pos:pos + 3], "big")
    return found


def frame_types(data: bytes) -> list[int]:
    return [kind for kind, _ in frames(data)]


def test_get_and_hello_response(engine_name: str) -> None:
    peer = Peer(engine_name)
    sid, events = peer.request()
    assert [type(e) for e in events] == [RequestReceived]
    req = events[0]
    assert (req.stream_id, req.headers, req.end_stream) == (1, GET, True)
    assert peer.engine.open_streams == 1

    peer.engine.send_headers(1, OK + [(b"content-length", b"13")], False)
    peer.engine.send_data(1, b"Hello, World!", True)
    got = peer.answer()
    response = [e for e in got if isinstance(e, h2.events.ResponseReceived)]
    assert response and response[0].headers[:2] == OK
    assert b"".join(e.data for e in got if isinstance(e, h2.events.DataReceived)) == b"Hello, World!"
    assert any(isinstance(e, h2.events.StreamEnded) for e in got)
    assert peer.engine.open_streams == 0
    assert peer.engine.data_to_send() == b""


def test_headers_only_response_and_interim_response(engine_name: str) -> None:
    peer = Peer(engine_name)
    peer.request(POST, end_stream=False)
    peer.engine.send_headers(1, [(b":status", b"100")], False)
    got = peer.answer()
    assert [e.headers for e in got if isinstance(e, h2.events.InformationalResponseReceived)] == \
        [[(b":status", b"100")]]
    peer.client.send_data(1, b"x", end_stream=True)
    peer.exchange()
    peer.engine.send_headers(1, [(b":status", b"204")], True)
    got = peer.answer()
    assert [e.headers for e in got if isinstance(e, h2.events.ResponseReceived)] == [[(b":status", b"204")]]
    assert any(isinstance(e, h2.events.StreamEnded) for e in got)


def test_post_body_is_given_back_only_as_consumed(engine_name: str) -> None:
    peer = Peer(engine_name)
    peer.request(POST, end_stream=False)
    before = peer.client.outbound_flow_control_window
    for chunk in (b"a" * 16000, b"a" * 4000, b"b" * 16000, b"b" * 4000):
        peer.client.send_data(1, chunk)
    peer.client.end_stream(1)
    events, got = peer.exchange()
    data = [e for e in events if isinstance(e, DataReceived)]
    assert b"".join(e.data for e in data) == b"a" * 20000 + b"b" * 20000
    assert sum(e.flow_length for e in data) == 40000
    assert data[-1].end_stream and not any(isinstance(e, StreamEnded) for e in events)
    # Nothing given back yet: the client's window stays spent.
    assert not [e for e in got if isinstance(e, h2.events.WindowUpdated)]
    assert peer.client.outbound_flow_control_window == before - 40000

    peer.engine.consume(1, 40000)
    got = peer.answer()
    assert 0 in {e.stream_id for e in got if isinstance(e, h2.events.WindowUpdated)}
    assert peer.client.outbound_flow_control_window == before


def test_padding_is_flow_controlled(engine_name: str) -> None:
    peer = Peer(engine_name)
    peer.request(POST, end_stream=False)
    before = peer.client.outbound_flow_control_window
    for _ in range(4):
        peer.client.send_data(1, b"p" * 10000, pad_length=100)
    events, _ = peer.exchange()
    data = [e for e in events if isinstance(e, DataReceived)]
    assert b"".join(e.data for e in data) == b"p" * 40000
    for e in data:
        peer.engine.consume(1, e.flow_length)
    peer.answer()
    # Whoever counts the padding (the engine or the protocol), all of it comes back.
    assert peer.client.outbound_flow_control_window == before


def test_trailers_both_ways(engine_name: str) -> None:
    peer = Peer(engine_name)
    peer.request(POST, end_stream=False)
    peer.client.send_data(1, b"body")
    peer.client.send_headers(1, [(b"x-checksum", b"abc")], end_stream=True)
    events, _ = peer.exchange()
    assert [type(e) for e in events] == [DataReceived, TrailersReceived]
    assert events[1].headers == [(b"x-checksum", b"abc")]

    peer.engine.send_headers(1, OK, False)
    peer.engine.send_data(1, b"part", False)
    peer.engine.send_trailers(1, [(b"grpc-status", b"0")])
    got = peer.answer()
    kinds = [type(e) for e in got if not isinstance(e, h2.events.WindowUpdated)]
    assert kinds == [h2.events.ResponseReceived, h2.events.DataReceived,
                     h2.events.TrailersReceived, h2.events.StreamEnded]
    assert [e.headers for e in got if isinstance(e, h2.events.TrailersReceived)] == [[(b"grpc-status", b"0")]]
    assert peer.engine.open_streams == 0


def test_response_waits_for_the_window(engine_name: str) -> None:
    peer = Peer(engine_name)
    peer.request()
    peer.engine.send_headers(1, OK, False)
    window = peer.engine.outbound_window(1)
    assert window == 65535
    peer.engine.send_data(1, b"x" * window, False)
    assert peer.engine.outbound_window(1) == 0
    got = peer.answer()
    received = sum(len(e.data) for e in got if isinstance(e, h2.events.DataReceived))
    assert received == 65535
    frames = [t for t in frame_types(peer.last_out) if t == 0]
    assert len(frames) >= 4  # split by the peer's 16 KiB frames
    peer.client.acknowledge_received_data(received, 1)
    events, _ = peer.exchange()
    assert {e.stream_id for e in events if isinstance(e, WindowUpdated)} >= {1}
    assert peer.engine.outbound_window(1) > 0
    peer.engine.send_data(1, b"end", True)
    got = peer.answer()
    assert any(isinstance(e, h2.events.StreamEnded) for e in got)


def test_resets_both_ways(engine_name: str) -> None:
    peer = Peer(engine_name)
    peer.request()
    peer.request()
    peer.client.reset_stream(1, 0x8)
    events, _ = peer.exchange()
    assert [(type(e), e.stream_id, e.error_code) for e in events] == [(StreamReset, 1, 0x8)]
    peer.engine.reset(3, 0x2)
    got = peer.answer()
    assert [(e.stream_id, e.error_code) for e in got if isinstance(e, h2.events.StreamReset)] == [(3, 0x2)]
    assert peer.engine.open_streams == 0


def test_graceful_goaway_names_the_last_stream_and_lets_it_finish(engine_name: str) -> None:
    peer = Peer(engine_name)
    peer.request()
    peer.request()
    peer.engine.goaway(NO_ERROR, last_stream_id=3)
    got = peer.answer()
    terminated = [e for e in got if isinstance(e, h2.events.ConnectionTerminated)]
    assert [(e.error_code, e.last_stream_id) for e in terminated] == [(0, 3)]
    for sid in (1, 3):
        peer.engine.send_headers(sid, OK, False)
        peer.engine.send_data(sid, b"late", True)
    out = peer.engine.data_to_send()
    assert frame_types(out).count(1) == 2 and frame_types(out).count(0) == 2


def test_peer_goaway(engine_name: str) -> None:
    peer = Peer(engine_name)
    peer.request()
    peer.client.close_connection(0)
    events, _ = peer.exchange()
    assert [(type(e), e.error_code) for e in events] == [(ConnectionTerminated, 0)]


def test_h2c_upgrade_makes_stream_1_the_request(engine_name: str) -> None:
    peer = Peer(engine_name, upgrade=True)
    assert peer.engine.open_streams == 1
    peer.engine.send_headers(1, OK, False)
    peer.engine.send_data(1, b"upgraded", True)
    got = peer.answer()
    assert [e.stream_id for e in got if isinstance(e, h2.events.ResponseReceived)] == [1]
    assert b"".join(e.data for e in got if isinstance(e, h2.events.DataReceived)) == b"upgraded"
    sid, events = peer.request()
    assert sid == 3 and [type(e) for e in events] == [RequestReceived]


def test_continuation_flood_is_a_connection_error(engine_name: str) -> None:
    peer = Peer(engine_name)
    block = hpack.Encoder().encode(GET)
    head = HeadersFrame(1)
    head.data = block
    head.flags.add("END_STREAM")  # no END_HEADERS: CONTINUATION frames must follow
    flood = b"".join(ContinuationFrame(1, data=b"").serialize() for _ in range(100))
    events = peer.engine.receive(peer.client.data_to_send() + head.serialize() + flood)
    errors = [e for e in events if isinstance(e, ProtocolError)]
    assert errors and not any(isinstance(e, RequestReceived) for e in events)
    assert 7 in frame_types(peer.engine.data_to_send())  # GOAWAY


def test_ping_flood_is_a_connection_error(engine_name: str) -> None:
    peer = Peer(engine_name)
    pings = b"".join(PingFrame(0, opaque_data=b"12345678").serialize() for _ in range(1001))
    events = peer.engine.receive(pings)
    assert [e.error_code for e in events if isinstance(e, ProtocolError)] == [ENHANCE_YOUR_CALM]
    out = peer.engine.data_to_send()
    assert 7 in frame_types(out)
    assert frame_types(out).count(6) <= FLOOD_BUDGET + 1  # the acks stop at the budget


def test_pings_between_requests_are_not_a_flood(engine_name: str) -> None:
    peer = Peer(engine_name)
    for _ in range(3):
        peer.engine.receive(b"".join(PingFrame(0, opaque_data=b"12345678").serialize()
                                     for _ in range(600)))
        _, events = peer.request()
        assert [type(e) for e in events] == [RequestReceived]


def _refused(events: list, out: bytes, sid: int) -> bool:
    """The engine refused stream ``sid``: at the connection (ProtocolError, GOAWAY) or the
    stream (RST_STREAM), and the request never reached the protocol."""
    if any(isinstance(e, RequestReceived) and e.stream_id == sid for e in events):
        return False
    return any(isinstance(e, ProtocolError) for e in events) or (3, sid) in frames(out)


def test_header_list_over_the_limit_is_refused(engine_name: str) -> None:
    peer = Peer(engine_name, H2Settings(max_header_list_size=4096))
    sid = peer.client.get_next_available_stream_id()
    # h2's client respects the server's SETTINGS_MAX_HEADER_LIST_SIZE only as a hint.
    peer.client.send_headers(sid, GET + [(b"cookie", b"c" * 5000)], end_stream=True)
    events = peer.engine.receive(peer.client.data_to_send())
    assert _refused(events, peer.engine.data_to_send(), sid)


def test_hpack_bomb_is_refused_without_decoding_it(engine_name: str) -> None:
    """One 4 KB field put in the dynamic table, then referenced 200 times in one block
    (~800 KB decoded from ~200 bytes)."""
    peer = Peer(engine_name)
    encoder = hpack.Encoder()
    # Static-table fields and a never-indexed authority: only the bomb enters the table.
    head = [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http"),
            (b":authority", b"localhost", True)]
    first = HeadersFrame(1, data=encoder.encode(head + [(b"x-bomb", b"b" * 4000)]))
    first.flags.add("END_HEADERS")
    first.flags.add("END_STREAM")
    events = peer.engine.receive(peer.client.data_to_send() + first.serialize())
    assert [type(e) for e in events] == [RequestReceived]
    bomb = HeadersFrame(3, data=encoder.encode(head + [(b"x-bomb", b"b" * 4000)] * 200))
    assert len(bomb.data) < 400
    bomb.flags.add("END_HEADERS")
    bomb.flags.add("END_STREAM")
    events = peer.engine.receive(bomb.serialize())
    assert _refused(events, peer.engine.data_to_send(), 3)


def test_nghttp2_refuses_an_oversized_list_per_stream() -> None:
    """libnghttp2 keeps decoding the block (HPACK state) but not into Python, resets just
    that stream (RFC 9113 10.5.1) and serves the next one."""
    if engine_available("nghttp2"):
        pytest.skip(engine_available("nghttp2"))
    peer = Peer("nghttp2", H2Settings(max_header_list_size=4096))
    peer.client.send_headers(1, GET + [(b"cookie", b"c" * 5000)], end_stream=True)
    events, got = peer.exchange()
    assert [(e.stream_id, e.error_code) for e in got if isinstance(e, h2.events.StreamReset)] == \
        [(1, ENHANCE_YOUR_CALM)]
    assert peer.engine.oversized_header_lists == 1  # type: ignore[attr-defined]
    sid, events = peer.request()
    assert [(type(e), e.stream_id) for e in events] == [(RequestReceived, 3)]


def test_nghttp2_rapid_reset_burst_ends_the_connection() -> None:
    """CVE-2023-44487: the library's own bucket (RESET_BURST) is a backstop behind the
    protocol's count; past it, GOAWAY and ProtocolError."""
    if engine_available("nghttp2"):
        pytest.skip(engine_available("nghttp2"))
    from unicorn_aio.http2.nghttp2 import RESET_BURST, RESET_RATE
    peer = Peer("nghttp2", H2Settings(max_concurrent_streams=100))
    encoder = hpack.Encoder()
    burst = []
    # The bucket refills RESET_RATE a second while the burst is read: on a busy machine that
    # takes a while, so the burst goes well past RESET_BURST, and the refill is allowed for.
    for i in range(RESET_BURST + 300):
        sid = 2 * i + 1
        head = HeadersFrame(sid, data=encoder.encode(GET))
        head.flags.add("END_HEADERS")
        head.flags.add("END_STREAM")
        burst.append(head.serialize() + RstStreamFrame(sid, error_code=0x8).serialize())
    started = time.monotonic()
    events = peer.engine.receive(peer.client.data_to_send() + b"".join(burst))
    refilled = math.ceil(RESET_RATE * (time.monotonic() - started))
    errors = [e for e in events if isinstance(e, ProtocolError)]
    assert errors, "no GOAWAY after a burst of resets"
    assert sum(isinstance(e, RequestReceived) for e in events) <= RESET_BURST + 1 + refilled
    assert 7 in frame_types(peer.engine.data_to_send())
    # Nothing more is read on that connection.
    late = HeadersFrame(2 * RESET_BURST + 701, data=encoder.encode(GET))
    late.flags.add("END_HEADERS")
    late.flags.add("END_STREAM")
    assert peer.engine.receive(late.serialize()) == []


def test_nghttp2_malformed_request_is_reported_as_a_reset() -> None:
    """A stream the library resets by itself (here a body longer than content-length) must
    reach the protocol as StreamReset, or the app would wait for the rest of the body."""
    if engine_available("nghttp2"):
        pytest.skip(engine_available("nghttp2"))
    peer = Peer("nghttp2")
    peer.request(POST + [(b"content-length", b"3")], end_stream=False)
    peer.client.send_data(1, b"too long", end_stream=True)
    events, got = peer.exchange()
    assert [(type(e), e.stream_id) for e in events if isinstance(e, StreamReset)] == [(StreamReset, 1)]
    assert peer.engine.open_streams == 0


def test_nghttp2_many_streams_on_one_connection() -> None:
    """Ordinary h2load-like traffic (10 at a time) for 10,000 streams is served to the end, the
    way a load balancer's long-lived connection uses it (zttp 0.0.35 gives up near 4,000)."""
    if engine_available("nghttp2"):
        pytest.skip(engine_available("nghttp2"))
    peer = Peer("nghttp2", H2Settings(max_concurrent_streams=100))
    served = 0
    for _ in range(1000):
        sids = []
        for _ in range(10):
            sid = peer.client.get_next_available_stream_id()
            peer.client.send_headers(sid, GET, end_stream=True)
            sids.append(sid)
        events, _ = peer.exchange()
        assert [e.stream_id for e in events if isinstance(e, RequestReceived)] == sids
        for sid in sids:
            peer.engine.send_headers(sid, OK, False)
            peer.engine.send_data(sid, b"hello", True)
        for e in peer.answer():
            if isinstance(e, h2.events.DataReceived):
                peer.client.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            elif isinstance(e, h2.events.StreamEnded):
                served += 1
    assert served == 10000 and peer.engine.open_streams == 0


def test_nghttp2_answer_after_the_peer_reset_is_dropped() -> None:
    """The app may answer a stream the peer has reset meanwhile: nothing is sent for it and
    nothing is kept for it (a long-lived connection sees this race again and again)."""
    if engine_available("nghttp2"):
        pytest.skip(engine_available("nghttp2"))
    peer = Peer("nghttp2")
    peer.request()
    peer.client.reset_stream(1, 0x8)
    peer.exchange()
    peer.engine.send_headers(1, OK, False)
    peer.engine.send_data(1, b"late", True)
    peer.engine.reset(1, 0x8)
    assert peer.engine.data_to_send() == b""
    assert peer.engine._outbound == {}  # type: ignore[attr-defined]
    assert peer.engine.outbound_window(1) == 0


@pytest.mark.parametrize("body", [b"too large", b""])
def test_response_before_the_request_body_then_reset_no_error(engine_name: str, body: bytes) -> None:
    """RFC 9113 8.1: a server may answer before the request body is done and then reset the
    stream with NO_ERROR; the whole response reaches the client first."""
    peer = Peer(engine_name)
    peer.request(POST, end_stream=False)
    peer.client.send_data(1, b"part of a body")
    peer.exchange()
    peer.engine.send_headers(1, [(b":status", b"413")], not body)
    if body:
        peer.engine.send_data(1, body, True)
    peer.engine.reset(1, NO_ERROR)
    got = peer.answer()
    kinds = [type(e) for e in got if not isinstance(e, h2.events.WindowUpdated)]
    assert kinds == [h2.events.ResponseReceived] + [h2.events.DataReceived] * bool(body) + \
        [h2.events.StreamEnded, h2.events.StreamReset]
    assert b"".join(e.data for e in got if isinstance(e, h2.events.DataReceived)) == body
    assert [e.error_code for e in got if isinstance(e, h2.events.StreamReset)] == [NO_ERROR]
    assert peer.engine.open_streams == 0


def test_header_list_size_0_is_unlimited(engine_name: str) -> None:
    """--http2-max-header-list-size 0 means no limit (gunicorn's setting), not 'refuse all'."""
    peer = Peer(engine_name, H2Settings(max_header_list_size=0))
    sid, events = peer.request(GET + [(b"cookie", b"c" * 70_000)])  # past the 65,536 default
    assert [(type(e), getattr(e, "stream_id", None)) for e in events] == [(RequestReceived, sid)]


def test_nghttp2_connection_window_follows_a_larger_initial_window() -> None:
    """RFC 9113 6.9.2: SETTINGS set the streams' windows, the connection's stays 65,535 until a
    WINDOW_UPDATE: with --http2-initial-window-size 1 MiB one stream may send 1 MiB at once."""
    if engine_available("nghttp2"):
        pytest.skip(engine_available("nghttp2"))
    peer = Peer("nghttp2", H2Settings(initial_window_size=1 << 20))
    peer.request(POST, end_stream=False)
    assert peer.client.local_flow_control_window(1) == 1 << 20


def test_ping_is_answered(engine_name: str) -> None:
    peer = Peer(engine_name)
    peer.client.ping(b"pingpong")
    events, got = peer.exchange()
    assert events == []
    assert [e.ping_data for e in got if isinstance(e, h2.events.PingAckReceived)] == [b"pingpong"]


def test_peer_window_setting_wakes_every_stream(engine_name: str) -> None:
    """A new SETTINGS_INITIAL_WINDOW_SIZE moves every stream's window (RFC 9113 6.9.2): the
    protocol hears WindowUpdated(0) and retries whatever waits."""
    peer = Peer(engine_name)
    peer.request()
    peer.client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
    events, _ = peer.exchange()
    assert [(type(e), e.stream_id) for e in events] == [(WindowUpdated, 0)]
    peer.engine.send_headers(1, OK, False)
    assert peer.engine.outbound_window(1) == 65535  # the connection's window bounds it


def test_empty_data_frame_ends_the_request(engine_name: str) -> None:
    peer = Peer(engine_name)
    peer.request(POST, end_stream=False)
    peer.client.end_stream(1)
    events, _ = peer.exchange()
    assert [(type(e), e.stream_id) for e in events] in (
        [(DataReceived, 1)], [(StreamEnded, 1)])
    if isinstance(events[0], DataReceived):
        assert (events[0].data, events[0].flow_length, events[0].end_stream) == (b"", 0, True)


def test_data_past_the_window_is_a_connection_error(engine_name: str) -> None:
    peer = Peer(engine_name)
    peer.request(POST, end_stream=False)
    # 5 frames of 16,000 bytes: 80,000 bytes against a 65,535-byte window never given back.
    raw = b"".join(DataFrame(1, data=b"x" * 16000).serialize() for _ in range(5))
    events = peer.engine.receive(raw)
    assert [e.error_code for e in events if isinstance(e, ProtocolError)] == [FLOW_CONTROL_ERROR]
    assert 7 in frame_types(peer.engine.data_to_send())


def test_bad_frame_after_a_graceful_goaway_is_still_an_error(engine_name: str) -> None:
    """A connection told to wind down (GOAWAY NO_ERROR) still ends on a connection error."""
    peer = Peer(engine_name)
    peer.request()
    peer.engine.goaway(NO_ERROR, 1)
    peer.answer()
    data_on_stream_0 = b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x"  # RFC 9113 6.1: PROTOCOL_ERROR
    events = peer.engine.receive(data_on_stream_0)
    assert [e.error_code for e in events if isinstance(e, ProtocolError)] == [PROTOCOL_ERROR]
