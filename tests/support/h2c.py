"""HTTP/2 on the client side for tests: a blocking h2 connection over a real socket, frames
read as they come (hyperframe), and servers started with h2 on.

``H2Client`` uses python-hyper h2 for what a well-behaved client does; floods write frames
by hand (``send_frames``) and read what the server answers (``frames_until_closed``).
"""

from __future__ import annotations

import os
import socket
import ssl
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
from hyperframe.frame import Frame, SettingsFrame
from procs import ServerProcess, wait_for

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ENGINES = ("h2", "nghttp2")


def engine_env(engine: str) -> dict[str, str]:
    return {"UNICORN_AIO_H2_ENGINE": engine}


def skip_unless_engine(engine: str) -> None:
    import pytest

    from unicorn_aio.http2.engines import engine_available

    why = engine_available(engine)
    if why:
        pytest.skip(why)


class H2Server(ServerProcess):
    """A server with h2c (both mechanisms) for peers on 127.0.0.1, on ``engine``."""

    def __init__(self, app: str, *args: str, engine: str = "h2", cleartext: str = "both",
                 env: dict | None = None, **kw) -> None:
        full_env = dict(engine_env(engine), **(env or {}))
        super().__init__(app, "--http-protocols", "h2,h1", "--http2-cleartext", cleartext,
                         "--forwarded-allow-ips", "127.0.0.1", *args, env=full_env, **kw)
        self.engine = engine
        self.cleartext = cleartext
        self.tls: ssl.SSLContext | None = None  # set to wait for a TLS server (ALPN h2)
        self.h1_ready = cleartext in ("upgrade", "off")  # wait for it with an HTTP/1.1 GET

    def wait_ready(self, workers: int = 1, timeout: float = 15.0) -> "H2Server":
        if self.h1_ready and self.tls is None:
            super().wait_ready(workers, timeout)
            return self

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            if len(self.workers()) < workers:
                return False
            try:
                with H2Client(self.port, timeout=1, tls=self.tls) as client:
                    return client.request("GET", "/")[0] == 200
            except OSError:
                return False
        wait_for(ready, timeout, what=f"{workers} worker(s) serving h2c on {self.url}")
        return self


