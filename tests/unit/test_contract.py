"""The seam between the HTTP protocol and the app handlers (http/contract.py).

The real classes have every member their protocol names; a connection serves with nothing but
what the contract gives it (a host with only ``ConnectionHost``'s members, a real handler, the
options), over a real 127.0.0.1 socket; and "no timeout" has one encoding past Config.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from functools import partial

import pytest
from rawhttp import open_raw, read_responses

from unicorn_aio.asgi.handler import ASGIHandler
from unicorn_aio.config.config import Config
from unicorn_aio.http.contract import (
    NEVER,
    AppHandler,
    Connection,
    ConnectionHost,
    RequestCycle,
    TrackedConnection,
    or_never,
    thread_timeout,
)
from unicorn_aio.http.options import HttpOptions
from unicorn_aio.http.protocol import HttpProtocol
from unicorn_aio.http.response import ServerHeaders
from unicorn_aio.http.services import HostServices
from unicorn_aio.log import logger_for
from unicorn_aio.wsgi.handler import WSGIHandler
from unicorn_aio.wsgi.threadpool import ThreadPool

# -- time: one encoding past Config ----------------------------------------------------------


def test_config_zero_is_never_in_the_options():
    options = HttpOptions.from_config(Config(header_timeout=0, body_timeout=0))
    assert options.header_timeout == options.body_timeout == NEVER
    options = HttpOptions.from_config(Config(header_timeout=3, body_timeout=7.5))
    assert (options.header_timeout, options.body_timeout) == (3, 7.5)


def test_never_is_a_deadline_that_never_comes_and_no_timeout_to_a_thread():
    assert 1e12 + or_never(0) > 1e300 and or_never(None) == NEVER and or_never(2) == 2
    assert thread_timeout(NEVER) is None  # threading and poll() overflow on infinity
    assert thread_timeout(2.5) == 2.5


def test_options_are_read_only():
    options = HttpOptions.from_config(Config())
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.body_timeout = 1  # type: ignore[misc]


# -- the real classes have what the protocols name ---------------------------------------------

def _blocking_wsgi(entered: threading.Event, release: threading.Event):
    def app(environ, start_response):
        entered.set()
        release.wait(5)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    return app


async def test_wsgi_side_conforms(start_server):
    entered, release = threading.Event(), threading.Event()
    server = await start_server(_blocking_wsgi(entered, release))
    assert isinstance(server, ConnectionHost)
    assert isinstance(server.handler, WSGIHandler) and isinstance(server.handler, AppHandler)
    reader, writer = await open_raw(server.port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert await asyncio.to_thread(entered.wait, 5)
        [conn] = server.connections
        assert isinstance(conn, TrackedConnection) and isinstance(conn, Connection)
        assert isinstance(conn.requests[0].cycle, RequestCycle)
        release.set()
        [resp] = await read_responses(reader, 1)
        assert resp.body == b"ok"
    finally:
        release.set()
        writer.close()


async def test_asgi_side_conforms(start_server):
    entered, release = asyncio.Event(), asyncio.Event()

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        entered.set()
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    server = await start_server(app, lifespan="off")
    assert isinstance(server.handler, ASGIHandler) and isinstance(server.handler, AppHandler)
    reader, writer = await open_raw(server.port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        await asyncio.wait_for(entered.wait(), 5)
        [conn] = server.connections
        assert isinstance(conn, Connection)
        assert isinstance(conn.requests[0].cycle, RequestCycle)
        release.set()
        [resp] = await read_responses(reader, 1)
        assert resp.body == b"ok"
    finally:
        release.set()
        writer.close()


# -- a connection on the contract alone ------------------------------------------------------

class Host:
    """A ``ConnectionHost`` with nothing else: a connection that reached past the contract for
    anything of the server's would fail on it (slots, no instance dict)."""

    __slots__ = ("loop", "log", "shutting_down", "connections", "services")

    def __init__(self, loop, log) -> None:
        self.loop, self.log = loop, log
        self.shutting_down = False
        self.connections: set = set()
        self.services = HostServices(log)
        self.services.loop = loop

    def connection_made(self, conn) -> None:
        self.connections.add(conn)

    def connection_lost(self, conn) -> None:
        self.connections.discard(conn)

    def request_refused(self, status, seconds, peer, line) -> None:
        pass


def wsgi_echo(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


async def asgi_echo(scope, receive, send):
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def make_handler(kind, loop, cfg, log, options):
    headers = ServerHeaders("unicorn_aio/test")
    headers.refresh()
    if kind == "wsgi":
        return WSGIHandler(wsgi_echo, cfg, log=log, pool=ThreadPool(loop, cfg.threads),
                           headers=headers, is_ssl=False, body_timeout=options.body_timeout)
    return ASGIHandler(asgi_echo, cfg, log=log, loop=loop, headers=headers, is_ssl=False,
                       body_timeout=options.body_timeout)


@pytest.mark.parametrize("kind", ["wsgi", "asgi"])
async def test_a_connection_serves_on_the_contract_alone(kind):
    # A body past --inline-body-max streams, and Expect: 100-continue waits for the app's first
    # read: both call back into the connection through the handler's loop_callback (from an
    # app thread for WSGI, on the loop for ASGI).
    loop = asyncio.get_running_loop()
    cfg = Config(inline_body_max=1024, lifespan="off")
    log = logger_for(cfg)
    options = HttpOptions.from_config(cfg)
    host = Host(loop, log)
    handler = make_handler(kind, loop, cfg, log, options)
    await handler.startup()
    listener = await loop.create_server(partial(HttpProtocol, host, handler, options),
                                        "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    big = bytes(range(256)) * 1024  # 256 KiB: streams, and fills the body buffer once
    reader, writer = await open_raw(port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
                     b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
        first = await read_responses(reader, 2)
        assert [r.body for r in first] == [b"", b"abc"]
        writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(big))
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == \
            b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(big)
        [resp] = await read_responses(reader, 1)
        assert resp.status == 200 and resp.body == big
        assert host.services.requests_total == 3 and len(host.connections) == 1
    finally:
        writer.close()
        listener.close()
        await listener.wait_closed()
        await handler.shutdown()
        if kind == "wsgi":
            handler.pool.shutdown(wait=False)
