"""The known HTTP/2 floods against a real server, each written frame by frame, each bounded by
counts this test checks (resets accepted, app calls started, frames answered, bytes held),
never by timing - for both engines.
"""

from __future__ import annotations

import json
import time

import hpack
import pytest
from h2c import (
    ENGINES,
    H2Client,
    H2Server,
    frames_until_closed,
    handshake,
    raw_connection,
    rss_kb,
    send_frames,
    skip_unless_engine,
)
from hyperframe.frame import (
    ContinuationFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

from unicorn_aio.http2.engine import CANCEL, ENHANCE_YOUR_CALM, FLOOD_BUDGET, REFUSED_STREAM
from unicorn_aio.http2.limits import RESET_BUDGET

pytestmark = pytest.mark.timeout(90)

MAX_STREAMS = 100  # --http2-max-concurrent-streams's default


def get(path: str) -> list[tuple[bytes, bytes]]:
    return [(b":method", b"GET"), (b":path", path.encode()), (b":scheme", b"http"),
            (b":authority", b"127.0.0.1")]


@pytest.fixture(params=[(i, e) for e in ENGINES for i in ("asgi", "wsgi")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def server(request, tmp_path):
    interface, engine = request.param
    skip_unless_engine(engine)
    proc = H2Server(f"h2_apps:{interface}", "--threads", "4", "--body-timeout", "3",
                    engine=engine, log_path=str(tmp_path / "server.log"))
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


def calls(server) -> int:
    with H2Client(server.port) as client:
        return json.loads(client.request("GET", "/calls")[2])["calls"]


def goaways(frames) -> list[GoAwayFrame]:
    return [f for f in frames if isinstance(f, GoAwayFrame)]


def test_rapid_reset(server):
    # CVE-2023-44487: open a stream whose app call starts, reset it, again and again.
    encoder = hpack.Encoder()
    before = calls(server)
    sock = handshake(server.port)
    burst = []
    for i in range(2000):
        sid = 2 * i + 1
        # A short call: WSGI threads run the calls of reset streams all the same (as a request
        # whose client left), and /calls below waits behind them.
        burst.append(HeadersFrame(sid, data=encoder.encode(get("/sleep?s=0.05")),
                                  flags=["END_HEADERS", "END_STREAM"]))
        burst.append(RstStreamFrame(sid, error_code=CANCEL))
    send_frames(sock, burst)
    frames = frames_until_closed(sock)
    sock.close()
    away = goaways(frames)
    assert away and away[-1].error_code == ENHANCE_YOUR_CALM, frames[-3:]
    # What the peer got for its 2000 streams: at most the streams open at once plus the
    # resets allowed reached an app; the others never started one.
    assert away[-1].last_stream_id < 2 * (MAX_STREAMS + RESET_BUDGET + 1) * 2
    started = calls(server) - before - 1  # after what was queued for the WSGI threads
    assert started <= MAX_STREAMS + RESET_BUDGET + 1, started


def test_streams_over_the_limit_never_reach_the_app(server):
    # 150 streams at once, before our SETTINGS are acknowledged (the engines enforce them from
    # then on; the protocol refuses what is over them before): refused, or the connection
    # ends; never more than the limit in the app.
    encoder = hpack.Encoder()
    before = calls(server)
    sock = raw_connection(server.port)
    send_frames(sock, [HeadersFrame(2 * i + 1, data=encoder.encode(get("/sleep?s=0.5")),
                                    flags=["END_HEADERS", "END_STREAM"]) for i in range(150)])
    frames = frames_until_closed(sock, timeout=4)
    sock.close()
    refused = [f for f in frames if isinstance(f, RstStreamFrame)
               and f.error_code == REFUSED_STREAM]
    assert len(refused) >= 50 or goaways(frames)
    assert calls(server) - before - 1 <= MAX_STREAMS


def test_continuation_flood(server):
    # CVE-2024-27316 / -28182: a header block that never ends.
    sock = handshake(server.port)
    block = hpack.Encoder().encode(get("/"))
    sent = send_frames(sock, [HeadersFrame(1, data=block, flags=["END_STREAM"])])
    junk = b"\x00" * 1024
    count = 0
    while sent and count < 20000:  # 20 MB, unless the server gives up first
        sent = send_frames(sock, [ContinuationFrame(1, data=junk)] * 100)
        count += 100
    frames = frames_until_closed(sock, timeout=5)
    sock.close()
    assert not sent or goaways(frames), "the server read 20 MB of one header block"
    assert count < 20000
    if frames:
        assert goaways(frames) and goaways(frames)[-1].error_code != 0
    assert calls(server) >= 1  # the server lives on


def test_hpack_bomb_and_oversized_header_lists(server):
    worker = server.workers()[0]
    before = rss_kb(worker)
    # One 4 KB field in the dynamic table, then referenced 2000 times: 8 MB from 4 KB.
    encoder = hpack.Encoder()
    first = encoder.encode(get("/") + [(b"x-bomb", b"b" * 4000)])
    index = encoder.encode([(b"x-bomb", b"b" * 4000)])  # an indexed reference, 1-2 bytes
    assert len(index) <= 2
    sock = handshake(server.port)
    send_frames(sock, [HeadersFrame(1, data=first, flags=["END_HEADERS", "END_STREAM"]),
                       HeadersFrame(3, data=encoder.encode(get("/")) + index * 2000,
                                    flags=["END_HEADERS", "END_STREAM"])])
    frames = frames_until_closed(sock, timeout=4)
    sock.close()
    # Stream 3 is refused (431, or reset), or the connection ends with GOAWAY: never served.
    served = [f for f in frames if isinstance(f, HeadersFrame) and f.stream_id == 3]
    reset = [f for f in frames if isinstance(f, RstStreamFrame) and f.stream_id == 3]
    if served:
        assert hpack.Decoder().decode(served[0].data)[0] == (":status", "431") or reset
    else:
        assert reset or goaways(frames), frames
    assert rss_kb(worker) - before < 20 * 1024
    assert calls(server) >= 1


@pytest.mark.parametrize("kind", ["ping", "settings"])
def test_ping_and_settings_floods(server, kind):
    sock = handshake(server.port)
    if kind == "ping":
        flood = [PingFrame(0, opaque_data=b"%08d" % i) for i in range(5000)]
    else:
        flood = [SettingsFrame(0, settings={4: 65535}) for _ in range(5000)]
    send_frames(sock, flood)
    frames = frames_until_closed(sock, timeout=10)
    sock.close()
    answers = [f for f in frames if isinstance(f, (PingFrame, SettingsFrame))
               and "ACK" in f.flags]
    assert len(answers) <= FLOOD_BUDGET + 1  # + the ACK of our first SETTINGS
    away = goaways(frames)
    assert away and away[-1].error_code == ENHANCE_YOUR_CALM


def test_zero_window_held_open(server):
    # The client opens no window (SETTINGS_INITIAL_WINDOW_SIZE 0) and asks for 10 x 50 MB:
    # the apps are paused with a bounded backlog, and --body-timeout (3 s) ends it.
    worker = server.workers()[0]
    before = rss_kb(worker)
    sock = handshake(server.port, settings={4: 0})
    encoder = hpack.Encoder()
    send_frames(sock, [HeadersFrame(2 * i + 1, data=encoder.encode(get(f"/download?n={50 << 20}")),
                                    flags=["END_HEADERS", "END_STREAM"]) for i in range(10)])
    time.sleep(1.5)
    held = rss_kb(worker) - before
    began = time.monotonic()
    frames = frames_until_closed(sock, timeout=20)
    sock.close()
    assert held < 30 * 1024, held  # not 500 MB: a few HIGH_WATERs
    assert goaways(frames) and time.monotonic() - began < 15
    assert calls(server) >= 1  # and the worker serves on
