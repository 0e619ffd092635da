"""A WebSocket connection (RFC 6455) running an ASGI ``websocket`` scope, on wsproto.

The HTTP protocol parses the upgrade request and hands the connection over
(``HttpProtocol.detach``); from then on this object is the transport's protocol, and the server
keeps it among its connections like any other (``TrackedConnection`` in http/contract.py).
wsproto does the framing; here live the ASGI events, the message size limit, flow control both
ways and the close handshake.  Needs the optional ``wsproto`` package
(``pip install 'unicorn_aio[asgi]'``).
"""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING, Any, cast

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from unicorn_aio.http.body import ClientDisconnected
from unicorn_aio.http.contract import NEVER, Connection

if TYPE_CHECKING:
    from unicorn_aio.asgi.handler import ASGIHandler
    from unicorn_aio.http.protocol import Request as HttpRequest

CLOSE_TIMEOUT = 5.0  # seconds the peer has to answer our close frame (RFC 6455 7.1.1)
INBOX_HIGH = 64  # received messages the app has not taken yet: stop reading past this


class WebSocket(asyncio.Protocol):
    # The server's sweep treats every connection alike (see Server._tick): a WebSocket has no
    # parser to shed, and its deadline is set only while a close handshake is pending.
    quiet = False

    def shed(self) -> None:
        pass

    transport: asyncio.Transport  # set by connection_made, before anything reads it

    def __init__(self, handler: ASGIHandler, http_protocol: Connection, req: HttpRequest) -> None:
        self.handler = handler
        self.host = http_protocol.host  # the server, which keeps us among its connections
        self.loop = handler.loop
        self.req = req
        self.peername = http_protocol.peername
        self.scope = handler.scope("websocket", http_protocol, req, handler.ws_scheme)
        self.conn = WSConnection(ConnectionType.SERVER)
        self.max_size = handler.websocket_max_size
        self.deadline = NEVER  # the server's sweep: only a pending close handshake expires
        self.inbox: collections.deque[dict[str, Any]] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None
        # send() waiting for the transport to take more (resume_writing)
        self.writable: asyncio.Future[None] | None = None
        self.fragments: list[Any] = []  # one message's: all str (text) or all bytes
        self.fragment_size = 0
        self.handshake_done = False  # accepted or rejected
        self.accepted = False
        self.close_sent = False
        self.closed = False  # the app has had websocket.disconnect queued
        self.write_paused = False
        self.read_paused = False
        self.shutting_down = False
        self.rest = req.upgrade or b""

    # -- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream protocol is always given a full Transport.
        self.transport = cast(asyncio.Transport, transport)
        self.host.connection_made(self)
        try:
            self.conn.initiate_upgrade_connection(self.req.headers, self.req.url)
            request = next(e for e in self.conn.events() if isinstance(e, Request))
        except (RemoteProtocolError, StopIteration) as exc:
            self.handler.log.debug("bad WebSocket handshake from %s: %s", self.peername, exc)
            self.transport.write(self.conn.send(RejectConnection(status_code=400))
                                 if self.conn.state is ConnectionState.CONNECTING else b"")
            self.transport.close()
            return
        self.scope["subprotocols"] = request.subprotocols
        self.scope["extensions"] = {}
        self.extensions = request.extensions
        self.inbox.append({"type": "websocket.connect"})
        self.handler.spawn(self.run())

    def connection_lost(self, exc: Exception | None) -> None:
        self.host.connection_lost(self)
        self._disconnected(1006 if not self.close_sent else 1000)
        self.resume_writing()

    def data_received(self, data: bytes) -> None:
        try:
            self.conn.receive_data(data)
        except RemoteProtocolError as exc:
            self._fail(exc.event_hint, 1002)
            return
        self._handle_events()

    def eof_received(self) -> bool:
        try:
            self.conn.receive_data(None)
        except RemoteProtocolError:
            pass
        self._disconnected(1006)
        return False

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        writable = self.writable
        if writable is not None and not writable.done():
            writable.set_result(None)

    def on_timeout(self) -> None:
        """The peer never answered our close frame."""
        self.deadline = NEVER
        self.transport.close()

    def shutdown(self) -> None:
        """Graceful stop: 1001 Going Away (RFC 6455 7.4.1) to an open connection."""
        self.shutting_down = True
        if self.accepted and not self.close_sent:
            self._send_close(1001, "server shutting down")
            self._disconnected(1001)

    # -- incoming ---------------------------------------------------------------------------

    def _handle_events(self) -> None:
        for event in self.conn.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                self.fragment_size += len(event.data)
                if self.fragment_size > self.max_size:
                    self._send_close(1009, "message too big")
                    self._disconnected(1009)
                    return
                self.fragments.append(event.data)
                if event.message_finished:
                    data = self.fragments[0] if len(self.fragments) == 1 else \
                        ("" if isinstance(event, TextMessage) else b"").join(self.fragments)
                    self.fragments, self.fragment_size = [], 0
                    key = "text" if isinstance(event, TextMessage) else "bytes"
                    self._queue({"type": "websocket.receive", key: data})
            elif isinstance(event, Ping):
                # After our close frame no more frames of ours may go out (wsproto refuses):
                # a ping then is read and left unanswered (RFC 6455 5.5.2 allows the peer to
                # send it, not us to answer).
                if self.conn.state is ConnectionState.OPEN:
                    self._write(self.conn.send(event.response()))
            elif isinstance(event, CloseConnection):
                if self.conn.state is ConnectionState.REMOTE_CLOSING:
                    self._write(self.conn.send(event.response()))
                    self.close_sent = True
                self._disconnected(event.code, event.reason)
                self.transport.close()  # the server closes TCP first (RFC 6455 7.1.1)
                return
            elif isinstance(event, RejectData):
                pass

    def _queue(self, message: dict) -> None:
        self.inbox.append(message)
        self._wake()
        if len(self.inbox) >= INBOX_HIGH and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def _disconnected(self, code: int, reason: str | None = "") -> None:
        if not self.closed:
            self.closed = True
            self.inbox.append({"type": "websocket.disconnect", "code": code,
                               "reason": reason or ""})
            self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, hint: object, code: int) -> None:
        self.handler.log.debug("WebSocket protocol error from %s", self.peername)
        if self.handshake_done:
            self._send_close(code, "protocol error")
        self._disconnected(code)
        self.transport.close()

    # -- the app ----------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self.handler.app(self.scope, self.receive, self.send)
        except Exception as exc:
            if not (isinstance(exc, ClientDisconnected) and self.closed):
                self.handler.log.error("Exception in ASGI application (WebSocket %s)",
                                       self.req.url.decode("latin-1", "replace"), exc_info=exc)
            if not self.handshake_done:
                self._reject(500)
            elif self.accepted and not self.close_sent:
                self._send_close(1011, "internal error")
        else:
            if not self.handshake_done:
                self.handler.log.error("ASGI app returned without accepting or closing the "
                                       "WebSocket %s", self.req.url.decode("latin-1", "replace"))
                self._reject(500)
            elif self.accepted and not self.close_sent:
                self._send_close(1000, "")

    async def receive(self) -> dict:
        while not self.inbox:
            if self.closed:  # everything was handed out, the disconnect included
                return {"type": "websocket.disconnect", "code": 1006, "reason": ""}
            self.waiter = self.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        message = self.inbox.popleft()
        if self.read_paused and len(self.inbox) < INBOX_HIGH // 2:
            self.read_paused = False
            self.transport.resume_reading()
        return message

    async def send(self, message: dict) -> None:
        kind = message["type"]
        if not self.handshake_done:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                self._reject(403)
            else:
                raise RuntimeError(f"unexpected ASGI message {kind!r} before the WebSocket "
                                   "was accepted: send 'websocket.accept' or 'websocket.close'")
            return
        if self.close_sent or self.closed or self.transport.is_closing():
            if kind == "websocket.close":
                return
            raise ClientDisconnected("the WebSocket is closed")
        if kind == "websocket.send":
            text, data = message.get("text"), message.get("bytes")
            if text is not None:
                self._write(self.conn.send(TextMessage(data=text)))
            elif data is not None:
                self._write(self.conn.send(BytesMessage(data=data)))
            else:
                raise RuntimeError("websocket.send needs 'text' or 'bytes'")
            if self.write_paused:
                await self._until_writable()
        elif kind == "websocket.close":
            self._send_close(message.get("code") or 1000, message.get("reason") or "")
        else:
            raise RuntimeError(f"unexpected ASGI message type {kind!r} on an open WebSocket")

    def _accept(self, message: dict) -> None:
        subprotocol = message.get("subprotocol")
        offered = self.scope.get("subprotocols") or []
        if subprotocol is not None and subprotocol not in offered:
            # RFC 6455 4.2.2: one of the client's; raised in the app, which gets a 500 for it
            raise RuntimeError(f"websocket.accept: subprotocol {subprotocol!r} was not offered "
                               f"by the client (offered: {offered})")
        headers = [(bytes(n), bytes(v)) for n, v in message.get("headers") or ()]
        self._write(self.conn.send(AcceptConnection(
            subprotocol=subprotocol, extra_headers=headers, extensions=[PerMessageDeflate()])))
        self.handshake_done = self.accepted = True
        self.handler.log.debug("WebSocket %s accepted", self.req.url.decode("latin-1"))
        self._log_access(101)
        if self.shutting_down:
            self._send_close(1001, "server shutting down")
            self._disconnected(1001)
            return
        rest, self.rest = self.rest, b""
        if rest:
            self.data_received(rest)
        self.transport.resume_reading()

    def _reject(self, status: int) -> None:
        """Close before accept: an HTTP answer instead of the switch (ASGI: 403)."""
        self.handshake_done = True
        self._disconnected(1006)
        if self.transport.is_closing():
            return
        try:
            self._write(self.conn.send(RejectConnection(
                status_code=status, headers=[(b"content-length", b"0"), (b"connection", b"close")])))
        except LocalProtocolError:
            pass
        self._log_access(status)
        self.transport.close()

    def _send_close(self, code: int, reason: str) -> None:
        if self.close_sent or self.transport.is_closing():
            return
        self.close_sent = True
        try:
            self._write(self.conn.send(CloseConnection(code=code, reason=reason)))
        except LocalProtocolError:
            self.transport.close()
            return
        self.deadline = self.loop.time() + CLOSE_TIMEOUT

    def _write(self, data: bytes) -> None:
        if data and not self.transport.is_closing():
            self.transport.write(data)

    async def _until_writable(self) -> None:
        while self.write_paused and not self.transport.is_closing():
            self.writable = self.loop.create_future()
            try:
                await self.writable
            finally:
                self.writable = None
        if self.transport.is_closing():
            raise ClientDisconnected("the WebSocket is closed")

    def _log_access(self, status: int) -> None:
        log = self.handler.log
        if log.access_enabled:
            try:
                from unicorn_aio.http.response import status_line
                log.access(self.handler.access_environ(self.peername, self.req),
                           status_line(status), [], 0, 0.0)
            except Exception:
                log.exception("Error writing the access log")
