"""What frameworks return: not a list but an object over one (Django's HttpResponse iterates its
list), or a one-chunk generator with its Content-Length (Flask's, through werkzeug).  Either is
framed as a whole response - with a Content-Length, in one write - in both dispatch modes, and
closed; a real stream still goes out chunk by chunk as the app yields it.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from rawhttp import open_raw, read_responses

MODES = ["threads", "inline"]


class ListResponse:
    """Django's HttpResponse, as a server sees it: iter() over its list, and close()."""

    def __init__(self, chunks: list[bytes], log: list) -> None:
        self.chunks, self.log = chunks, log

    def __iter__(self):
        self.log.append(("iter", threading.current_thread() is threading.main_thread()))
        return iter(self.chunks)

    def close(self) -> None:
        self.log.append(("close", None))


def list_response_app(log: list):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json")])  # no length: Django's
        return ListResponse([b'{"message": ', b'"Hello, World!"}'], log)
    return app


@pytest.mark.both_loops
@pytest.mark.parametrize("mode", MODES)
async def test_a_response_object_over_a_list_is_framed_whole(start_server, mode):
    log: list = []
    server = await start_server(list_response_app(log), dispatch=mode)
    reader, writer = await open_raw(server.port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 2)
        resps = await read_responses(reader, 2)
        for resp in resps:
            assert resp.body == b'{"message": "Hello, World!"}'
            assert resp.headers.get("content-length") == "28"  # not chunked
            assert "transfer-encoding" not in resp.headers
    finally:
        writer.close()
    assert [event for event, _ in log] == ["iter", "close"] * 2
    if mode == "inline":  # iterating a list cannot block: no app thread is needed for it
        assert all(on_loop for event, on_loop in log if event == "iter")


def one_chunk_app(log: list):
    def app(environ, start_response):
        body = b"x" * 1000
        start_response("200 OK", [("Content-Length", str(len(body)))])

        def gen():
            try:
                yield body
            finally:
                log.append("closed")
        return gen()
    return app


@pytest.mark.both_loops
@pytest.mark.parametrize("mode", MODES)
async def test_a_one_chunk_generator_with_its_length(start_server, mode):
    log: list = []
    server = await start_server(one_chunk_app(log), dispatch=mode)
    reader, writer = await open_raw(server.port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 3)
        resps = await read_responses(reader, 3)
        assert [r.body for r in resps] == [b"x" * 1000] * 3
    finally:
        writer.close()
    assert log == ["closed"] * 3


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("length", [True, False])
async def test_a_stream_leaves_as_it_is_yielded(start_server, mode, length):
    # The first chunk reaches the client while the app still waits to yield the second, with
    # a Content-Length (whose last chunk completes the body) or chunked.
    release = threading.Event()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", "10")] if length else [])

        def gen():
            yield b"12345"
            release.wait(5)
            yield b"67890"
        return gen()

    server = await start_server(app, dispatch=mode)
    reader, writer = await open_raw(server.port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        seen = b""
        while b"12345" not in seen:
            seen += await asyncio.wait_for(reader.read(65536), 3)
        assert not release.is_set()
        release.set()
        rest = b""
        while b"67890" not in rest:
            rest += await asyncio.wait_for(reader.read(65536), 3)
    finally:
        release.set()
        writer.close()
