"""Flow control both ways: 64 MB through the server while one side is slow, in bounded memory.

The server runs in this process, so its memory is this process's RSS: the body must never pile
up in the protocol, the wsgi.input buffer or the response outbox.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest
from rawhttp import open_raw, read_responses

TOTAL = 64 * 1024 * 1024
PIECE = b"u" * 65536
LIMIT = 24 * 1024 * 1024  # far below the 64 MB that would show if anything buffered it all


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Samples RSS on the loop while a transfer runs."""

    def __init__(self) -> None:
        self.base = rss()
        self.peak = self.base
        self.task = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss())
            await asyncio.sleep(0.02)

    def stop(self) -> int:
        self.task.cancel()
        return self.peak - self.base


def slow_reader_app(environ, start_response):
    inp = environ["wsgi.input"]
    total = 0
    while True:
        block = inp.read(262144)
        if not block:
            break
        total += len(block)
        time.sleep(0.004)  # ~60 MB/s at most: slower than loopback, so the client must wait
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d" % total]


@pytest.mark.parametrize("chunked", [False, True])
async def test_slow_app_bounds_upload_memory(start_server, chunked):
    server = await start_server(slow_reader_app)
    reader, writer = await open_raw(server.port)
    peak = PeakRSS()
    try:
        framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % TOTAL
        writer.write(b"POST /up HTTP/1.1\r\nHost: t\r\n" + framing + b"\r\n\r\n")
        piece = b"%x\r\n%s\r\n" % (len(PIECE), PIECE) if chunked else PIECE

        async def send():
            for _ in range(TOTAL // len(PIECE)):
                writer.write(piece)
                await writer.drain()
            if chunked:
                writer.write(b"0\r\n\r\n")
        await asyncio.wait_for(send(), 15)
        [resp] = await read_responses(reader, 1, timeout=10)
        assert resp.status == 200 and resp.body == b"%d" % TOTAL
    finally:
        growth = peak.stop()
        writer.close()
    assert growth < LIMIT, f"RSS grew by {growth >> 20} MB during a 64 MB upload"


async def test_slow_client_bounds_download_memory(start_server):
    produced = [0]
    lock = threading.Lock()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def gen():
            for _ in range(TOTAL // len(PIECE)):
                with lock:
                    produced[0] += len(PIECE)
                yield PIECE
        return gen()

    server = await start_server(app)
    reader, writer = await open_raw(server.port)
    peak = PeakRSS()
    ahead = 0
    try:
        writer.write(b"GET /down HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)

        async def receive():
            nonlocal ahead
            received = 0
            while True:
                data = await reader.read(262144)
                if not data:
                    return received
                received += len(data)
                with lock:
                    ahead = max(ahead, produced[0] - received)
                await asyncio.sleep(0.002)  # a slow client
        received = await asyncio.wait_for(receive(), 15)
        # Chunked framing adds a few bytes per 64 KB chunk.
        assert TOTAL < received < TOTAL + TOTAL // 1000
    finally:
        growth = peak.stop()
        writer.close()
    assert growth < LIMIT, f"RSS grew by {growth >> 20} MB during a 64 MB download"
    # The app thread waited for the client instead of running ahead of it.
    assert ahead < 16 * 1024 * 1024, f"the app ran {ahead >> 20} MB ahead of the client"
