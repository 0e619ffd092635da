"""The seam between the HTTP protocol and the app handlers, written down as ``typing.Protocol``.

Four parties meet at a request:

* the server, as the ``ConnectionHost`` of the connections it accepted: it keeps them (and its
  sweep times them out, through ``TrackedConnection``), counts their requests and says when it
  is stopping;
* a connection's HTTP protocol (``http/protocol.HttpProtocol``), which parses requests and hands
  each, once it can run without waiting on the client, to
* the app handler (``AppHandler``: ``wsgi/handler.WSGIHandler`` or ``asgi/handler.ASGIHandler``),
  which runs the app for it through
* a per-request object (``RequestCycle``), which the protocol tells of flow control and of the
  client leaving; it answers through the ``Connection`` the request (``http/protocol.Request``)
  came on, and calls ``finish_request`` when the response is out.

Each is handed what it reads rather than the server: the protocol its host, the handler and the
``HttpOptions``; each handler the settings and services it uses (see ``Server._make_handler``).
The concrete classes do not inherit from these protocols; mypy checks that they conform wherever
one is passed as the other, and the tests check real instances with isinstance().

Time: every duration past Config is float seconds, and ``NEVER`` (infinity) means no limit: it
adds to a loop time as a deadline that never comes, and asyncio's waits take it as it is.
Config keeps gunicorn's 0 = off; ``or_never`` converts it once, where a setting is read (here in
HttpOptions).  Only the blocking waits of app threads (``Condition.wait``, ``poll``) want None
for no limit: ``thread_timeout`` is that one conversion, made once by the handler that waits.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

from unicorn_aio.http.forwarded import AddressList, ProxyHeaders

if TYPE_CHECKING:
    from unicorn_aio.config.config import Config
    from unicorn_aio.http.request import Request
    from unicorn_aio.log.logger import Logger

NEVER = math.inf


def or_never(seconds: float | None) -> float:
    """A Config timeout (0 or None = no limit) as the one encoding used past Config."""
    return seconds if seconds else NEVER


def thread_timeout(seconds: float) -> float | None:
    """A timeout as ``threading.Condition.wait`` and ``select.poll`` take it (None = no limit;
    infinity overflows them)."""
    return None if seconds == NEVER else seconds


# (request line, header fields, one field, whole head, raw request-line window) in bytes
RequestLimits = tuple[int, int, int, int, int]


def request_limits(cfg: Config) -> RequestLimits:
    """From gunicorn's limit_request_* settings, read as gunicorn 27's code reads them: a
    request line of 0 is unlimited and one over 8190 is 8190; 0 fields (or over 32768) is
    32768; a field size of 0 is the default, 8190 (its docs say unlimited)."""
    line = min(cfg.limit_request_line, 8190)
    fields = cfg.limit_request_fields
    fields = fields if 0 < fields <= 32768 else 32768
    field_size = cfg.limit_request_field_size or 8190
    # The largest legal head: a request line plus every field at its limit.
    head = (line or 65536) + 2 + fields * (field_size + 2) + 2
    return line, fields, field_size, head, (line or 65536) + 64


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """The HTTP settings a connection reads, copied out of Config once per server: plain
    attributes, read per request without a lookup through Config."""

    keepalive: float  # seconds an idle keep-alive connection waits; 0: close after a response
    header_timeout: float  # seconds to send a whole head; NEVER: no limit
    body_timeout: float  # seconds a body may stall (and a response go unread); NEVER: no limit
    body_min_rate: int  # bytes/s a streamed body must average; 0: no minimum
    inline_body_max: int  # body bytes buffered before the app is called
    header_map: str
    forwarder_headers: frozenset[bytes]  # underscore names check_headers lets through
    proxy_headers: ProxyHeaders  # what a trusted proxy may say of a request
    proxy_allow: AddressList | None  # --proxy-protocol: peers that may send the PROXY header
    limits: RequestLimits
    permit_method: bool  # gunicorn's permit_unconventional_http_method (requestline.py)
    casefold_method: bool

    @classmethod
    def from_config(cls, cfg: Config) -> HttpOptions:
        proxy_headers = ProxyHeaders(cfg)
        return cls(
            keepalive=cfg.keepalive,
            header_timeout=or_never(cfg.header_timeout),
            body_timeout=or_never(cfg.body_timeout),
            body_min_rate=cfg.body_min_rate,
            inline_body_max=cfg.inline_body_max,
            header_map=cfg.header_map,
            forwarder_headers=proxy_headers.underscore_names,
            proxy_headers=proxy_headers,
            proxy_allow=AddressList(cfg.proxy_allow_ips) if cfg.proxy_protocol else None,
            limits=request_limits(cfg),
            permit_method=cfg.permit_unconventional_http_method,
            casefold_method=cfg.casefold_http_method,
        )


class ServerHeaders:
    """The Date and Server fields that end every response head, with its blank line, as one
    string and as its bytes: the server's sweep remakes them once a second, handlers read them
    per response."""

    __slots__ = ("software", "lines", "data")

    def __init__(self, software: str) -> None:
        self.software = software
        self.lines = ""
        self.data = b""

    def refresh(self, now: float | None = None) -> None:
        self.lines = f"Date: {http_date(now)}\r\nServer: {self.software}\r\n\r\n"
        self.data = self.lines.encode("latin-1", "replace")


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(now: float | None = None) -> str:
    """RFC 9110 5.6.7 IMF-fixdate; by hand because email.utils costs 600 KB per worker and
    strftime's names follow the locale."""
    t = time.gmtime(now)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")