class H2Client:
    """One HTTP/2 connection (prior knowledge, or TLS with ALPN h2) driven by h2."""

    def __init__(self, port: int, *, timeout: float = 10.0, tls: ssl.SSLContext | None = None,
                 settings: dict | None = None, window: int | None = None) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname="localhost")
            assert sock.selected_alpn_protocol() == "h2", sock.selected_alpn_protocol()
        self.sock = sock
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=config)
        if settings:
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.conn.initiate_connection()
        if window:
            self.conn.increment_flow_control_window(window)
        self.flush()
        self.events: list = []
        self.closed = False
        self.goaway: h2.events.ConnectionTerminated | None = None

    def __enter__(self) -> "H2Client":
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def receive(self) -> list:
        """One read's events (none when the server closed)."""
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return []
        events = self.conn.receive_data(data)
        for ev in events:
            if isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway = ev
        self.flush()
        self.events += events
        return events

    def send_request(self, method: str, path: str, headers=(), body: bytes | None = None,
                     end: bool = True) -> int:
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(b":method", method.encode()), (b":path", path.encode()),
                (b":scheme", b"http"), (b":authority", b"127.0.0.1")]
        hdrs += [(n.encode() if isinstance(n, str) else n, v.encode() if isinstance(v, str) else v)
                 for n, v in headers]
        self.conn.send_headers(sid, hdrs, end_stream=end and not body)
        self.flush()
        if body:
            self.send_body(sid, body, end)
        return sid

    def send_body(self, sid: int, body: bytes, end: bool = True) -> None:
        view = memoryview(body)
        while view:
            window = min(self.conn.local_flow_control_window(sid),
                         self.conn.max_outbound_frame_size)
            if window <= 0:
                self.receive()
                if self.closed:
                    raise ConnectionError("server closed while the body was sent")
                continue
            chunk, view = view[:window], view[window:]
            self.conn.send_data(sid, bytes(chunk), end_stream=end and not view)
            self.flush()
        if end and not body:
            self.conn.end_stream(sid)
            self.flush()

    def response(self, sid: int, consume: bool = True) -> tuple[int, dict, bytes]:
        """Read until stream ``sid`` ends: (status, headers, body)."""
        status, headers, body = 0, {}, bytearray()
        done = False
        seen = 0
        while not done:
            for ev in self.events[seen:]:
                if getattr(ev, "stream_id", None) != sid:
                    continue
                if isinstance(ev, h2.events.ResponseReceived):
                    for name, value in ev.headers:
                        headers.setdefault(name.decode(), value.decode())
                    status = int(headers[":status"])
                elif isinstance(ev, h2.events.DataReceived):
                    body += ev.data
                    if consume:
                        self.conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                elif isinstance(ev, h2.events.TrailersReceived):
                    headers.update({n.decode(): v.decode() for n, v in ev.headers})
                elif isinstance(ev, h2.events.StreamReset):
                    raise ConnectionError(f"stream {sid} reset: {ev.error_code!r}")
                if getattr(ev, "stream_ended", None) is not None or \
                        isinstance(ev, h2.events.StreamEnded):
                    done = True
            seen = len(self.events)
            if not done:
                self.flush()
                if not self.receive() and self.closed:
                    raise ConnectionError(f"server closed before stream {sid} ended")
        self.flush()
        return status, headers, bytes(body)

    def request(self, method: str, path: str, headers=(), body: bytes | None = None):
        return self.response(self.send_request(method, path, headers, body))

    def wait_closed(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self.receive()


# -- raw frames, for what h2 will not send ---------------------------------------------------

def raw_connection(port: int, settings: bytes = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00",
                   timeout: float = 10.0) -> socket.socket:
    """A connection that has sent the preface and an empty SETTINGS frame."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(PREFACE + settings)
    return sock


def handshake(port: int, settings: dict[int, int] | None = None,
              timeout: float = 10.0) -> socket.socket:
    """A raw connection past the SETTINGS exchange: ours sent (``settings``), the server's
    read and acknowledged, so that its limits are in force."""
    frame = SettingsFrame(0, settings=settings or {})
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(PREFACE + frame.serialize())
    data = b""
    while len(data) < 9 or len(data) < 9 + int.from_bytes(data[:3], "big"):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        data += chunk
    assert data[3] == 0x4, data[:9]
    sock.sendall(SettingsFrame(0, flags=["ACK"]).serialize())
    return sock


def send_frames(sock: socket.socket, frames) -> bool:
    """Send each frame; False once the server has closed (or reset) the connection."""
    try:
        sock.sendall(b"".join(f.serialize() for f in frames))
        return True
    except (BrokenPipeError, ConnectionResetError):
        return False


def parse_frames(data: bytes) -> list:
    return split_frames(data)[0]


def split_frames(data: bytes) -> tuple[list, bytes]:
    """The whole frames at the start of ``data``, and the bytes of an incomplete one after."""
    frames, i = [], 0
    while i + 9 <= len(data):
        frame, length = Frame.parse_frame_header(memoryview(data[i:i + 9]))
        if i + 9 + length > len(data):
            break
        frame.parse_body(memoryview(data[i + 9:i + 9 + length]))
        frames.append(frame)
        i += 9 + length
    return frames, data[i:]


def frames_until_closed(sock: socket.socket, timeout: float = 10.0) -> list:
    """Every frame the server sends until it closes the connection (or ``timeout``)."""
    data = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(1 << 20)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
    return parse_frames(bytes(data))


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def tls_client_context(ca) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    return ctx


SUPPORT = os.path.dirname(os.path.abspath(__file__))
