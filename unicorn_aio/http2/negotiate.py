"""Which protocol a connection speaks: ALPN over TLS, h2c by prior knowledge or by Upgrade.

gunicorn 27's rules (its http2/negotiation.py), settings for settings:

* ``--http-protocols h1,h2``: what is offered, in order of preference; over TLS, by ALPN.
* ``--http2-cleartext``: h2c without TLS, ``prior-knowledge`` (the connection opens with the
  HTTP/2 preface), ``upgrade`` (an HTTP/1.1 request with ``Upgrade: h2c``) or ``both``; only
  for peers in ``--forwarded-allow-ips`` (the proxy in front), everyone else is served
  HTTP/1.x as if it were off.  On a prior-knowledge-only port a trusted peer that opens with
  anything but the preface gets 400.  Ignored with TLS.

Connections start as HTTP/1.1 (``H1OrH2``, an ``HttpProtocol`` that looks first) and are
handed to an ``H2Protocol`` when HTTP/2 is chosen; a server without h2 uses HttpProtocol as it
is and pays nothing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Final

from unicorn_aio.errors import ConfigError
from unicorn_aio.http.contract import AppHandler, ConnectionHost
from unicorn_aio.http.forwarded import AddressList
from unicorn_aio.http.options import HttpOptions
from unicorn_aio.http.protocol import HttpProtocol
from unicorn_aio.http.request import Request
from unicorn_aio.http.response import error_response
from unicorn_aio.http2.engine import H2Settings
from unicorn_aio.http2.engines import ENGINES, engine_available
from unicorn_aio.http2.protocol import H2Protocol

if TYPE_CHECKING:
    from unicorn_aio.config.config import Config
    from unicorn_aio.http.contract import Connection

H2C_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113 3.4
UPGRADE_101 = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
# gunicorn's H2C_UPGRADE_BODY_LIMIT: an upgrade request's body is held whole; larger ones are
# answered in HTTP/1.1 (the Upgrade ignored, as RFC 9110 7.8 allows).
UPGRADE_BODY_LIMIT: Final = 65536
ALPN_NAMES: Final = {"h1": "http/1.1", "h2": "h2"}
# Request fields about the upgrade itself, not the request stream 1 carries on.
_UPGRADE_FIELDS: Final = frozenset((b"connection", b"upgrade", b"http2-settings", b"keep-alive",
                             b"te", b"transfer-encoding", b"proxy-connection"))


def h2_settings(cfg: Config) -> H2Settings:
    return H2Settings(
        max_concurrent_streams=cfg.http2_max_concurrent_streams,
        initial_window_size=cfg.http2_initial_window_size,
        max_frame_size=cfg.http2_max_frame_size,
        max_header_list_size=cfg.http2_max_header_list_size,
        max_streams_per_connection=cfg.http2_max_streams_per_connection)


def alpn_protocols(cfg: Config) -> list[str]:
    """What TLS offers by ALPN, in --http-protocols' order."""
    return [ALPN_NAMES[p] for p in cfg.http_protocols if p in ALPN_NAMES]


def cleartext_mode(cfg: Config) -> str:
    """--http2-cleartext as it applies: "off" without h2 in --http-protocols, or with TLS."""
    if "h2" not in cfg.http_protocols or cfg.is_ssl:
        return "off"
    return str(cfg.http2_cleartext)


class Negotiation:
    """What one server decided once: the settings, the modes, who may use h2c."""

    def __init__(self, cfg: Config, host: ConnectionHost, handler: AppHandler,
                 options: HttpOptions) -> None:
        self.host, self.handler, self.options = host, handler, options
        self.settings = h2_settings(cfg)
        self.alpn = bool(cfg.is_ssl) and "h2" in cfg.http_protocols
        mode = cleartext_mode(cfg)
        self.prior_knowledge = mode in ("prior-knowledge", "both")
        self.mismatch_is_error = mode == "prior-knowledge"
        self.upgrade = mode in ("upgrade", "both")
        self.trusted = AddressList(cfg.forwarded_allow_ips)

    def trusts(self, peer: Any) -> bool:
        """gunicorn's peer_trusted_for_h2c: a unix socket's peer is trusted."""
        return not isinstance(peer, tuple) or peer[0] in self.trusted

    def h2(self, upgrade: tuple[bytes, Request] | None = None) -> H2Protocol:
        return H2Protocol(self.host, self.handler, self.options, self.settings, upgrade)


def connection_factory(cfg: Config, host: ConnectionHost, handler: AppHandler,
                       options: HttpOptions) -> Callable[[], HttpProtocol]:
    """The protocol factory of a server's listeners."""
    nego = Negotiation(cfg, host, handler, options)
    if not (nego.alpn or nego.prior_knowledge or nego.upgrade):
        return partial(HttpProtocol, host, handler, options)
    if not any(engine_available(name) is None for name in ENGINES):
        raise ConfigError("--http-protocols offers h2, but no HTTP/2 engine loads: "
                          "pip install 'unicorn_aio[http2]'")
    h1_handler: AppHandler = H2cUpgrade(handler, nego) if nego.upgrade else handler
    return partial(H1OrH2, nego, host, h1_handler, options)


