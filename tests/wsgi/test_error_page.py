"""An app that fails before its head gets gunicorn 27's error page (util.write_error): the
same status line, headers and HTML, byte for byte; a HEAD request the head alone."""

from __future__ import annotations

import pytest
from rawhttp import open_raw, read_all

pytestmark = pytest.mark.timeout(30)

MODES = [pytest.param({}, id="threads"), pytest.param({"dispatch": "inline"}, id="inline")]
PAGE = (b"<html>\n  <head>\n    <title>Internal Server Error</title>\n  </head>\n  <body>\n"
        b"    <h1><p>Internal Server Error</p></h1>\n    \n  </body>\n</html>\n")


def boom(environ, start_response):
    raise RuntimeError("boom")


async def answer(port: int, method: str) -> bytes:
    reader, writer = await open_raw(port)
    try:
        writer.write(f"{method} /boom HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        return await read_all(reader)
    finally:
        writer.close()


@pytest.mark.parametrize("mode", MODES)
async def test_gunicorns_500_page(start_server, mode):
    server = await start_server(boom, **mode)
    head = (b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n"
            b"Content-Type: text/html\r\nContent-Length: %d\r\n\r\n" % len(PAGE))
    assert await answer(server.port, "GET") == head + PAGE
    assert await answer(server.port, "HEAD") == head
