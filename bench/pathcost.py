"""Python time per request in unicorn_aio's own layers, without sockets or the kernel.

wrk measures the whole stack, and on a shared 2-core machine its numbers swing by 10-20% from
one run to the next.  This feeds whole requests straight into a real ``HttpProtocol`` of a real
``Server`` (inline dispatch, so everything runs on this thread), with a stand-in transport that
only counts writes, and reports the best of several rounds: parsing, checks, environ, the app,
framing.  It moves by tenths of a microsecond when the hot path does, which makes it the tool for
judging a hot-path change; `make bench` remains the judge of the result.

    .venv/bin/python -m bench.pathcost            # or: make bench-pathcost
"""

from __future__ import annotations

import argparse
import asyncio
import time

import uvloop

from bench.apps import hello
from unicorn_aio.http.protocol import HttpProtocol
from unicorn_aio.server import Server

REQUESTS = {
    # what wrk sends
    "wrk": b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
    # a browser behind nginx: eight fields, a query string
    "browser": (b"GET /path/to/page?x=1 HTTP/1.1\r\nHost: example.com\r\n"
                b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0\r\n"
                b"Accept: text/html,application/xhtml+xml\r\nAccept-Language: en-US,en;q=0.5\r\n"
                b"Accept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\n"
                b"Cookie: session=abcdef0123456789\r\nUpgrade-Insecure-Requests: 1\r\n\r\n"),
    # a small form POST, body in the same packet
    "post": (b"POST /form HTTP/1.1\r\nHost: example.com\r\n"
             b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n\r\n"
             b"a=1&b=2&c=3"),
}


class CountingTransport(asyncio.Transport):
    """Accepts what a socket transport would and keeps only a count."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.closed = False

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data) -> None:
        self.writes += 1

    def writelines(self, chunks) -> None:
        self.writes += 1

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    abort = close

    def can_write_eof(self) -> bool:
        return True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


# Access lines written per loop iteration with --accesslog: about what a loop iteration finishes
# under wrk -c50.
ACCESS_BATCH = 10


async def measure(request: bytes, count: int, rounds: int, accesslog: str | None = None) -> float:
    """Best per-request time in microseconds over ``rounds`` runs of ``count`` requests."""
    server = Server(hello, bind="127.0.0.1:0", dispatch="inline", accesslog=accesslog)
    await server.start()
    try:
        protocol = HttpProtocol(server, server.handler, server.options)
        transport = CountingTransport()
        protocol.connection_made(transport)
        for _ in range(count // 10):  # warm the caches (header names, statuses)
            protocol.data_received(request)
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            if accesslog:
                flush = server.log.flush_access
                for _ in range(count // ACCESS_BATCH):
                    for _ in range(ACCESS_BATCH):
                        protocol.data_received(request)
                    flush()  # what the loop does once per iteration
            else:
                for _ in range(count):
                    protocol.data_received(request)
            best = min(best, (time.perf_counter() - start) / count)
        if transport.closed or transport.writes < count * rounds:
            raise RuntimeError(f"the server did not answer every request ({transport.writes} writes)")
        return best * 1e6
    finally:
        await server.shutdown(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=50000, help="requests per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--accesslog", metavar="FILE",
                    help=f"also write the access log there, flushed every {ACCESS_BATCH} requests")
    args = ap.parse_args()

    async def run() -> None:
        for name, request in REQUESTS.items():
            us = await measure(request, args.count, args.rounds, args.accesslog)
            print(f"{name:8} {us:6.2f} µs of Python per request (hello app, inline)")

    uvloop.run(run())


if __name__ == "__main__":
    main()