def switch(conn: HttpProtocol, h2: H2Protocol, data: bytes = b"") -> None:
    """Hand ``conn``'s transport to ``h2`` (which registers with the host before ``conn``
    leaves it, as detach does), then give it what was read already."""
    transport = conn.transport
    conn.parser = None
    transport.set_protocol(h2)
    h2.connection_made(transport)
    h2.peername = conn.peername  # a PROXY header's client, if one came
    conn.host.connection_lost(conn)
    transport.resume_reading()
    if data:
        h2.data_received(data)


class H1OrH2(HttpProtocol):
    """An HTTP/1.1 connection that may turn out to be HTTP/2: chosen by ALPN, or by the
    first bytes of a trusted peer (prior knowledge)."""

    __slots__ = ("nego", "sniffed")

    def __init__(self, nego: Negotiation, host: ConnectionHost, handler: AppHandler,
                 options: HttpOptions) -> None:
        super().__init__(host, handler, options)
        self.nego = nego
        self.sniffed: bytes | None = None  # bytes read while looking for the preface

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        nego = self.nego
        if nego.alpn:
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
                switch(self, nego.h2())
        elif nego.prior_knowledge and nego.trusts(self.peername):
            self.sniffed = b""

    def data_received(self, data: bytes) -> None:
        sniffed = self.sniffed
        if sniffed is None:
            super().data_received(data)
            return
        if self.proxy_header is not None:  # --proxy-protocol: its header comes first
            data = self.proxy_header.feed(self, data)
            if not data:
                return
        sniffed += data
        if len(sniffed) < len(H2C_PREFACE) and H2C_PREFACE.startswith(sniffed):
            self.sniffed = sniffed  # the preface may still come: --header-timeout bounds it
            return
        self.sniffed = None
        if sniffed.startswith(H2C_PREFACE):
            switch(self, self.nego.h2(), sniffed)
        elif self.nego.mismatch_is_error:
            # A trusted peer on a prior-knowledge port is expected to speak HTTP/2: a silent
            # downgrade would hide a misconfigured proxy (gunicorn answers 400 too).
            self.host.log.debug("h2c: %s did not open with the HTTP/2 preface", self.peername)
            self.transport.write(error_response(400, "expected the HTTP/2 connection preface"))
            self.transport.close()
        else:
            super().data_received(sniffed)


def upgrade_payload(req: Request) -> bytes | None:
    """The HTTP2-Settings (decoded: a SETTINGS payload) of a request that asks for h2c as RFC 7540 3.2 says (the Upgrade
    names h2c, one HTTP2-Settings field, both named in Connection, HTTP/1.1, a small body),
    else None: the request is served in HTTP/1.1."""
    upgrade = connection = b""
    settings = []
    for name, value in req.headers:
        lname = name.lower()
        if lname == b"upgrade":
            upgrade = value.strip().lower()
        elif lname == b"http2-settings":
            settings.append(value.strip())
        elif lname == b"connection":
            connection += b"," + value.lower()
    tokens = {token.strip() for token in connection.split(b",")}
    if upgrade != b"h2c" or len(settings) != 1 or req.version != "1.1" \
            or not {b"upgrade", b"http2-settings"} <= tokens \
            or (req.framing.content_length or 0) > UPGRADE_BODY_LIMIT or req.framing.chunked:
        return None
    payload = settings[0]
    try:
        raw = base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) % 6:
        return None
    for i in range(0, len(raw), 6):
        code, number = int.from_bytes(raw[i:i + 2], "big"), int.from_bytes(raw[i + 2:i + 6], "big")
        if code == 2 and number > 1 or code == 4 and number > 2 ** 31 - 1 \
                or code == 5 and not 16384 <= number <= 16777215:
            return None  # RFC 9113 6.5.2: settings we could not apply: no 101 goes out
    return raw


class H2cUpgrade:
    """The ``AppHandler`` of an HTTP/1.1 connection where h2c Upgrade is on: a trusted peer's
    upgrade request becomes stream 1 of an HTTP/2 connection; the rest goes to the app's
    handler."""

    def __init__(self, inner: AppHandler, nego: Negotiation) -> None:
        self.inner = inner
        self.nego = nego
        self.eof_is_disconnect = inner.eof_is_disconnect

    async def startup(self) -> None:
        await self.inner.startup()

    async def shutdown(self) -> None:
        await self.inner.shutdown()

    def loop_callback(self, fn: Callable[[], None]) -> Callable[[], None]:
        return self.inner.loop_callback(fn)

    def start(self, conn: Connection, req: Request) -> None:
        payload = None
        if req.body.complete and self.nego.trusts(conn.peername):
            payload = upgrade_payload(req)
        if payload is None:
            self.inner.start(conn, req)
        else:
            # After this call llhttp puts the bytes that followed the head on req.upgrade
            # (as for a WebSocket: asgi/handler.py): switch once it has.
            conn.host.loop.call_soon(self._switch, conn, req, payload)

    def _switch(self, conn: Connection, req: Request, payload: bytes) -> None:
        if not conn.answering(req) or not isinstance(conn, HttpProtocol):
            return
        rest, req.upgrade = req.upgrade or b"", None
        req.headers = [(n, v) for n, v in req.headers if n.lower() not in _UPGRADE_FIELDS]
        conn.write(UPGRADE_101)  # after the responses it holds; detach flushes
        h2 = self.nego.h2((payload, req))
        # detach registers h2, then lets HTTP/1.1 go: its request counts there, once.
        conn.detach(req, h2)
        conn.transport.resume_reading()
        if rest:
            h2.data_received(rest)