# -- the protocols (runtime_checkable: isinstance() says whether every member is there) -------

# A socket address as asyncio reports it: (host, port, ...) for IP, a path for a unix socket.
Address = tuple[Any, ...] | str | None


def peer_of(transport: asyncio.BaseTransport) -> Address:
    """A connection's peer, its host string interned: behind a proxy every connection comes
    from the same host, and one string serves them all."""
    peer = transport.get_extra_info("peername")
    if type(peer) is tuple and len(peer) == 2:
        peer = (sys.intern(peer[0]), peer[1])
    return peer


@runtime_checkable
class TrackedConnection(Protocol):
    """What the server's sweep and stop use of each connection it keeps: an HTTP connection,
    or the WebSocket that took one over."""

    deadline: float  # loop time at which on_timeout is due; NEVER for none
    quiet: bool  # no byte since the last sweep: the sweep sets it, data clears it

    @property
    def transport(self) -> asyncio.Transport: ...

    def on_timeout(self) -> None: ...

    def shed(self) -> None:
        """Idle for a whole sweep: let go of what the next message can make again."""

    def shutdown(self) -> None:
        """Graceful stop: finish what is in flight, then close."""


@runtime_checkable
class ConnectionHost(Protocol):
    """What a connection calls back on the server that accepted it."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def log(self) -> Logger: ...

    @property
    def shutting_down(self) -> bool:
        """Connections accepted from now on answer with Connection: close."""

    def connection_made(self, conn: TrackedConnection) -> None: ...

    def connection_lost(self, conn: TrackedConnection) -> None:
        """``conn`` serves no connection any more: closed, or handed over (``detach``)."""

    def request_finished(self, req: Request | None = None,
                         cycle: RequestCycle | None = None) -> None:
        """``req`` is answered, by ``cycle`` (its status and bytes count in the worker's
        stats); neither is given for the request an upgrade took over."""

    def request_refused(self, status: int, seconds: float, peer: Address,
                        line: tuple[bytes, bytes, str] | None) -> None:
        """The parser refused a request with ``status``, ``seconds`` after its first byte:
        it counts in the worker's stats; with ``line`` (method, target, version: its request
        line was read and accepted), in the access log and statsd too, as gunicorn's."""

    def flush_soon(self, conn: Flushes) -> None:
        """Call ``conn.flush()`` after the callbacks of this loop iteration: one callback for
        every connection that wrote meanwhile (http/output.py)."""


@runtime_checkable
class Flushes(Protocol):
    """A connection that holds its output until the host flushes it (http/output.py)."""

    def flush(self) -> None: ...


@runtime_checkable
class RequestCycle(Protocol):
    """A handler's object for one request in flight (``Request.cycle``)."""

    @property
    def head_sent(self) -> bool:
        """The response head has gone out: an error can no longer become a 500."""

    @property
    def status(self) -> str | None:
        """The response's status line ("200 OK"), once the app gave it."""

    @property
    def sent(self) -> int:
        """Response body bytes written so far."""

    def pause_writing(self) -> None: ...

    def resume_writing(self) -> None: ...

    def connection_lost(self) -> None:
        """The client is gone: stop writing, wake whatever waits for it."""


@runtime_checkable
class Connection(Protocol):
    """What a handler and its cycles use of the connection a request came on."""

    # The handler's per-connection cache (a base environ, a scope's addresses): the connection
    # keeps it and drops it while idle (see shed); what it holds is the handler's business.
    app_state: Any

    @property
    def transport(self) -> asyncio.Transport: ...

    @property
    def peername(self) -> Address: ...

    @property
    def sockname(self) -> Address: ...

    @property
    def closing(self) -> bool:
        """The server is stopping: the response must close the connection."""

    @property
    def write_paused(self) -> bool: ...

    @property
    def host(self) -> ConnectionHost: ...

    def write(self, data: bytes) -> None:
        """Response bytes, sent in order after everything written before: held until the end
        of the loop iteration on HTTP/1.1 (http/output.py).  Write here, not to ``transport``."""

    def writelines(self, chunks: list[bytes] | tuple[bytes, ...]) -> None: ...

    def flush(self) -> None:
        """Hand what ``write`` holds to the transport now: before closing it, or waiting on its
        write buffer."""

    def answering(self, req: Request) -> bool:
        """``req`` is the request this connection answers now (and it is still open)."""

    def finish_request(self, req: Request, keep_alive: bool) -> None:
        """The whole response to ``req`` is written; ``keep_alive`` is what its head said."""

    def resume_reading(self) -> None: ...

    def detach(self, req: Request, successor: asyncio.Protocol) -> None:
        """Hand the connection over to ``successor`` after ``req`` (an upgrade accepted)."""


@runtime_checkable
class AppHandler(Protocol):
    """Runs the app (WSGI or ASGI) for each request a connection hands it."""

    # A client's FIN is its disconnect, not a half-close awaiting the answer (see
    # HttpProtocol.eof_received).
    eof_is_disconnect: bool

    async def startup(self) -> None:
        """Before the first connection is accepted (ASGI: lifespan startup)."""

    async def shutdown(self) -> None:
        """After the last connection is gone (ASGI: leftover tasks, lifespan shutdown)."""

    def start(self, conn: Connection, req: Request) -> None:
        """Run the app for ``req``, on the loop: its body is in, or streams from now on."""

    def loop_callback(self, fn: Callable[[], None]) -> Callable[[], None]:
        """``fn``, one of the connection's loop-thread methods, as the app's reader of a
        streamed body may call it (from an app thread, for WSGI)."""
