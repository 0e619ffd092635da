"""bench/floor.py is the stack's ceiling the bench compares against: it must do the same HTTP
work as a server answering the hello app (keep-alive kept, close honoured, the same bytes)."""

from __future__ import annotations

import asyncio

import pytest
from procs import free_port
from rawhttp import open_raw, read_responses

from bench.apps import HELLO
from bench.floor import serve

pytestmark = pytest.mark.timeout(30)


async def test_floor_answers_keep_alive_and_close_like_a_server():
    port = free_port()
    task = asyncio.create_task(serve("127.0.0.1", port))
    try:
        for _ in range(50):
            try:
                reader, writer = await open_raw(port)
                break
            except OSError:
                await asyncio.sleep(0.05)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 2)
        first, second = await read_responses(reader, 2)
        assert (first.status, first.body, second.body) == (200, HELLO, HELLO)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        [last] = await read_responses(reader, 1)
        assert last.body == HELLO
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed after the answer
        writer.close()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
