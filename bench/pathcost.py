"""Python time per request in unicorn_aio's own layers, without sockets or the kernel.

wrk measures the whole stack, and on a shared 2-core machine its numbers swing by 10-20% from
one run to the next.  This feeds whole requests straight into real ``HttpProtocol``s of a real
``Server``, one request per connection per loop iteration as under wrk (inline dispatch, so
everything runs on this thread), each with a stand-in transport that
only counts what it is given, and reports the best of several rounds of this thread's CPU time
(not wall time: other processes on the machine do not count): parsing, checks, environ, the app,
framing, and what the loop runs once per iteration (a loop iteration every ``BATCH`` requests).
It moves by tenths of a microsecond when the hot path does, which makes it the tool for judging
a hot-path change; `make bench` remains the judge of the result.

The same requests go through ../shared/bench/reference_wsgi.py's protocol (116 lines of Python
on the same stack, none of our checks), when it is there: the yardstick issue #22 names.

An ASGI app (``--app asgi_hello``) takes the ASGI path: a task per request, run by the loop
iteration each batch ends with (counted: this thread's CPU, the loop's share included).  Its
reference is uvicorn's httptools protocol, with the same batches and stand-in transports, where
uvicorn is installed (.bench-venv: ``.bench-venv/bin/python -m bench.pathcost --app asgi_hello``).

    .venv/bin/python -m bench.pathcost            # or: make bench-pathcost
    .venv/bin/python -m bench.pathcost --instructions   # the same in instructions (valgrind)

CPU time still moves with what else runs (caches, frequency): on this 2-core machine shared with
test suites, by 20-30%.  ``--instructions`` counts instructions instead, under valgrind's
cachegrind, as the difference between 500 and 2500 requests (startup cancels out): the same to
a fraction of a percent however busy the machine is, and as slow as valgrind (a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import time
from pathlib import Path
from typing import Any

import uvloop

from bench import apps
from bench.instructions import per_request
from unicorn_aio import server as server_module
from unicorn_aio.apploader import is_asgi_app
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
        self.bytes = 0
        self.closed = False

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data) -> None:
        self.writes += 1
        self.bytes += len(data)

    def writelines(self, chunks) -> None:
        self.writes += 1
        self.bytes += sum(map(len, chunks))

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


# Requests answered per loop iteration: about what one finishes under wrk -c50.  The held
# output of each batch is flushed once, and the access lines written once, as the loop does.
BATCH = 10
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "bench" / "reference_wsgi.py"


def interface(app: str) -> str:
    return "asgi" if is_asgi_app(getattr(apps, app)) else "wsgi"


def connections(server: Server) -> list[HttpProtocol]:
    """BATCH connections, each given one request per loop iteration, as wrk's are."""
    protocols = []
    for _ in range(BATCH):
        protocol = HttpProtocol(server, server.handler, server.options)
        protocol.connection_made(CountingTransport())
        protocols.append(protocol)
    return protocols


