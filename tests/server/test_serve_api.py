"""Embedding: ``serve()`` and ``Server`` on the caller's loop, default asyncio and uvloop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import aiohttp
import pytest
from apps import make_app
from procs import ROOT, SUPPORT, stop_session, wait_for
from rawhttp import open_raw, read_responses

import unicorn_aio

pytestmark = pytest.mark.both_loops


async def test_serve_returns_when_cancelled_and_closes_the_port():
    port = _free_port()
    task = asyncio.create_task(unicorn_aio.serve(make_app(), bind=f"127.0.0.1:{port}",
                                                 graceful_timeout=1))
    async with aiohttp.ClientSession() as session:
        for _ in range(50):  # serve() gives no handle: wait for the port to answer
            try:
                async with session.get(f"http://127.0.0.1:{port}/x") as resp:
                    assert await resp.read() == b"hello GET /x"
                break
            except aiohttp.ClientConnectorError:
                await asyncio.sleep(0.05)
        else:
            pytest.fail("serve() never listened")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    with pytest.raises(OSError):
        await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)


async def test_port_zero_exposes_the_bound_address():
    server = unicorn_aio.Server(make_app(), bind="127.0.0.1:0")
    task = asyncio.create_task(server.serve())
    try:
        await asyncio.wait_for(server.ready.wait(), 5)
        [address] = server.addresses
        host, port = address.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://{address}/") as resp:
                assert resp.status == 200
    finally:
        await asyncio.wait_for(server.shutdown(timeout=2), 5)
        await asyncio.wait_for(task, 5)
    assert task.done() and task.exception() is None


async def test_shutdown_lets_an_in_flight_request_finish():
    app = make_app()
    server = unicorn_aio.Server(app, bind="127.0.0.1:0", graceful_timeout=5, keepalive=1,
                                header_timeout=1)
    task = asyncio.create_task(server.serve())
    await asyncio.wait_for(server.ready.wait(), 5)
    port = int(server.addresses[0].rsplit(":", 1)[1])
    reader, writer = await open_raw(port)
    idle_reader, idle_writer = await open_raw(port)
    try:
        writer.write(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.1)  # the app is sleeping in /slow
        t0 = time.monotonic()
        stopping = asyncio.create_task(server.shutdown())
        [resp] = await read_responses(reader, 1)
        assert resp.status == 200 and resp.body == b"/slow"
        assert resp.headers["connection"] == "close"  # no keep-alive past a shutdown
        assert await asyncio.wait_for(reader.read(), 2) == b""
        # An idle connection may have a request on the wire: it is left to its deadline.
        assert await asyncio.wait_for(idle_reader.read(), 4) == b""
        await asyncio.wait_for(stopping, 5)
        assert time.monotonic() - t0 < 4  # returned when the last connection ended, not at 5 s
        await asyncio.wait_for(task, 5)
        with pytest.raises(OSError):
            await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
    finally:
        writer.close()
        idle_writer.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_root_path_mounts_both_interfaces(monkeypatch):
    """Server(root_path=...) needs no command line and no environment variable."""
    monkeypatch.delenv("SCRIPT_NAME", raising=False)

    async def asgi_app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = f"{scope['root_path']} {scope['path']}".encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    def wsgi_app(environ, start_response):
        start_response("200 OK", [])
        return [f"{environ['SCRIPT_NAME']} {environ['PATH_INFO']}".encode()]

    for app in (asgi_app, wsgi_app):
        server = unicorn_aio.Server(app, bind="127.0.0.1:0", root_path="/api/")
        task = asyncio.create_task(server.serve())
        try:
            await server.ready.wait()
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://{server.addresses[0]}/api/items") as resp:
                    text = await resp.text()
            assert text == ("/api /api/items" if app is asgi_app else "/api /items")
        finally:
            await server.shutdown()
            await task


async def test_an_app_of_the_other_interface_is_refused_at_start():
    def wsgi_app(environ, start_response):
        start_response("200 OK", [])
        return [b""]

    server = unicorn_aio.Server(wsgi_app, bind="127.0.0.1:0", interface="asgi")
    with pytest.raises(ValueError, match=r"it is a WSGI app .*but the interface is ASGI"):
        await server.start()
    assert not server.sockets  # refused before anything was bound
    await server.shutdown(0)


@pytest.mark.parametrize("app", [None, "mod:app", 42])
async def test_something_not_an_app_is_refused_at_start(app):
    server = unicorn_aio.Server(app, bind="127.0.0.1:0")
    with pytest.raises(TypeError, match="an app is a callable"):
        await server.start()
    assert server.sockets is None  # refused before binding anything


async def _get_once(server, path: bytes) -> bytes:
    port = int(server.addresses[0].rsplit(":", 1)[1])
    reader, writer = await open_raw(port)
    writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    [resp] = await read_responses(reader, 1)
    writer.close()
    return resp.body


async def test_start_then_serve_and_serve_again_after_shutdown():
    server = unicorn_aio.Server(make_app(), bind="127.0.0.1:0", graceful_timeout=1)
    await server.start()  # raises here, in the caller, when it cannot start
    serving = asyncio.create_task(server.serve())  # serves on, without a second bind
    assert await _get_once(server, b"/one") == b"hello GET /one"
    await server.shutdown()
    await asyncio.wait_for(serving, 5)
    # The same object serves again, on a fresh socket of its own.
    serving = asyncio.create_task(server.serve())
    await asyncio.wait_for(server.ready.wait(), 5)
    assert await _get_once(server, b"/two") == b"hello GET /two"
    await server.shutdown()
    await asyncio.wait_for(serving, 5)


async def test_an_idle_keep_alive_connection_does_not_hold_the_stop():
    # nginx keeps idle upstream connections open: a stop must not wait --keep-alive (or the
    # whole graceful timeout) for them, only the moment a request on the wire needs.
    server = unicorn_aio.Server(make_app(), bind="127.0.0.1:0", keepalive=75,
                                graceful_timeout=30)
    serving = asyncio.create_task(server.serve())
    await asyncio.wait_for(server.ready.wait(), 5)
    port = int(server.addresses[0].rsplit(":", 1)[1])
    reader, writer = await open_raw(port)
    writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    await read_responses(reader, 1)  # now idle, kept alive
    started = time.monotonic()
    await asyncio.wait_for(server.shutdown(), 10)
    assert time.monotonic() - started < 3
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed cleanly, no reset
    writer.close()
    await serving


def _sleepy_wsgi(environ, start_response):
    time.sleep(float(environ["QUERY_STRING"] or 0))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"slept"]


async def _sleepy_asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    await asyncio.sleep(float(scope["query_string"] or 0))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"slept"})


@pytest.mark.parametrize("app", [_sleepy_wsgi, _sleepy_asgi], ids=["wsgi", "asgi"])
async def test_cancelling_serve_is_a_graceful_shutdown_even_cancelled_again(app):
    """As asyncio.run cancels its main task on Ctrl-C; a supervisor (or an anyio cancel scope)
    may cancel again meanwhile.  serve() raises CancelledError only once the request in
    flight got its response: past it, an asyncio.run would close the loop under it."""
    port = _free_port()
    task = asyncio.create_task(unicorn_aio.serve(app, bind=f"127.0.0.1:{port}",
                                                 graceful_timeout=10))
    for _ in range(100):  # serve() gives no handle: wait for the port to answer
        try:
            reader, writer = await open_raw(port)
            break
        except OSError:
            await asyncio.sleep(0.05)
    else:
        pytest.fail("serve() never listened")
    try:
        writer.write(b"GET /?2 HTTP/1.1\r\nHost: t\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.3)  # the app is sleeping
        task.cancel()
        await asyncio.sleep(0.2)
        task.cancel()  # again, while the graceful shutdown runs
        await asyncio.sleep(0.2)
        assert not task.done(), "serve() returned with a request in flight"
        [resp] = await read_responses(reader, 1, timeout=5)
        assert resp.status == 200 and resp.body == b"slept"
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
    finally:
        writer.close()
        if not task.done():
            task.cancel()


@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_ctrl_c_under_asyncio_run_lets_the_request_in_flight_finish(loop_kind, interface):
    """asyncio.run(main()) cancels main on the first SIGINT: the 2 s request still gets its 200,
    then the program ends with KeyboardInterrupt, as asyncio.run does."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, os.path.join(SUPPORT, "embedded_serve.py"),
                             str(port), loop_kind, interface],
                            env=dict(os.environ, PYTHONPATH=f"{SUPPORT}{os.pathsep}{ROOT}"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        sock = wait_for(lambda: _connect(port), 15, what="the embedded server to listen")
        with sock:
            sock.sendall(b"GET /?2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            time.sleep(0.5)  # the app is sleeping
            proc.send_signal(signal.SIGINT)
            sock.settimeout(10)
            response = b""
            while chunk := sock.recv(65536):
                response += chunk
        assert response.startswith(b"HTTP/1.1 200 OK\r\n") and response.endswith(b"slept")
        assert proc.wait(10) != 0
        assert b"KeyboardInterrupt" in proc.stderr.read()
    finally:
        stop_session(proc)


def _connect(port: int) -> socket.socket | None:
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=1)
    except OSError:
        return None
