"""The master's own HTTP listener (--metrics-bind): /metrics, /livez and /readyz; and
--shutdown-delay, the pause between a TERM and the stop that /readyz announces.

/metrics renders the fleet's totals (fleet.py) in Prometheus's text format, or OpenMetrics when
the scraper's Accept asks for it, written here by hand: no dependency, and a scrape of four
workers' totals renders in 127 us where prometheus_client's generate_latest over the same
numbers takes 894 us (docs/metrics.md).  With prometheus_client's multiprocess mode
(PROMETHEUS_MULTIPROC_DIR set) the app's metrics follow ours in the same answer, and each
worker that exits is marked dead (its live gauges go; its counters stay, so sums never drop).

/livez is answered by the master's loop itself: an answer means it turns.  /readyz is 200
while at least one worker serves and no stop has begun; from a TERM on it is 503, at once,
also during --shutdown-delay, while the workers go on serving.

The listener's socket exists before any worker is forked: each child closes its copies
(``forget_in_child``), so only the master ever holds the port.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from typing import Any, Callable, Protocol, cast

from unicorn_aio.errors import ConfigError
from unicorn_aio.prefork.children import WorkerProcess
from unicorn_aio.prefork.fleet import BUCKETS, CLASSES, Fleet, FleetTotals
from unicorn_aio.sockets import create_listener, listener_url

PREFIX = "unicorn_aio_"
TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
MULTIPROC_ENV = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")
MAX_HEAD = 8192         # a probe's or a scraper's request head is a few hundred bytes
CLIENT_TIMEOUT = 10.0   # seconds a client has to send its request
REBIND_PERIOD = 1.0     # after USR2: the old master holds the port until it exits
_LE = [repr(b) for b in BUCKETS] + ["+Inf"]


class Master(Protocol):
    """What the listener reads of the arbiter."""

    workers: dict[int, WorkerProcess]
    num_workers: int
    stopping: bool
    master_pid: int
    loop: asyncio.AbstractEventLoop
    cfg: Any
    log: Any


class MetricsServer:
    """/metrics, /livez and /readyz on --metrics-bind (nothing when unset), and the state of a
    delayed stop, which /readyz reports whether or not anything listens."""

    def __init__(self, master: Master, fleet: Fleet) -> None:
        self.master = master
        self.fleet = fleet
        self.draining = False  # a TERM came: /readyz says 503 from now on
        self._delayed = False
        self._sock: socket.socket | None = None
        self._server: asyncio.AbstractServer | None = None
        self._rebind: asyncio.TimerHandle | None = None
        self.clients: set[asyncio.Transport] = set()  # scrapes being answered
        self._app_metrics: Callable[[bool], bytes] | None = None

    # -- lifetime (called by the arbiter) ---------------------------------------------------

    def start(self) -> None:
        """Bind --metrics-bind, before any worker is forked; a port in use stops the start,
        except for USR2's new master, which takes the port over once the old one lets go."""
        address = self.master.cfg.metrics_bind
        if not address:
            return
        self._app_metrics = app_metrics(self.master.log)
        if self._app_metrics is not None:
            self.fleet.exit_callbacks.append(mark_dead)
        try:
            self._listen(address)
        except ConfigError:
            if not self.master.master_pid:
                raise
            self.master.log.info("Metrics: %s is the old master's until it exits; retrying "
                                 "every %.0f s", address, REBIND_PERIOD)
            self._rebind = self.master.loop.call_later(REBIND_PERIOD, self._retry, address)

    def _listen(self, address: str) -> None:
        sock = create_listener(address, backlog=64)
        self._sock = sock
        task = self.master.loop.create_task(self._serve(sock))
        task.add_done_callback(self._served)
        self.master.log.info("Metrics at: %s/metrics", listener_url(sock))

    async def _serve(self, sock: socket.socket) -> None:
        self._server = await self.master.loop.create_server(
            lambda: Endpoint(self), sock=sock, start_serving=True)

    def _served(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.master.log.error("Metrics: cannot serve: %s", task.exception())

    def _retry(self, address: str) -> None:
        self._rebind = None
        try:
            self._listen(address)
        except ConfigError:
            if not self.master.stopping:
                self._rebind = self.master.loop.call_later(REBIND_PERIOD, self._retry, address)

    def forget_in_child(self) -> None:
        """In a forked worker: close the listener and any scrape in progress, which are the
        master's (the parent's loop, never run here, keeps its records of them)."""
        if self._sock is not None:
            self._sock.close()
        for transport in self.clients:
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.fileno() >= 0:
                os.close(sock.fileno())
        self.clients = set()

    def close(self) -> None:
        if self._rebind is not None:
            self._rebind.cancel()
        if self._server is not None:
            self._server.close()
        elif self._sock is not None:
            self._sock.close()
        for transport in list(self.clients):
            transport.abort()

    def delay_stop(self) -> bool:
        """A TERM: True while it is to be delayed (--shutdown-delay), the stop to come when the
        delay is over, as another TERM; False when the graceful stop starts now."""
        self.draining = True
        delay = self.master.cfg.shutdown_delay
        if not delay or self._delayed:
            return False
        self._delayed = True  # a second TERM, or the one below, stops at once
        self.master.log.info("Shutdown delayed %ss (--shutdown-delay): /readyz answers 503, "
                             "workers serve on", delay)
        # Through the signal handler, like the operator's: the supervisor handles it in turn.
        self.master.loop.call_later(delay, os.kill, os.getpid(), signal.SIGTERM)
        return True

    # -- answers ----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        m = self.master
        return not (m.stopping or self.draining) and any(
            w.booted and not w.stopping for w in m.workers.values())

    def answer(self, path: str, accept: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET of ``path``."""
        if path == "/livez":
            return 200, "text/plain", b"ok\n"
        if path == "/readyz":
            if self.ready:
                return 200, "text/plain", b"ready\n"
            return 503, "text/plain", b"stopping\n" if self.draining or self.master.stopping \
                else b"no worker serving yet\n"
        if path == "/metrics":
            openmetrics = "application/openmetrics-text" in accept
            body = render(self.fleet.totals(), openmetrics)
            if self._app_metrics is not None:
                try:
                    body += self._app_metrics(openmetrics)
                except Exception as exc:  # a corrupt file of the app's must not hide ours
                    self.master.log.warning("Metrics: the app's metrics failed: %s", exc)
            if openmetrics:
                body += b"# EOF\n"
            return 200, OPENMETRICS if openmetrics else TEXT, body
        return 404, "text/plain", b"not found: /metrics, /livez, /readyz\n"


class Endpoint(asyncio.Protocol):
    """One client of the listener: a GET or HEAD, answered, then the connection closed."""

    def __init__(self, server: MetricsServer) -> None:
        self.server = server
        self.head = b""
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = stream = cast(asyncio.Transport, transport)  # uvloop's: not a subclass
        self.server.clients.add(stream)
        self.timer = self.server.master.loop.call_later(CLIENT_TIMEOUT, stream.abort)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.server.clients.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > MAX_HEAD:
                self._respond(431, "text/plain", b"request head too large\n", True)
            return
        lines = self.head[:end].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self._respond(400, "text/plain", b"bad request\n", True)
            return
        method, target = parts[0], parts[1]
        accept = ""
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "accept":
                accept = value.strip()
        if method not in ("GET", "HEAD"):
            self._respond(405, "text/plain", b"GET or HEAD\n", method != "HEAD")
            return
        status, ctype, body = self.server.answer(target.partition("?")[0], accept)
        self._respond(status, ctype, body, method == "GET")

    def _respond(self, status: int, ctype: str, body: bytes, with_body: bool) -> None:
        assert self.transport is not None
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                  431: "Request Header Fields Too Large", 503: "Service Unavailable"}[status]
        extra = "Allow: GET, HEAD\r\n" if status == 405 else ""
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\n{extra}Cache-Control: no-store\r\n"
                f"Connection: close\r\n\r\n").encode("latin-1")
        self.transport.write(head + body if with_body else head)
        self.transport.close()


# -- the exposition ---------------------------------------------------------------------------

def render(t: FleetTotals, openmetrics: bool = False) -> bytes:
    """The fleet's series in Prometheus's text format 0.0.4, or OpenMetrics 1.0 (without its
    final ``# EOF``, which goes after the app's metrics)."""
    c, g = t.counters, t.gauges
    out: list[str] = []

    def family(name: str, kind: str, help_: str) -> str:
        full = PREFIX + name
        # OpenMetrics names a counter's family without the _total its samples carry.
        shown = full.removesuffix("_total") if openmetrics and kind == "counter" else full
        out.append(f"# HELP {shown} {help_}\n# TYPE {shown} {kind}\n")
        return full

    def one(name: str, kind: str, help_: str, value: float) -> None:
        out.append(f"{family(name, kind, help_)} {value}\n")

    statuses = c.statuses
    shown = [k for k in CLASSES if k != "other" or statuses[k]]
    name = family("requests_total", "counter", "Requests answered, by status class.")
    out.extend(f'{name}{{status="{k}"}} {statuses[k]}\n' for k in shown)
    name = family("request_duration_seconds", "histogram",
                  "Seconds from a request's first byte to its response's last, by status class.")
    for k in shown:
        running = 0
        for le, n in zip(_LE, c.histogram[k]):
            running += n
            out.append(f'{name}_bucket{{status="{k}",le="{le}"}} {running}\n')
        out.append(f'{name}_count{{status="{k}"}} {running}\n'
                   f'{name}_sum{{status="{k}"}} {c.seconds[k]!r}\n')
    one("requests_in_flight", "gauge", "Requests being answered now.", g.in_flight)
    one("workers", "gauge", "Worker processes alive.", t.workers)
    one("workers_booted", "gauge", "Worker processes serving.", t.workers_booted)
    one("workers_target", "gauge", "Worker processes wanted (--workers, TTIN, TTOU).",
        t.workers_target)
    name = family("worker_restarts_total", "counter", "Workers replaced, by reason.")
    out.extend(f'{name}{{reason="{r}"}} {n}\n' for r, n in t.restarts.items())
    one("threads_busy", "gauge", "App threads running a request.", g.threads_busy)
    one("threads", "gauge", "App threads the workers may run.", g.threads_total)
    one("connections", "gauge", "Client connections open.", g.connections)
    one("connections_shed_total", "counter",
        "Connections closed to make room at --worker-connections.", c.shed)
    one("request_body_bytes_total", "counter", "Request body bytes received.", c.bytes_in)
    one("response_body_bytes_total", "counter", "Response body bytes sent.", c.bytes_out)
    one("workers_resident_memory_bytes", "gauge", "Resident memory of the workers, summed.",
        g.rss)
    return "".join(out).encode()


def app_metrics(log: Any) -> Callable[[bool], bytes] | None:
    """prometheus_client's multiprocess collector over PROMETHEUS_MULTIPROC_DIR, rendering the
    app's metrics in either format; None when that mode is not on."""
    if not any(os.environ.get(name) for name in MULTIPROC_ENV):
        return None
    try:
        from prometheus_client import CollectorRegistry
        from prometheus_client.exposition import generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector
        from prometheus_client.openmetrics.exposition import generate_latest as om_latest
    except ImportError:
        log.warning("Metrics: PROMETHEUS_MULTIPROC_DIR is set but prometheus_client is not "
                    "installed: /metrics has the server's metrics only")
        return None
    registry = CollectorRegistry()
    MultiProcessCollector(registry)

    def render_app(openmetrics: bool) -> bytes:
        if openmetrics:
            return om_latest(registry).removesuffix(b"# EOF\n")
        return generate_latest(registry)
    return render_app


def mark_dead(pid: int) -> None:
    """A worker exited: drop its live gauges from PROMETHEUS_MULTIPROC_DIR."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)
