"""CPU time per HTTP/2 request in unicorn_aio's own layers, without sockets: pathcost.py for h2c.

The h2c scenario (`make bench-h2c`) measures the whole stack, and on a shared 2-core machine its
rounds swing by a factor of two.  This opens a connection of a real ``Server``
(``--http-protocols h2,h1 --http2-cleartext prior-knowledge``, inline dispatch, so everything runs
on this thread) with the client preface, then feeds it what h2load -m 10 sends: reads of ten
HEADERS frames (h2load's five fields, HPACK-encoded once in order, END_STREAM), with the loop
run between reads.  A stand-in transport counts the bytes; the best round of this thread's CPU
time per request is reported, for each engine.  ``--profile`` adds cProfile's view of a round
(its own cost inflates every call; read it for shares, not microseconds).  ``--instructions``
counts instructions instead, under valgrind's cachegrind, as the difference between feeding 500
and 2500 requests (the same requests encoded in both, so only serving them differs): the same
however busy the machine, where CPU time is not.

    .venv/bin/python -m bench.h2pathcost [--count N] [--rounds N] [--profile] [--instructions]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import time

import uvloop
from hpack import Encoder
from hyperframe.frame import HeadersFrame, SettingsFrame, WindowUpdateFrame

from bench import apps
from bench.instructions import per_request
from bench.pathcost import CountingTransport
from unicorn_aio.http2.engines import ENGINES, engine_available
from unicorn_aio.http2.negotiate import connection_factory
from unicorn_aio.server import Server

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADERS = [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http"),
           (b":authority", b"127.0.0.1:8000"), (b"user-agent", b"h2load nghttp2/1.52.0")]
PER_READ = 10  # h2load -m 10: ten streams' HEADERS arrive in one read


class SwitchingTransport(CountingTransport):
    """What the H1OrH2 -> H2Protocol switch needs of a transport, besides counting."""

    def __init__(self) -> None:
        super().__init__()
        self.protocol: asyncio.BaseProtocol | None = None

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol

    def write_eof(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def abort(self) -> None:
        self.closed = True


def client_reads(count: int) -> list[bytes]:
    """``count`` requests as h2load sends them on one connection, ``PER_READ`` per read."""
    encoder = Encoder()
    reads, stream_id = [], 1
    for _ in range(count // PER_READ):
        frames = []
        for _ in range(PER_READ):
            frame = HeadersFrame(stream_id, flags=("END_STREAM", "END_HEADERS"))
            frame.data = encoder.encode(HEADERS)
            frames.append(frame.serialize())
            stream_id += 2
        reads.append(b"".join(frames))
    return reads


async def measure(count: int, rounds: int, profile: bool) -> tuple[float, float, pstats.Stats | None]:
    """Best µs per request over ``rounds`` (after one warm round), bytes out per request, and
    the profile of one more round when asked."""
    server = Server(apps.hello, bind="127.0.0.1:0", dispatch="inline", http_protocols=["h2", "h1"],
                    http2_cleartext="prior-knowledge")
    await server.start()
    assert server.handler is not None
    new_connection = connection_factory(server.cfg, server, server.handler, server.options)
    best, out, stats = float("inf"), 0.0, None
    try:
        for rnd in range(rounds + 1 + profile):
            reads = client_reads(count)
            transport = SwitchingTransport()
            first = new_connection()
            transport.protocol = first
            first.connection_made(transport)
            first.data_received(PREFACE + SettingsFrame(0).serialize()
                                + WindowUpdateFrame(0, 2**31 - 1 - 65535).serialize()
                                + SettingsFrame(0, flags=("ACK",)).serialize())
            h2 = transport.get_protocol()
            await asyncio.sleep(0)
            prof = cProfile.Profile() if rnd == rounds + 1 else None
            before = transport.bytes
            start = time.thread_time()
            if prof:
                prof.enable()
            for data in reads:
                h2.data_received(data)  # type: ignore[attr-defined]
                server.services.flush_all()
                await asyncio.sleep(0)  # what the loop runs between two reads
            if prof:
                prof.disable()
                stats = pstats.Stats(prof)
            elif rnd:  # round 0 warms the caches
                best = min(best, (time.thread_time() - start) / count)
            out = (transport.bytes - before) / count
            if transport.closed or out < 30:
                raise RuntimeError(f"the server did not answer every request ({out:.0f} bytes each)")
            h2.connection_lost(None)
    finally:
        await server.shutdown(0)
    return best * 1e6, out, stats


def feed(count: int) -> None:
    """Serve ``count`` requests after 500 to warm up, of 3000 encoded: what --instructions counts."""
    reads = client_reads(3000)[:(500 + count) // PER_READ]

    async def run() -> None:
        server = Server(apps.hello, bind="127.0.0.1:0", dispatch="inline", http_protocols=["h2", "h1"],
                        http2_cleartext="prior-knowledge")
        await server.start()
        assert server.handler is not None
        transport = SwitchingTransport()
        first = connection_factory(server.cfg, server, server.handler, server.options)()
        transport.protocol = first
        first.connection_made(transport)
        first.data_received(PREFACE + SettingsFrame(0).serialize()
                            + WindowUpdateFrame(0, 2**31 - 1 - 65535).serialize()
                            + SettingsFrame(0, flags=("ACK",)).serialize())
        h2 = transport.get_protocol()
        for data in reads:
            h2.data_received(data)  # type: ignore[attr-defined]
            server.services.flush_all()
            await asyncio.sleep(0)
        if transport.bytes < 30 * (500 + count):
            raise RuntimeError(f"the server did not answer every request ({transport.bytes} bytes)")
        await server.shutdown(0)

    uvloop.run(run())


def instructions(engine: str) -> int:
    """Instructions per request with ``engine``, from two runs under cachegrind."""
    return per_request(lambda n: ["-m", "bench.h2pathcost", "--feed", str(n)],
                       {"UNICORN_AIO_H2_ENGINE": engine})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=20000, help="requests per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="cProfile one more round, per engine")
    ap.add_argument("--instructions", action="store_true",
                    help="count instructions under valgrind instead of timing (steady when busy)")
    ap.add_argument("--feed", type=int, help=argparse.SUPPRESS)  # one run under valgrind
    args = ap.parse_args()
    if args.feed is not None:
        feed(args.feed)
        return
    if args.instructions:
        for engine in ENGINES:
            why = engine_available(engine)
            print(f"{engine:8} {why}" if why else
                  f"{engine:8} {instructions(engine):9,d} instructions per h2c hello request (inline)")
        return

    async def run() -> None:
        for engine in ENGINES:
            why = engine_available(engine)
            if why:
                print(f"{engine:8} {why}")
                continue
            os.environ["UNICORN_AIO_H2_ENGINE"] = engine
            us, out, stats = await measure(args.count, args.rounds, args.profile)
            print(f"{engine:8} {us:6.2f} µs per h2c hello request (inline, {PER_READ} streams per read, "
                  f"{out:.0f} bytes out each)")
            if stats is not None:
                stats.sort_stats("cumulative").print_stats(40)

    uvloop.run(run())


if __name__ == "__main__":
    main()
