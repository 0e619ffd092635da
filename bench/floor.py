"""The ceiling of the stack unicorn_aio is built on: uvloop + httptools, and no WSGI at all.

Each request is parsed and answered with the hello response as a constant (keep-alive as the
client asks). Anything a WSGI server on this stack does per request comes on top of this, so the
bench runs it beside the hello scenario: a target above this row cannot be met by any code in
our layers, only by a different stack.

    .bench-venv/bin/python -m bench.floor 127.0.0.1 8080
"""

from __future__ import annotations

import asyncio
import sys

import httptools
import uvloop

from bench.apps import HELLO

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
            % (len(HELLO), HELLO))


class FloorProtocol(asyncio.Protocol):
    def connection_made(self, transport) -> None:
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_complete(self) -> None:
        self.transport.write(RESPONSE)
        if not self.parser.should_keep_alive():
            self.transport.close()


async def serve(host: str, port: int) -> None:
    server = await asyncio.get_running_loop().create_server(FloorProtocol, host, port, backlog=2048)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(serve(sys.argv[1], int(sys.argv[2])))
