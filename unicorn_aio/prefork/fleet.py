"""The master's view of its workers' numbers: each worker's latest, and fleet-wide totals that
never go backwards.

Workers send their running totals with their heartbeats (stats.py).  The master keeps each live
worker's latest message; when a worker exits (retired, replaced by a HUP, killed, crashed) its
last totals are folded into the counts of the workers gone before, so a counter summed over the
fleet never drops.  What a worker counted after its last message is lost if it dies without
sending another (SIGKILL): at most one heartbeat interval's worth (children.heartbeat_interval,
1 s by default).  A graceful exit sends a last message, so HUPs and retirements lose nothing.
Only the master's own restart (USR2's new master, a new process) starts the counts from zero.

The API, for /metrics (metrics.py) and the control socket:

``Fleet.workers() -> list[WorkerStats]``
    one per live worker process, oldest first: what it last said, plus the master's own
    record (pid, age, generation, booted, retiring, stopping, seconds since its last message).
``Fleet.totals() -> FleetTotals``
    counters over every worker this master ever ran (requests and their durations by status
    class, body bytes in and out, connections shed, restarts by reason), gauges over the live
    ones (in flight, open connections, busy and total app threads, RSS), and the worker counts
    (processes alive, booted, the target).
``Fleet.exit_callbacks``
    functions called with each exited worker's pid (prometheus_client's mark_process_dead).

The arbiter calls ``feed`` with what it reads from a worker's channel (it gets back the
single-byte words of children.py) and ``exited`` as the worker's exit is reaped.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from unicorn_aio.prefork.children import WorkerProcess
from unicorn_aio.prefork.stats import BUCKETS, CLASSES, RESTART_REASONS, MessageReader

__all__ = ["BUCKETS", "CLASSES", "RESTART_REASONS", "Fleet", "FleetTotals", "LongestRequest",
           "WorkerStats"]


class Master(Protocol):
    """What the fleet reads of the arbiter."""

    workers: dict[int, WorkerProcess]
    num_workers: int
    loop: asyncio.AbstractEventLoop


@dataclass
class LongestRequest:
    method: str
    path: str      # without the query string
    seconds: float  # how long it had run when the worker last reported


@dataclass
class Counters:
    """What only grows: one worker's totals, or the fleet's."""

    requests: int = 0  # answered, whatever the status (a request whose client left included)
    histogram: dict[str, list[int]] = field(
        default_factory=lambda: {c: [0] * (len(BUCKETS) + 1) for c in CLASSES})
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0.0))
    bytes_in: int = 0   # request body bytes
    bytes_out: int = 0  # response body bytes
    shed: int = 0       # connections closed to make room at --worker-connections

    @property
    def statuses(self) -> dict[str, int]:
        """Requests by status class ("2xx": n); a request answered with no status is in
        ``requests`` only."""
        return {c: sum(row) for c, row in self.histogram.items()}

    def add(self, other: Counters) -> None:
        self.requests += other.requests
        for c in CLASSES:
            self.histogram[c] = [a + b for a, b in zip(self.histogram[c], other.histogram[c])]
            self.seconds[c] += other.seconds[c]
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out
        self.shed += other.shed


@dataclass
class Gauges:
    """What goes up and down: one worker's now, or the live fleet's sum."""

    in_flight: int = 0      # requests in the app
    threads_busy: int = 0   # app threads running a request (WSGI thread pool)
    threads_total: int = 0  # the pool's size (--threads, or --max-threads for gevent/eventlet)
    connections: int = 0    # open client connections
    rss: int = 0            # resident memory, bytes

    def add(self, other: Gauges) -> None:
        self.in_flight += other.in_flight
        self.threads_busy += other.threads_busy
        self.threads_total += other.threads_total
        self.connections += other.connections
        self.rss += other.rss


@dataclass
class WorkerStats:
    pid: int
    age: int
    generation: int
    booted: bool
    retiring: bool
    stopping: bool
    heartbeat_age: float  # seconds since the master last heard from it (any message)
    counters: Counters
    gauges: Gauges
    longest: LongestRequest | None

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the control socket's)."""
        c, g = self.counters, self.gauges
        return {"pid": self.pid, "age": self.age, "generation": self.generation,
                "booted": self.booted, "retiring": self.retiring, "stopping": self.stopping,
                "heartbeat_age": round(self.heartbeat_age, 3), "requests": c.requests,
                "in_flight": g.in_flight, "threads_busy": g.threads_busy,
                "threads_total": g.threads_total, "rss": g.rss, "connections": g.connections,
                "shed": c.shed, "bytes_in": c.bytes_in, "bytes_out": c.bytes_out,
                "statuses": c.statuses,
                "longest": None if self.longest is None else {
                    "method": self.longest.method, "path": self.longest.path,
                    "seconds": self.longest.seconds}}


