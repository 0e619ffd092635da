"""Server-side CPU per HTTP/2 request for each candidate library, sans-IO, one connection.

The client's bytes are made once, ahead of the clock, by python-hyper ``h2`` acting as
h2load does (``-m 10``: ten streams at a time, GET with :authority, user-agent, accept and
accept-encoding; WINDOW_UPDATE as the responses are read). Each server then takes those bytes,
round by round, from a fresh connection and answers every request with a hello (13 bytes,
four fields), and only its own work is timed (``time.process_time``, the best of a few runs).
No sockets and no kernel: what is left is what the library and its binding cost per request,
which on a 2-core machine decides how many requests one worker can serve.

    make bench-h2engines          # pinned to one core with taskset
    .venv/bin/python -m bench.h2engines --requests 20000

The servers:
  h2         python-hyper h2 (pure Python), H2Connection as a server
  zttp       zttp's H2Connection (a Zig core), the latest on PyPI; also checked for its
             "HTTP/2 flood detected" on ordinary traffic past some thousands of streams
  nghttp2    unicorn_aio/http2/nghttp2.py, libnghttp2 through cffi (the engine we ship)
  h2engine   unicorn_aio/http2/h2engine.py, the h2 engine behind the same seam, if present

Results: bench/results/h2engines.json and .md, with the machine and the library versions.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import h2.config
import h2.connection
import h2.events

RESULTS = Path(__file__).parent / "results"
BODY = b"Hello, World!"
RESPONSE = [(b":status", b"200"), (b"content-type", b"text/plain"),
            (b"content-length", str(len(BODY)).encode()), (b"server", b"unicorn_aio")]
REQUEST = [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http"),
           (b":authority", b"127.0.0.1:8000"), (b"user-agent", b"h2load nghttp2/1.52.0"),
           (b"accept", b"*/*"), (b"accept-encoding", b"gzip, deflate")]


def client_rounds(requests: int, concurrent: int) -> list[bytes]:
    """What the client sends, one element per round of ``concurrent`` requests; the answers
    come from a reference h2 server so WINDOW_UPDATEs and SETTINGS acks are where a real
    client puts them."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                  header_encoding=None))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                  header_encoding=None))
    client.initiate_connection()
    server.initiate_connection()
    rounds = []
    sid = 1
    pending = client.data_to_send()
    done = 0
    while done < requests:
        for _ in range(min(concurrent, requests - done)):
            client.send_headers(sid, REQUEST, end_stream=True)
            sid += 2
            done += 1
        pending += client.data_to_send()
        rounds.append(pending)
        for ev in server.receive_data(pending):
            if isinstance(ev, h2.events.RequestReceived):
                server.send_headers(ev.stream_id, RESPONSE)
                server.send_data(ev.stream_id, BODY, end_stream=True)
        for ev in client.receive_data(server.data_to_send()):
            if isinstance(ev, h2.events.DataReceived):
                client.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        pending = client.data_to_send()
    return rounds


# Each server answers one round of client bytes: serve() returns the requests it answered and
# keeps what it would write in .out (the defences check looks there for a GOAWAY).

class H2Server:
    def __init__(self) -> None:
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding=None))
        self.conn.initiate_connection()
        self.out = self.conn.data_to_send()
        self.requests = 0  # handed to the app, answered or not

    def serve(self, data: bytes) -> int:
        conn = self.conn
        started = []
        for ev in conn.receive_data(data):
            kind = type(ev)
            if kind is h2.events.RequestReceived:
                started.append(ev.stream_id)
                self.requests += 1
            elif kind is h2.events.StreamReset:
                started.remove(ev.stream_id)  # reset before it was answered
        for sid in started:
            conn.send_headers(sid, RESPONSE)
            conn.send_data(sid, BODY, end_stream=True)
        self.out = conn.data_to_send()
        return len(started)


class ZttpServer:
    def __init__(self) -> None:
        import zttp
        self.zttp = zttp
        self.conn = zttp.Connection(zttp.SERVER, zttp.HTTP2)
        self.conn.initiate_connection()
        self.out = self.conn.data_to_send()
        self.requests = 0

    def serve(self, data: bytes) -> int:
        conn = self.conn
        Request, NEED_DATA = self.zttp.Request, self.zttp.NEED_DATA
        headers = RESPONSE[1:]
        n = 0
        conn.receive_data(data)
        while True:
            ev = conn.next_event()
            if ev is NEED_DATA:
                break
            if type(ev) is Request:
                self.requests += 1
                stream = conn.stream(ev.stream_id)
                stream.send_response(200, headers)
                stream.send_data(BODY)
                stream.end_message()
                n += 1
        self.out = conn.data_to_send()
        return n


