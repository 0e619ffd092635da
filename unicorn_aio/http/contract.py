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
``HttpOptions`` (http/options.py); each handler the settings and services it uses (see
``Server._make_handler``).
The concrete classes do not inherit from these protocols; mypy checks that they conform wherever
one is passed as the other, and the tests check real instances with isinstance().

Time: every duration past Config is float seconds, and ``NEVER`` (infinity) means no limit: it
adds to a loop time as a deadline that never comes, and asyncio's waits take it as it is.
Config keeps gunicorn's 0 = off; ``or_never`` converts it once, where a setting is read (in
HttpOptions, for instance).  Only the blocking waits of app threads (``Condition.wait``,
``poll``) want None for no limit: ``thread_timeout`` is that one conversion, made once by the
handler that waits.
"""

from __future__ import annotations

import asyncio
import math
import sys
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

if TYPE_CHECKING:
    from unicorn_aio.http.request import Request
    from unicorn_aio.http.services import HostServices
    from unicorn_aio.log.logger import Logger

NEVER = math.inf


def or_never(seconds: float | None) -> float:
    """A Config timeout (0 or None = no limit) as the one encoding used past Config."""
    return seconds if seconds else NEVER


def thread_timeout(seconds: float) -> float | None:
    """A timeout as ``threading.Condition.wait`` and ``select.poll`` take it (None = no limit;
    infinity overflows them)."""
    return None if seconds == NEVER else seconds


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

    @property
    def services(self) -> HostServices:
        """What a connection calls on every request (http/services.py): compiled, as the
        connections are, where the host need not be.  Unlike the rest of this seam it is a
        concrete class: a host hands out a ``HostServices`` (the compiled connections call it
        directly, and refuse any other type)."""

    def connection_made(self, conn: TrackedConnection) -> None: ...

    def connection_lost(self, conn: TrackedConnection) -> None:
        """``conn`` serves no connection any more: closed, or handed over (``detach``)."""

    def request_refused(self, status: int, seconds: float, peer: Address,
                        line: tuple[bytes, bytes, str] | None) -> None:
        """The parser refused a request with ``status``, ``seconds`` after its first byte:
        it counts in the worker's stats; with ``line`` (method, target, version: its request
        line was read and accepted), in the access log and statsd too, as gunicorn's."""


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