@dataclass
class FleetTotals:
    counters: Counters
    gauges: Gauges
    workers: int          # worker processes alive (booting and stopping ones included)
    workers_booted: int   # of them, serving
    workers_target: int   # --workers, as changed by TTIN/TTOU and HUP
    restarts: dict[str, int]  # by RESTART_REASONS word

    def as_json(self) -> dict[str, Any]:
        c, g = self.counters, self.gauges
        return {"requests": c.requests, "statuses": c.statuses, "bytes_in": c.bytes_in,
                "bytes_out": c.bytes_out, "shed": c.shed, "in_flight": g.in_flight,
                "threads_busy": g.threads_busy, "threads_total": g.threads_total,
                "connections": g.connections, "rss": g.rss, "workers": self.workers,
                "workers_booted": self.workers_booted, "workers_target": self.workers_target,
                "restarts": dict(self.restarts)}


class Fleet:
    """See the module docstring."""

    def __init__(self, master: Master) -> None:
        self.master = master
        self.exit_callbacks: list[Callable[[int], None]] = []
        self._readers: dict[int, MessageReader] = {}
        self._latest: dict[int, dict[str, Any]] = {}  # pid: its last STATS message
        self._gone = Counters()  # the last totals of every worker that exited
        self.restarts = dict.fromkeys(RESTART_REASONS, 0)

    # -- fed by the arbiter -----------------------------------------------------------------

    def feed(self, w: WorkerProcess, data: bytes) -> bytes:
        """What ``w`` sent: keeps its STATS messages, returns the single-byte words."""
        reader = self._readers.get(w.pid)
        if reader is None:
            reader = self._readers[w.pid] = MessageReader()
        words, messages = reader.feed(data)
        if messages:
            self._latest[w.pid] = messages[-1]
        return words

    def exited(self, w: WorkerProcess, code: int, master_stopping: bool) -> str | None:
        """``w`` exited with ``code``: read what it sent before it went, fold its totals in and
        count the restart; returns the reason, or None when its exit was asked for."""
        self._drain(w)
        self._readers.pop(w.pid, None)
        last = self._latest.pop(w.pid, None)
        if last is not None:
            self._gone.add(_counters(last))
        reason: str | None = None
        if w.aborted:
            reason = "timeout"
        elif w.retiring:
            said = last.get("r") if last is not None else None
            reason = said if said in self.restarts else "max-requests"
        elif not (w.stopping or w.killed or master_stopping):
            reason = "crash"
        if reason is not None:
            self.restarts[reason] += 1
        for callback in self.exit_callbacks:
            callback(w.pid)
        return reason

    def _drain(self, w: WorkerProcess) -> None:
        # The exit and the channel's last bytes are separate events: the exit may come first.
        try:
            while data := w.channel.recv(65536):
                self.feed(w, data)
        except OSError:  # BlockingIOError: all read; or already closed
            pass

    # -- read by /metrics and the control socket --------------------------------------------

    def workers(self) -> list[WorkerStats]:
        now = self.master.loop.time()
        result = []
        for w in sorted(self.master.workers.values(), key=lambda w: w.age):
            last = self._latest.get(w.pid, {})
            longest = last.get("l")
            result.append(WorkerStats(
                pid=w.pid, age=w.age, generation=w.generation, booted=w.booted,
                retiring=w.retiring, stopping=w.stopping, heartbeat_age=max(0.0, now - w.last_beat),
                counters=_counters(last), gauges=_gauges(last),
                longest=LongestRequest(*longest) if longest else None))
        return result

    def totals(self) -> FleetTotals:
        counters, gauges = Counters(), Gauges()
        counters.add(self._gone)
        live = self.master.workers
        for pid, last in self._latest.items():
            if pid in live:
                counters.add(_counters(last))
                gauges.add(_gauges(last))
        return FleetTotals(counters, gauges, workers=len(live),
                           workers_booted=sum(1 for w in live.values() if w.booted),
                           workers_target=self.master.num_workers, restarts=dict(self.restarts))


def _counters(m: dict[str, Any]) -> Counters:
    c = Counters(requests=int(m.get("n", 0)), bytes_in=int(m.get("bi", 0)),
                 bytes_out=int(m.get("bo", 0)), shed=int(m.get("sh", 0)))
    for name, row, total in zip(CLASSES, m.get("h", ()), m.get("s", ())):
        if len(row) == len(BUCKETS) + 1:
            c.histogram[name] = [int(n) for n in row]
            c.seconds[name] = float(total)
    return c


def _gauges(m: dict[str, Any]) -> Gauges:
    return Gauges(in_flight=int(m.get("f", 0)), threads_busy=int(m.get("tb", 0)),
                  threads_total=int(m.get("tt", 0)), connections=int(m.get("c", 0)),
                  rss=int(m.get("rss", 0)))