class EngineServer:
    """One of our engines (http2/engine.py) behind the H2Engine seam."""

    name = ""

    def __init__(self) -> None:
        from unicorn_aio.http2.engine import (
            H2Settings,
            ProtocolError,
            RequestReceived,
            StreamReset,
        )
        from unicorn_aio.http2.engines import make_engine
        self.request_type, self.reset_type, self.error_type = RequestReceived, StreamReset, ProtocolError
        self.engine = make_engine(H2Settings(), self.name)
        self.engine.initiate()
        self.out = self.engine.data_to_send()
        self.stopped = False
        self.requests = 0

    def serve(self, data: bytes) -> int:
        engine = self.engine
        request, reset = self.request_type, self.reset_type
        started = []
        for ev in engine.receive(data):
            kind = type(ev)
            if kind is request:
                started.append(ev.stream_id)
                self.requests += 1
            elif kind is reset:
                started.remove(ev.stream_id)  # reset before it was answered
            elif kind is self.error_type:
                self.stopped = True
        for sid in started:
            engine.send_headers(sid, RESPONSE, False)
            engine.send_data(sid, BODY, True)
        self.out = engine.data_to_send()
        return len(started)


class NghttpServer(EngineServer):
    name = "nghttp2"


class H2EngineServer(EngineServer):
    name = "h2"


SERVERS: dict[str, Callable[[], Any]] = {
    "h2": H2Server,
    "zttp": ZttpServer,
    "nghttp2": NghttpServer,
    "h2engine": H2EngineServer,
}


def run_once(factory: Callable[[], Any], rounds: list[bytes]) -> tuple[float, int]:
    serve = factory().serve
    gc.collect()
    gc.disable()
    try:
        served = 0
        t0 = time.process_time()
        for data in rounds:
            served += serve(data)
        return time.process_time() - t0, served
    finally:
        gc.enable()


def measure(names: list[str], rounds: list[bytes], requests: int, runs: int) -> list[dict[str, Any]]:
    """The best of ``runs`` for each server, the servers taking turns within each run so that
    a neighbour's load on this shared machine falls on all of them alike."""
    best: dict[str, float] = {}
    errors: dict[str, str] = {}
    for name in names:
        try:
            SERVERS[name]()
        except Exception as exc:  # an absent library is reported, not fatal
            errors[name] = f"unavailable: {exc}"
    for _ in range(runs):
        for name in names:
            if name in errors:
                continue
            try:
                elapsed, served = run_once(SERVERS[name], rounds)
            except Exception as exc:
                errors[name] = f"{type(exc).__name__}: {exc}"
                continue
            if served != requests:
                errors[name] = f"answered {served} of {requests}"
                continue
            best[name] = min(best.get(name, elapsed), elapsed)
    rows: list[dict[str, Any]] = []
    for name in names:
        if name in errors:
            rows.append({"server": name, "error": errors[name]})
        else:
            us = best[name] / requests * 1e6
            rows.append({"server": name, "us_per_request": round(us, 2), "rps_per_core": round(1e6 / us)})
    return rows


def long_connection(name: str, streams: int, concurrent: int) -> dict[str, Any]:
    """Serve ``streams`` requests on one connection and say whether the library gave up."""
    rounds = client_rounds(streams, concurrent)
    serve = SERVERS[name]().serve
    served = 0
    for data in rounds:
        try:
            served += serve(data)
        except Exception as exc:
            return {"server": name, "streams": streams, "served": served,
                    "error": f"{type(exc).__name__}: {exc}"}
    return {"server": name, "streams": streams, "served": served, "error": None}


def _frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return (len(payload).to_bytes(3, "big") + bytes((kind, flags))
            + stream_id.to_bytes(4, "big") + payload)


def _preface() -> bytes:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    return client.data_to_send()


def attacks() -> dict[str, list[bytes]]:
    """The known floods as rounds of raw client bytes (h2's client refuses to send them)."""
    import hpack
    encoder = hpack.Encoder()
    rapid = [_preface()]
    for first in range(0, 5000, 100):  # 5,000 streams opened and reset at once, 100 a read
        chunk = []
        for i in range(first, first + 100):
            sid = 2 * i + 1
            chunk.append(_frame(1, 0x5, sid, encoder.encode(REQUEST)) + _frame(3, 0, sid, b"\0\0\0\x08"))
        rapid.append(b"".join(chunk))
    block = hpack.Encoder().encode(REQUEST)
    continuation = [_preface() + _frame(1, 0x1, 1, block)]  # no END_HEADERS
    continuation += [_frame(9, 0, 1) * 100 for _ in range(100)]  # 10,000 empty CONTINUATIONs
    ping = [_preface()] + [_frame(6, 0, 0, b"12345678") * 100 for _ in range(100)]
    settings = [_preface()] + [_frame(4, 0, 0) * 100 for _ in range(100)]
    return {"rapid reset (5,000 streams)": rapid,
            "CONTINUATION flood (10,000 frames)": continuation,
            "PING flood (10,000)": ping, "SETTINGS flood (10,000)": settings}


