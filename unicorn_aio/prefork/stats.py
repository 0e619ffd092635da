"""A worker's numbers for its master: what the request path counts, and how they travel.

The request path adds to ``RequestStats`` once per answered request, on the loop thread
(``HostServices.request_finished``, http/services.py): a status class, a duration bucket, body
bytes in and out.
Everything else (in flight, threads, connections, the longest request, RSS) is looked up when a
heartbeat goes out, never counted per request.

They travel on the heartbeat channel (the worker's socketpair, children.py), as running totals
since the worker started: ``STATS``, a 2-byte big-endian length, then that many bytes of JSON.
Totals, not deltas, so a message dropped (a full socket buffer: the worker never waits for the
master) loses nothing that the next one does not carry; a worker killed outright (SIGKILL, the
OOM killer) loses what it counted since its last message, at most one heartbeat interval's
worth.  A message goes only when a number changed; otherwise the beat stays the one byte it
always was.  Any message is a sign of life to the master.

The JSON object, with short keys (the master's view of them is fleet.WorkerStats):
``n`` requests served (refused ones included), ``f`` in flight, ``tb``/``tt`` app threads busy and total, ``rss`` bytes,
``c`` open connections, ``sh`` connections shed, ``bi``/``bo`` body bytes in and out, ``h`` one
row of bucket counts (not cumulative, BUCKETS then +Inf) per status class of CLASSES, ``s`` the
seconds summed per class, ``l`` the longest-running request [method, path, seconds] or null,
``r`` why it asked to retire (a RESTART_REASONS word) or null.
"""

from __future__ import annotations

import json
import struct
from typing import TYPE_CHECKING, Any, Final

from unicorn_aio.http.protocol import HttpProtocol

if TYPE_CHECKING:
    from unicorn_aio.server import Server

STATS: Final = b"S"
_LENGTH: Final = struct.Struct(">H")
MAX_PATH: Final = 200  # of the longest request's path: a message stays far below its 64 KiB frame

# Seconds, Prometheus's default histogram buckets; the last row is +Inf.
BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
CLASSES: Final = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")  # other: an ASGI status 600 to 999
_CLASS: Final = {"1": 0, "2": 1, "3": 2, "4": 3, "5": 4}

# Why a worker was replaced: the master's count of restarts (fleet.py) by these words.
RESTART_REASONS: Final = ("timeout", "memory", "max-requests", "crash", "reload", "stuck")


class RequestStats:
    """The counters the request path adds to; loop thread only (no lock)."""

    __slots__ = ("histogram", "sums", "bytes_in", "bytes_out")

    def __init__(self) -> None:
        self.histogram = [[0] * (len(BUCKETS) + 1) for _ in CLASSES]
        self.sums = [0.0] * len(CLASSES)
        self.bytes_in = 0
        self.bytes_out = 0

    def record(self, status: str, seconds: float, received: int, sent: int) -> None:
        """One answered request: ``status`` its status line, ``seconds`` from its first byte
        to its last response byte written, ``received``/``sent`` its body bytes."""
        row = _CLASS.get(status[0], 5)
        # bisect_left, without a generic call from the compiled build: most stop at the first.
        bucket = 0
        for bound in BUCKETS:
            if seconds <= bound:  # le: a bucket's bound included
                break
            bucket += 1
        self.histogram[row][bucket] += 1
        self.sums[row] += seconds
        self.bytes_in += received
        self.bytes_out += sent


def snapshot(server: Server, stats: RequestStats, rss: int,
             retire: str | None) -> dict[str, Any]:
    """The worker's numbers now, as the JSON object the master reads."""
    now = server.loop.time()
    in_flight = 0
    oldest = None
    for conn in server.connections:
        if type(conn) is HttpProtocol and conn.requests:
            req = conn.requests[0]  # pipelined ones behind it wait their turn: not in flight
            if req.dispatched:
                in_flight += 1
                if oldest is None or req.start < oldest.start:
                    oldest = req
    longest = None
    if oldest is not None:
        path = oldest.url.partition(b"?")[0][:MAX_PATH].decode("latin-1")
        longest = [oldest.method.decode("latin-1"), path, round(now - oldest.start, 3)]
    pool = server.pool
    busy = total = 0
    if pool is not None and server.interface != "asgi":
        total = pool.max_size
        busy = min(pool.in_flight, total)
    # Copies of the rows: the worker compares this message with its next one.
    return {"n": server.requests_total + server.refused_total, "f": in_flight, "tb": busy, "tt": total, "rss": rss,
            "c": len(server.connections), "sh": server.shed_total, "bi": stats.bytes_in,
            "bo": stats.bytes_out, "h": [row[:] for row in stats.histogram],
            "s": [round(s, 6) for s in stats.sums], "l": longest, "r": retire}


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    return STATS + _LENGTH.pack(len(body)) + body


class MessageReader:
    """The master's side of one worker's channel: splits what it reads into the single-byte
    words of children.py and STATS messages, which may arrive cut anywhere."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> tuple[bytes, list[dict[str, Any]]]:
        """The single-byte words in ``data`` and the STATS messages it completes."""
        data = self._pending + data if self._pending else data
        if STATS not in data:
            self._pending = b""
            return data, []
        words = bytearray()
        messages: list[dict[str, Any]] = []
        i, end = 0, len(data)
        while i < end:
            j = data.find(STATS, i)
            if j < 0:
                words += data[i:]
                break
            words += data[i:j]
            if j + 3 > end:
                self._pending = data[j:]
                return bytes(words), messages
            (length,) = _LENGTH.unpack_from(data, j + 1)
            if j + 3 + length > end:
                self._pending = data[j:]
                return bytes(words), messages
            try:
                message = json.loads(data[j + 3:j + 3 + length])
            except ValueError:
                message = None
            if isinstance(message, dict):
                messages.append(message)
            i = j + 3 + length
        self._pending = b""
        return bytes(words), messages


class Outbox:
    """The worker's end of its channel: a send never blocks the loop and never leaves half a
    message behind.  What the socket did not take is sent first next time; meanwhile beats and
    STATS messages are dropped (the master is behind reading: it has our earlier ones, and
    the next STATS carries the totals), while BOOTED and RETIRE wait their turn."""

    __slots__ = ("sock", "unsent")

    def __init__(self, sock) -> None:
        self.sock = sock
        self.unsent = b""

    def send(self, data: bytes, droppable: bool = False) -> None:
        """Raises OSError (not BlockingIOError) when the master is gone."""
        if self.unsent:
            self._flush()
            if self.unsent:
                if not droppable:
                    self.unsent += data
                return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        if sent < len(data) and (sent or not droppable):
            self.unsent = data[sent:]

    def _flush(self) -> None:
        try:
            sent = self.sock.send(self.unsent)
        except (BlockingIOError, InterruptedError):
            return
        self.unsent = self.unsent[sent:]
