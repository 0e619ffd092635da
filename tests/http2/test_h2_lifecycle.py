"""An HTTP/2 connection's life: the graceful GOAWAY after --http2-max-streams-per-connection
streams, on a graceful stop and on max-requests retirement (in-flight streams finish); the
idle timeout; PING.
"""

from __future__ import annotations

import json
import signal
import time

import h2.events
import hpack
import httpx
import pytest
from h2c import (
    ENGINES,
    H2Client,
    H2Server,
    handshake,
    send_frames,
    skip_unless_engine,
    split_frames,
)
from hyperframe.frame import GoAwayFrame, HeadersFrame

pytestmark = pytest.mark.timeout(60)

APPS = {"wsgi": "h2_apps:wsgi", "asgi": "h2_apps:asgi"}
GET_SLEEP = [(b":method", b"GET"), (b":path", b"/sleep?s=0.05"), (b":scheme", b"http"),
             (b":authority", b"127.0.0.1")]


@pytest.fixture(params=[(i, e) for e in ENGINES for i in APPS], ids=lambda p: f"{p[0]}-{p[1]}")
def start(request, tmp_path):
    interface, engine = request.param
    skip_unless_engine(engine)
    started = []

    def start(*args: str) -> H2Server:
        proc = H2Server(APPS[interface], "--threads", "8", *args, engine=engine,
                        log_path=str(tmp_path / f"server{len(started)}.log"))
        started.append(proc)
        return proc.wait_ready()

    yield start
    for proc in started:
        proc.stop()


def test_streams_per_connection_bound_is_crossed_without_an_error(start):
    server = start("--http2-max-streams-per-connection", "20")
    ports = set()
    with httpx.Client(http1=False, http2=True, timeout=20) as client:
        for _ in range(70):  # sequential: each connection serves its 20, then a new one
            resp = client.get(f"{server.url}/echo")
            assert resp.status_code == 200 and resp.http_version == "HTTP/2"
            ports.add(json.loads(resp.content)["port"])
    assert len(ports) == 4


def test_goaway_at_the_bound_lets_streams_in_flight_finish(start):
    server = start("--http2-max-streams-per-connection", "3")
    with H2Client(server.port) as client:
        sids = [client.send_request("GET", "/sleep?s=0.5") for _ in range(5)]
        # All 5 were on their way before the connection met its bound: all are served, and
        # only then does the GOAWAY come, naming the last.
        assert [client.response(sid)[2] for sid in sids] == [b"slept"] * 5
        client.wait_closed()
        assert client.closed and client.goaway is not None
        assert (client.goaway.error_code, client.goaway.last_stream_id) == (0, 9)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_graceful_stop_and_reload_finish_streams_in_flight(start, sig):
    server = start("--graceful-timeout", "10")
    with H2Client(server.port) as client:
        assert client.request("GET", "/")[2] == b"ok"
        sid = client.send_request("GET", "/sleep?s=1.5")
        time.sleep(0.5)  # the app call is under way
        server.signal(sig)
        status, _, body = client.response(sid)
        assert (status, body) == (200, b"slept")
        # A reload stops the old worker once the new one serves: the GOAWAY may come later.
        client.wait_closed(timeout=20)
        assert client.closed and client.goaway is not None
        assert (client.goaway.error_code, client.goaway.last_stream_id) == (0, sid)


def test_max_requests_retires_the_worker_with_a_goaway(start):
    server = start("--max-requests", "5")
    first = server.workers()
    with H2Client(server.port) as client:
        for _ in range(5):
            assert client.request("GET", "/")[2] == b"ok"
        client.wait_closed()
        assert client.goaway is not None and client.goaway.error_code == 0
    time.sleep(0.5)
    server.wait_ready()
    assert server.workers() != first


def test_idle_connection_is_closed_after_keep_alive_with_goaway(start):
    server = start("--keep-alive", "1")
    with H2Client(server.port) as client:
        assert client.request("GET", "/")[2] == b"ok"
        began = time.monotonic()
        client.wait_closed(timeout=10)
        assert client.closed and 0.5 < time.monotonic() - began < 5
        assert client.goaway is not None and client.goaway.error_code == 0


def test_ping_is_answered(start):
    server = start()
    with H2Client(server.port) as client:
        client.conn.ping(b"12345678")
        client.flush()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
                isinstance(ev, h2.events.PingAckReceived) for ev in client.events):
            client.receive()
        acks = [ev for ev in client.events if isinstance(ev, h2.events.PingAckReceived)]
        assert acks and acks[0].ping_data == b"12345678"


def test_a_client_never_idle_loses_no_stream_to_the_bound(start):
    # Past the bound the connection waits to be idle; a client that always has streams in
    # flight is told after --http2-max-concurrent-streams more (here 4), or at an idle moment:
    # every stream up to the GOAWAY's last id is answered, none after it is started. Raw
    # frames: h2's client state machine takes no frame after a GOAWAY (RFC 9113 allows them).
    server = start("--http2-max-streams-per-connection", "5", "--http2-max-concurrent-streams",
                   "4")
    encoder = hpack.Encoder()
    sock = handshake(server.port)
    sent: list[int] = []

    def request() -> None:
        sid = 2 * len(sent) + 1
        sent.append(sid)
        send_frames(sock, [HeadersFrame(sid, data=encoder.encode(GET_SLEEP),
                                        flags=["END_HEADERS", "END_STREAM"])])

    for _ in range(3):
        request()
    answered: set[int] = set()
    goaway = None
    buf = b""
    sock.settimeout(10)
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        frames, buf = split_frames(buf + chunk)
        for frame in frames:
            if isinstance(frame, GoAwayFrame):
                goaway = frame
            elif frame.stream_id and "END_STREAM" in frame.flags:
                answered.add(frame.stream_id)
                if goaway is None and len(sent) < 40:
                    request()
    sock.close()
    assert goaway is not None and goaway.error_code == 0
    assert goaway.last_stream_id >= 9  # the bound (5 streams) was served at least
    assert answered == {sid for sid in sent if sid <= goaway.last_stream_id}