def defences(name: str) -> dict[str, Any]:
    """What each library does with each flood: the requests it handed to the app, the frames
    it answered, whether it ended the connection (an error, or a GOAWAY in its output)."""
    results = {}
    for attack, rounds in attacks().items():
        server = SERVERS[name]()
        answered = 0
        outcome = "served to the end"
        for data in rounds:
            try:
                server.serve(data)
            except Exception as exc:
                outcome = f"refused: {type(exc).__name__}: {str(exc)[:80]}"
                break
            kinds = []
            pos, out = 0, server.out
            while pos + 9 <= len(out):
                kinds.append(out[pos + 3])
                pos += 9 + int.from_bytes(out[pos:pos + 3], "big")
            answered += kinds.count(6) + sum(1 for k in kinds if k == 4)
            if 7 in kinds or getattr(server, "stopped", False):
                outcome = "refused: GOAWAY"
                break
        results[attack] = {"app_calls": server.requests, "acks_sent": answered, "outcome": outcome}
    return {"server": name, "attacks": results}


def version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    libnghttp2 = None
    try:
        from unicorn_aio.http2.nghttp2 import library_version
        libnghttp2 = library_version()
    except (ImportError, OSError):
        pass
    return {
        "nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "h2": version("h2"), "hpack": version("hpack"), "zttp": version("zttp"),
        "cffi": version("cffi"), "libnghttp2": libnghttp2,
    }


def write_results(data: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "h2engines.json").write_text(json.dumps(data, indent=2) + "\n")
    m = data["machine"]
    lines = [
        "# HTTP/2 engines: server CPU per request (make bench-h2engines)",
        "",
        f"{data['requests']} GETs on one connection, {data['concurrent']} streams at a time "
        f"(h2load -m {data['concurrent']}), hello answers; client bytes made ahead of the clock; "
        f"best of {data['runs']} runs of `time.process_time`, pinned to CPU(s) {m['affinity']}.",
        "",
        f"Machine: {m['nproc']} cores, {m['cpu']}, Python {m['python']}; h2 {m['h2']} "
        f"(hpack {m['hpack']}), zttp {m['zttp']}, cffi {m['cffi']}, libnghttp2 {m['libnghttp2']}; "
        f"load average at the start {m['loadavg']} (other work shares this machine).",
        "",
        "h2 and zttp are the libraries alone; nghttp2 and h2engine are unicorn_aio's engines "
        "(http2/nghttp2.py, http2/h2engine.py), each with its adapter to the events the "
        "protocol reads.",
        "",
        "| server | µs/request | requests/s per core |",
        "|---|---:|---:|",
    ]
    for row in data["cpu"]:
        if row.get("error"):
            lines.append(f"| {row['server']} | {row['error']} | |")
        else:
            lines.append(f"| {row['server']} | {row['us_per_request']} | {row['rps_per_core']:,} |")
    lines += ["", f"One connection, {data['long']['streams']} streams ({data['concurrent']} at a time):", ""]
    for row in data["long"]["rows"]:
        verdict = "all served" if not row["error"] else f"stopped after {row['served']}: {row['error']}"
        lines.append(f"- {row['server']}: {verdict}")
    lines += ["", "The floods, each on a fresh connection, bytes written by hand (app calls: requests "
              "handed to the app; acks: PING/SETTINGS answers written):", "",
              "| server | attack | app calls | acks | outcome |", "|---|---|---:|---:|---|"]
    for row in data["defences"]:
        for attack, r in row["attacks"].items():
            lines.append(f"| {row['server']} | {attack} | {r['app_calls']} | {r['acks_sent']} | {r['outcome']} |")
    (RESULTS / "h2engines.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000,
                        help="requests per timed connection (zttp gives up past ~4,000)")
    parser.add_argument("--concurrent", type=int, default=10)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--long-streams", type=int, default=20000,
                        help="streams on one connection for the long-connection check")
    parser.add_argument("--only", default=",".join(SERVERS))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    rounds = client_rounds(args.requests, args.concurrent)
    rows = measure(names, rounds, args.requests, args.runs)
    for row in rows:
        print(row, flush=True)
    long_rows = []
    for name in names:
        try:
            SERVERS[name]()
        except Exception:
            continue
        row = long_connection(name, args.long_streams, args.concurrent)
        print(row, flush=True)
        long_rows.append(row)
    defence_rows = []
    for name in names:
        try:
            SERVERS[name]()
        except Exception:
            continue
        row = defences(name)
        print(row, flush=True)
        defence_rows.append(row)
    data = {"requests": args.requests, "concurrent": args.concurrent, "runs": args.runs,
            "machine": machine(), "cpu": rows,
            "long": {"streams": args.long_streams, "rows": long_rows},
            "defences": defence_rows}
    if not args.no_write:
        write_results(data)


if __name__ == "__main__":
    main()
