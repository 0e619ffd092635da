"""Connection shedding (http/shedding.py): a worker at --worker-connections makes room for a new
client instead of leaving it in the backlog - idle keep-alive connections first, oldest first,
then senders below --body-min-rate, slowest first; never a connection whose request is in the app.

Checked by state, not by timing: which connection gets closed, and that the newcomer is served.
Before shedding, every newcomer here waited in the kernel's backlog and its request timed out.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest
from rawhttp import is_closed, open_raw, read_all, read_responses

from unicorn_aio.http.protocol import HttpProtocol
from unicorn_aio.http.shedding import EVICT_GRACE, RANK_TTL

pytestmark = pytest.mark.both_loops

GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
GET_CLOSE = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


class Gate:
    """An app whose /wait requests stay in the app until the test opens the gate."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.waiting = 0
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ["PATH_INFO"] == "/wait":
            with self.lock:
                self.waiting += 1
            self.opened.wait(20)
        return hello(environ, start_response)


async def until(condition, timeout: float = 5) -> None:
    """Wait for server state the test just caused (bytes read, a connection gone)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "the server never got there"
        await asyncio.sleep(0.01)


async def request(reader, writer, data: bytes = GET):
    writer.write(data)
    [resp] = await read_responses(reader, 1)
    assert resp.status == 200, resp
    return resp


async def keep_alive_client(port: int):
    """A connection that made one request and idles, kept alive."""
    reader, writer = await open_raw(port)
    await request(reader, writer)
    return reader, writer


def received(server) -> list[int]:
    """Bytes each connection has sent of the request it is sending (what the rate is made of)."""
    out = []
    for conn in server.connections:
        req = conn.requests[0] if conn.requests else conn.current
        if isinstance(conn, HttpProtocol) and req is not None:
            out.append(conn.head_bytes + req.body.buffered)
    return sorted(out)


async def test_full_worker_sheds_its_oldest_idle_connection(start_server):
    server = await start_server(hello, worker_connections=4, keepalive=60)
    idle = []
    for _ in range(4):  # oldest first
        idle.append(await keep_alive_client(server.port))
        await asyncio.sleep(0.01)  # uvloop's clock ticks in milliseconds: distinct idle times
    assert len(server.connections) == 4

    newcomer = await open_raw(server.port)
    await request(*newcomer)  # served, not left in the backlog

    assert await is_closed(idle[0][0]), "the oldest idle connection should have been shed"
    for reader, writer in idle[1:]:
        assert not await is_closed(reader, timeout=0.1)
        await request(reader, writer)  # still kept alive and serving
    assert server.shed_total == 1
    for _, writer in idle[1:] + [newcomer]:
        writer.close()


async def test_full_worker_sheds_the_slowest_sender_first(start_server):
    # Every sender here is below the minimum rate: the order among them is under test.
    gate = Gate()
    server = await start_server(gate, worker_connections=3, threads=2,
                                body_min_rate=10_000_000)
    try:
        slowest = await open_raw(server.port)
        slowest[1].write(b"GET / HTTP/1.1\r\n")  # 16 bytes of a head
        fast = await open_raw(server.port)
        fast[1].write(b"GET / HTTP/1.1\r\nX-Pad: " + b"p" * 2000)  # 2023 bytes of a head
        middle = await open_raw(server.port)
        # a head and 500 bytes of a body the app has not started on (it waits for 64 KB or all)
        middle[1].write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n"
                        + b"b" * 500)
        await until(lambda: received(server) == [16, 500, 2023])

        # The newcomer's request stays in the app: it holds its slot, and is never shed.
        first = await open_raw(server.port)
        first[1].write(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n")
        [resp] = await read_responses(slowest[0], 1)
        assert resp.status == 503  # told why, mid-request
        assert await is_closed(slowest[0])
        await until(lambda: gate.waiting == 1 and len(server.connections) == 3)
        # middle was too new to rank at the first ranking, which newcomers reuse for RANK_TTL.
        await asyncio.sleep(RANK_TTL)

        second = await open_raw(server.port)
        await request(*second, GET_CLOSE)
        [resp] = await read_responses(middle[0], 1)
        assert resp.status == 503
        assert not await is_closed(fast[0], timeout=0.1)

        fast[1].write(b"\r\nHost: t\r\n\r\n")  # the fast sender completes its request: answered
        await request(*fast, b"")
        gate.opened.set()
        await request(*first, b"")
        assert server.shed_total == 2
        for _, writer in (slowest, fast, middle, first, second):
            writer.close()
    finally:
        gate.opened.set()


async def test_a_request_in_the_app_is_never_shed(start_server):
    gate = Gate()
    server = await start_server(gate, worker_connections=3, threads=4, keepalive=60)
    try:
        in_app = []
        for _ in range(2):  # the oldest connections, their requests in the app
            reader, writer = await open_raw(server.port)
            writer.write(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n")
            in_app.append((reader, writer))
        await until(lambda: gate.waiting == 2)
        idle = await keep_alive_client(server.port)

        newcomer = await open_raw(server.port)
        await request(*newcomer, GET_CLOSE)
        assert await is_closed(idle[0]), "the idle connection should have been shed"
        for reader, _ in in_app:
            assert not await is_closed(reader, timeout=0.1)
        await until(lambda: len(server.connections) == 2)

        # Nothing to shed: the third request in the app fills the worker, the next client waits.
        third = await open_raw(server.port)
        third[1].write(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n")
        await until(lambda: gate.waiting == 3)
        waiting = await open_raw(server.port)  # the kernel's backlog takes it
        waiting[1].write(GET)
        with pytest.raises(asyncio.TimeoutError):
            await read_responses(waiting[0], 1, timeout=0.5)

        gate.opened.set()
        for reader, writer in in_app + [third]:
            [resp] = await read_responses(reader, 1)
            assert resp.status == 200  # answered in full, never shed
        # Idle now, they can be shed: the waiting client is let in (within a sweep) and served.
        [resp] = await read_responses(waiting[0], 1)
        assert resp.status == 200
        assert server.shed_total == 2
        for _, writer in in_app + [third, waiting, newcomer, idle]:
            writer.close()
    finally:
        gate.opened.set()


async def test_a_silent_connection_is_shed_once_past_its_grace(start_server):
    # A slowloris that connects and sends nothing is a sender at 0 bytes/s - once it has had
    # the time a real client's request takes to arrive (shedding.EVICT_GRACE); until then the
    # worker is full and the newcomer waits, as before shedding.
    loop = asyncio.get_running_loop()
    server = await start_server(hello, worker_connections=1)
    silent = await open_raw(server.port)
    await until(lambda: len(server.connections) == 1)
    opened = loop.time()
    newcomer = await open_raw(server.port)
    newcomer[1].write(GET_CLOSE)
    [resp] = await read_responses(newcomer[0], 1, timeout=EVICT_GRACE + 3)
    assert resp.status == 200
    assert loop.time() - opened >= EVICT_GRACE - 0.01  # not shed while young
    assert await read_all(silent[0]) == b""  # closed without a word: it asked nothing
    assert server.shed_total == 1
    for _, writer in (silent, newcomer):
        writer.close()


BIG = b"x" * (32 << 20)  # more than the kernel's socket buffers hold on loopback


def big(environ, start_response):
    start_response("200 OK", [("Content-Length", str(len(BIG)))])
    return [BIG]


async def test_an_unread_response_is_shed_before_an_idle_connection(start_server):
    # Slow read: the server is done with the connection but for bytes its client does not read;
    # closing it waits for the client for ever, so it holds its slot until it is aborted.
    server = await start_server(big, worker_connections=2, keepalive=60)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")  # never read

    def unread() -> bool:
        return any(conn.transport.is_closing() and conn.transport.get_write_buffer_size()
                   for conn in server.connections)
    await until(unread)
    idle = await open_raw(server.port)
    idle[1].write(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
    [resp] = await read_responses(idle[0], 1, methods=["HEAD"])
    assert resp.status == 200

    newcomer = await open_raw(server.port)
    newcomer[1].write(b"HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    [resp] = await read_responses(newcomer[0], 1, methods=["HEAD"])
    assert resp.status == 200
    await until(lambda: not unread())  # aborted: its slot is free
    assert not await is_closed(idle[0], timeout=0.1)
    assert server.shed_total == 1
    for w in (writer, idle[1], newcomer[1]):
        w.close()


async def test_a_client_that_does_not_read_costs_the_kernel_little(start_server):
    # Slow read: what the kernel takes of a response the client does not read is bounded
    # (TCP_NOTSENT_LOWAT); the rest waits in the transport, which references the app's bytes.
    # Unbounded, the kernel copied up to tcp_wmem's 4 MB per such client.
    from unicorn_aio.server import NOTSENT_LOWAT

    server = await start_server(big)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")  # never read
    await until(lambda: any(conn.transport.get_write_buffer_size()
                            for conn in server.connections))
    await asyncio.sleep(0.2)  # the kernel takes what it will
    [conn] = server.connections
    kernel = len(BIG) - conn.transport.get_write_buffer_size()
    assert kernel < NOTSENT_LOWAT + 512 * 1024, kernel
    writer.close()


async def test_a_full_worker_stops_cleanly_with_clients_in_its_backlog(start_server):
    # With nothing to shed a newcomer waits in the backlog; a stop takes and answers it.  The
    # stop asked here races serve()'s own, and the sockets went from under the slower one.
    gate = Gate()
    server = await start_server(gate, worker_connections=1)
    try:
        busy = await open_raw(server.port)
        busy[1].write(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\n")
        await until(lambda: gate.waiting == 1)
        waiting = await open_raw(server.port)
        waiting[1].write(GET)
        stop = asyncio.create_task(server.shutdown(timeout=5))
        await asyncio.sleep(0.1)
        gate.opened.set()
        await asyncio.wait_for(stop, 10)
        for reader, _ in (busy, waiting):
            [resp] = await read_responses(reader, 1)
            assert resp.status == 200 and resp.headers["connection"] == "close"
        for _, writer in (busy, waiting):
            writer.close()
    finally:
        gate.opened.set()


async def test_a_worker_busy_one_quick_request_at_a_time_keeps_its_listeners(start_server):
    # Busy-aware accepting (several workers) pauses once every app thread has been busy for
    # BUSY_GRACE: with one thread a worker under keep-alive load is busy with every request,
    # and it closed and made again its listeners for one request in eight.
    server = await start_server(hello, workers=2, threads=1)
    listeners = list(server._listeners)
    reader, writer = await open_raw(server.port)
    for _ in range(100):
        await request(reader, writer)
    assert server._listeners == listeners
    writer.close()


async def test_a_worker_busy_longer_stops_accepting_until_a_thread_is_free(start_server):
    gate = Gate()
    server = await start_server(gate, workers=2, threads=1)
    reader, writer = await open_raw(server.port)
    writer.write(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
    await until(lambda: gate.waiting == 1)
    await until(lambda: not server._listeners)  # within BUSY_GRACE
    gate.opened.set()
    await read_responses(reader, 1)
    await until(lambda: bool(server._listeners))
    await request(reader, writer)
    writer.close()


async def test_a_busy_pool_found_once_accepting_resumed_is_not_lost(start_server):
    # The pool came free (accepting resumes: a task) and filled again before that task ran:
    # the busy state it was told of while not accepting must still pause it.
    gate = Gate()
    server = await start_server(gate, workers=2, threads=1)
    reader, writer = await open_raw(server.port)
    writer.write(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
    await until(lambda: gate.waiting == 1)
    await until(lambda: not server._listeners)
    server.resume_accepting()  # as when a thread came free, with the pool full again at once
    await until(lambda: server._listen_task is None)  # listening again...
    await until(lambda: not server._listeners)  # ...and paused again, the pool being full
    gate.opened.set()
    await read_responses(reader, 1)
    writer.close()