async def measure(request: bytes, count: int, rounds: int, accesslog: str | None = None,
                  app: str = "hello") -> float:
    """Best per-request CPU time in microseconds over ``rounds`` runs of ``count`` requests."""
    server = Server(getattr(apps, app), bind="127.0.0.1:0", dispatch="inline", accesslog=accesslog,
                    interface=interface(app))
    await server.start()
    try:
        protocols = connections(server)
        flush_access = server.log.flush_access
        warm = count // 10
        for _ in range(warm // BATCH):  # warm the caches (header names, statuses)
            for protocol in protocols:
                protocol.data_received(request)
            await asyncio.sleep(0)  # one loop iteration: the requests run, the output flushed
        await settle()
        response = sum(p.transport.bytes for p in protocols) // (warm // BATCH * BATCH)
        best = float("inf")
        for _ in range(rounds):
            start = time.thread_time()
            for _ in range(count // BATCH):
                for protocol in protocols:
                    protocol.data_received(request)
                await asyncio.sleep(0)  # what the loop does once per iteration
                if accesslog:
                    flush_access()
            await settle()  # the last batch's tasks and output, counted too
            best = min(best, (time.thread_time() - start) / (count // BATCH * BATCH))
        written = sum(p.transport.bytes for p in protocols)
        answered = server.requests_total - warm // BATCH * BATCH
        if any(p.transport.closed for p in protocols) or \
                answered != count // BATCH * BATCH * rounds or \
                written < response * (count // BATCH * BATCH) * rounds:
            raise RuntimeError(f"the server did not answer every request ({answered} answered, "
                               f"{written} bytes)")
        return best * 1e6
    finally:
        await server.shutdown(0)


async def settle() -> None:
    """Loop iterations until what the last batch started is done: an ASGI request's task runs
    in the iteration after its request arrived, and what it writes is flushed in the next."""
    for _ in range(3):
        await asyncio.sleep(0)


def uvicorn_connections(app: str) -> list[Any] | None:
    """BATCH connections of uvicorn's httptools protocol, configured as bench/run.py runs
    uvicorn (proxy headers on, no access log); None where uvicorn is not installed."""
    try:
        from uvicorn.config import Config as UvicornConfig
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
        from uvicorn.server import ServerState
    except ImportError:
        return None
    from email.utils import formatdate

    config = UvicornConfig(getattr(apps, app), http="httptools", lifespan="off", access_log=False,
                           log_config=None)
    config.load()
    state = ServerState()
    # What uvicorn's Server.on_tick sets once a second: Date, then Server.
    state.default_headers = [(b"date", formatdate(usegmt=True).encode()),
                             *config.encoded_headers]
    protocols = []
    for _ in range(BATCH):
        protocol = HttpToolsProtocol(config, state, {}, _loop=asyncio.get_running_loop())
        protocol.connection_made(CountingTransport())
        protocols.append(protocol)
    return protocols


async def uvicorn_cost(request: bytes, count: int, rounds: int, app: str) -> float | None:
    """``measure`` for uvicorn's protocol: the ASGI yardstick; None without uvicorn."""
    protocols = uvicorn_connections(app)
    if protocols is None:
        return None
    for _ in range(count // 10 // BATCH):
        for protocol in protocols:
            protocol.data_received(request)
        await asyncio.sleep(0)
    await settle()
    best = float("inf")
    for _ in range(rounds):
        start = time.thread_time()
        for _ in range(count // BATCH):
            for protocol in protocols:
                protocol.data_received(request)
            await asyncio.sleep(0)
        await settle()
        best = min(best, (time.thread_time() - start) / (count // BATCH * BATCH))
    if any(p.transport.closed for p in protocols):
        raise RuntimeError("uvicorn did not answer every request")
    for protocol in protocols:
        protocol.connection_lost(None)  # its keep-alive timers
    return best * 1e6


def reference_cost(request: bytes, count: int, rounds: int, app: str = "hello") -> float | None:
    """The same, through the reference server's protocol; None where it is not checked out."""
    if not REFERENCE.exists():
        return None
    spec = importlib.util.spec_from_file_location("reference_wsgi", REFERENCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    protocol = module.make_protocol(getattr(apps, app), 8000)()
    transport = CountingTransport()
    protocol.connection_made(transport)
    for _ in range(count // 10):
        protocol.data_received(request)
    best = float("inf")
    for _ in range(rounds):
        start = time.thread_time()
        for _ in range(count):
            protocol.data_received(request)
        best = min(best, (time.thread_time() - start) / count)
    return best * 1e6


def feed(request: bytes, count: int, app: str, reference: bool) -> None:
    """``count`` requests after 500 to warm up, flushed per BATCH: what --instructions counts."""
    if reference and interface(app) == "asgi":
        async def run_uvicorn() -> None:
            protocols = uvicorn_connections(app)
            assert protocols is not None  # instructions() asks only where uvicorn imports
            for _ in range((500 + count) // BATCH):
                for protocol in protocols:
                    protocol.data_received(request)
                await asyncio.sleep(0)
            await settle()
            for protocol in protocols:
                protocol.connection_lost(None)

        uvloop.run(run_uvicorn())
        return
    if reference:
        spec = importlib.util.spec_from_file_location("reference_wsgi", REFERENCE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        protocol = module.make_protocol(getattr(apps, app), 8000)()
        protocol.connection_made(CountingTransport())
        for _ in range(500 + count):
            protocol.data_received(request)
        return

    async def run() -> None:
        server = Server(getattr(apps, app), bind="127.0.0.1:0", dispatch="inline",
                        interface=interface(app))
        await server.start()
        protocols = connections(server)
        for _ in range((500 + count) // BATCH):
            for protocol in protocols:
                protocol.data_received(request)
            await asyncio.sleep(0)
        await settle()
        await server.shutdown(0)

    uvloop.run(run())


def instructions(name: str, app: str, reference: bool) -> int:
    """Instructions per request, from two runs under cachegrind."""
    return per_request(lambda n: ["-m", "bench.pathcost", "--feed", name, str(n), "--app", app]
                       + (["--reference"] if reference else []))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=50000, help="requests per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--accesslog", metavar="FILE",
                    help=f"also write the access log there, flushed every {BATCH} requests")
    ap.add_argument("--app", default="hello", help="an app of bench/apps.py (default: hello)")
    ap.add_argument("--no-reference", action="store_true", help="skip the reference server")
    ap.add_argument("--instructions", action="store_true",
                    help="count instructions under valgrind instead of timing (steady when busy)")
    ap.add_argument("--feed", nargs=2, metavar=("REQUEST", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    # The once-a-second sweep (timeouts, the Date header, shedding idle connections' parsers)
    # is not per-request work, and under valgrind, 50 times slower, how often it ran depended
    # on the clock: it moved --instructions by 15%.  Once at start, then not during the measure.
    # Set here, never on import: the test suite imports this module beside its own servers.
    server_module.SWEEP_INTERVAL = 1e9
    if args.feed:
        feed(REQUESTS[args.feed[0]], int(args.feed[1]), args.app, args.reference)
        return
    asgi = interface(args.app) == "asgi"
    mode, yardstick = ("asgi", "uvicorn") if asgi else ("inline", "reference server")
    if args.instructions:
        has_reference = importlib.util.find_spec("uvicorn") is not None if asgi \
            else REFERENCE.exists()
        for name in REQUESTS:
            ours = instructions(name, args.app, False)
            ref = None if args.no_reference or not has_reference else \
                instructions(name, args.app, True)
            vs = "" if ref is None else f"   {yardstick} {ref:7,d} ({ours / ref:.2f}×)"
            print(f"{name:8} {ours:7,d} instructions per request ({args.app} app, {mode}){vs}")
        return

    async def run() -> None:
        for name, request in REQUESTS.items():
            us = await measure(request, args.count, args.rounds, args.accesslog, args.app)
            if args.no_reference:
                ref = None
            elif asgi:
                ref = await uvicorn_cost(request, args.count, args.rounds, args.app)
            else:
                ref = reference_cost(request, args.count, args.rounds, args.app)
            vs = "" if ref is None else f"   {yardstick} {ref:6.2f} µs ({us / ref:.2f}×)"
            print(f"{name:8} {us:6.2f} µs of Python per request ({args.app} app, {mode}){vs}")

    uvloop.run(run())


if __name__ == "__main__":
    main()
