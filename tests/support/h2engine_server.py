"""The smallest HTTP/2 server on an engine alone (http2/engine.py), for real clients (curl,
h2load) to talk to without the connection protocol in between: hello for a GET, the byte count
for a POST (the body given back as read), prior knowledge or an h2c upgrade.
"""

from __future__ import annotations

import asyncio
import base64

from unicorn_aio.http2.engine import (
    DataReceived,
    H2Settings,
    ProtocolError,
    RequestReceived,
    StreamReset,
    WindowUpdated,
)
from unicorn_aio.http2.engines import make_engine

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HELLO = b"Hello, World!"


class EngineServerProtocol(asyncio.Protocol):
    def __init__(self, engine_name: str) -> None:
        self.engine = make_engine(H2Settings(), engine_name)
        self.head = b""          # HTTP/1.1 bytes before the upgrade, if any
        self.started = False
        self.bodies: dict[int, int] = {}
        self.pending: dict[int, bytes] = {}   # response bytes waiting for the window

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.started:
            self.head += data
            if len(self.head) < len(PREFACE) and PREFACE.startswith(self.head):
                return
            if self.head.startswith(PREFACE):
                data, self.head = self.head, b""
                self.engine.initiate()
            else:
                end = self.head.find(b"\r\n\r\n")
                if end < 0:
                    return
                head, data, self.head = self.head[:end], self.head[end + 4:], b""
                if not self.upgrade(head):
                    return
            self.started = True
        self.feed(data)

    def upgrade(self, head: bytes) -> bool:
        fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
        fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
        if fields.get(b"upgrade", b"").lower() != b"h2c" or b"http2-settings" not in fields:
            self.transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            self.transport.close()
            return False
        settings = fields[b"http2-settings"]
        self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                             b"Upgrade: h2c\r\n\r\n")
        self.engine.initiate(base64.urlsafe_b64decode(settings + b"=" * (-len(settings) % 4)))
        self.respond(1, HELLO)
        return True

    def feed(self, data: bytes) -> None:
        engine = self.engine
        for ev in engine.receive(data):
            if isinstance(ev, RequestReceived):
                if ev.end_stream:
                    self.respond(ev.stream_id, HELLO)
                else:
                    self.bodies[ev.stream_id] = 0
            elif isinstance(ev, DataReceived):
                self.bodies[ev.stream_id] = self.bodies.get(ev.stream_id, 0) + len(ev.data)
                engine.consume(ev.stream_id, ev.flow_length)
                if ev.end_stream:
                    self.respond(ev.stream_id, str(self.bodies.pop(ev.stream_id)).encode())
            elif isinstance(ev, StreamReset):
                self.pending.pop(ev.stream_id, None)
            elif isinstance(ev, WindowUpdated):
                for sid in list(self.pending):
                    self.send_some(sid)
            elif isinstance(ev, ProtocolError):
                self.transport.write(engine.data_to_send())
                self.transport.close()
                return
        self.flush()

    def respond(self, stream_id: int, body: bytes) -> None:
        self.engine.send_headers(stream_id, [(b":status", b"200"), (b"content-type", b"text/plain"),
                                             (b"content-length", str(len(body)).encode())], False)
        self.pending[stream_id] = body
        self.send_some(stream_id)

    def send_some(self, stream_id: int) -> None:
        body = self.pending[stream_id]
        n = min(len(body), self.engine.outbound_window(stream_id))
        if n < len(body) and n == 0:
            return
        self.engine.send_data(stream_id, body[:n], n == len(body))
        if n == len(body):
            del self.pending[stream_id]
        else:
            self.pending[stream_id] = body[n:]

    def flush(self) -> None:
        out = self.engine.data_to_send()
        if out:
            self.transport.write(out)


async def start(engine_name: str) -> tuple[asyncio.AbstractServer, int]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: EngineServerProtocol(engine_name), "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]
