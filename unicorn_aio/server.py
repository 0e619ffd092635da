"""The serving side of one process: listeners, connections, the app thread pool, timeouts.

A worker runs one ``Server``; so does an asyncio program that embeds unicorn_aio::

    server = unicorn_aio.Server(app, bind="127.0.0.1:0")
    task = asyncio.create_task(server.serve())
    await server.ready.wait()
    print(server.addresses)          # ['127.0.0.1:41234']
    ...
    await server.shutdown()          # graceful: in-flight requests finish

or simply ``await unicorn_aio.serve(app, bind=...)``, which returns when cancelled.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, Any, Callable, Coroutine

from unicorn_aio import __version__
from unicorn_aio.config.config import Config
from unicorn_aio.errors import ConfigError
from unicorn_aio.http.contract import (
    Address,
    AppHandler,
    TrackedConnection,
)
from unicorn_aio.http.options import HttpOptions
from unicorn_aio.http.protocol import HttpProtocol
from unicorn_aio.http.response import ServerHeaders, status_line
from unicorn_aio.http.services import HostServices
from unicorn_aio.http.shedding import Candidates, evict
from unicorn_aio.http2.negotiate import connection_factory
from unicorn_aio.http2.protocol import H2Protocol
from unicorn_aio.log.access import refused_environ
from unicorn_aio.sockets import bind_all, describe, unix_files, unlink_own_files
from unicorn_aio.wsgi.threadpool import ThreadPool, make_pool

if TYPE_CHECKING:
    import ssl

    from unicorn_aio.log.logger import Logger

# Connection timeouts are checked by one sweep a second instead of a timer per connection:
# a timer per request costs more than one sweep over every idle connection.
SWEEP_INTERVAL = 1.0

# A worker whose app threads are all busy stops accepting once they have been busy throughout
# this long, not at once: a pause closes the listeners and a resume makes them again (a task
# and eight syscalls), and with one thread a hello worker under load goes busy and idle with
# every request (it paused once every 8 requests, 5 workers, wrk -c100).  A new connection
# waits at most this long for a sibling to take it.
BUSY_GRACE = 0.005

# Response bytes the kernel takes per connection before it has sent them (TCP_NOTSENT_LOWAT, set
# on the listening socket and inherited by each accepted one).  Unset, a client that does not
# read (slow read) has up to tcp_wmem's 4 MB copied into the kernel: 1000 of them took a worker's
# loop seconds of send() for a 1 MiB response each.  With it the rest waits in the transport,
# which holds the app's bytes without copying; bytes in flight are not limited.
NOTSENT_LOWAT = 128 * 1024


class Server:
    """The serving side of one process; the ``ConnectionHost`` (http/contract.py) of every
    connection it accepts."""

    def __init__(self, app: object, cfg: Config | None = None, *, log: Logger | None = None,
                 sockets: list[socket.socket] | None = None, **settings: Any) -> None:
        if cfg is None:
            cfg = Config(**settings)
        elif settings:
            for name, value in settings.items():
                cfg.set(name, value)
        self.app = app
        self.cfg = cfg
        if log is None:
            from unicorn_aio.log import logger_for
            log = logger_for(cfg)
        self.log = log
        self.sockets = sockets
        self.own_sockets = sockets is None
        # Close the listening sockets on shutdown: ours, or a worker's inherited copies.
        self.close_listeners = self.own_sockets
        self.shutting_down = False  # connections accepted from now on get Connection: close
        self._loop: asyncio.AbstractEventLoop | None = None  # from start() on
        self.pool: ThreadPool | None = None
        self.handler: AppHandler | None = None
        self.interface: str | None = None  # wsgi or asgi, once the handler is made
        # An HttpProtocol, or the WebSocket that took its connection over.
        self.connections: set[TrackedConnection] = set()
        self.ready = asyncio.Event()
        # Counts and records each request, flushes held output: compiled (http/services.py).
        self.services = HostServices(log)
        self.refused_total = 0  # refused by the parser: not toward --max-requests (gunicorn's)
        self.worker: object = None  # the Worker, for gunicorn's request hooks; None when embedded
        self.software = f"unicorn_aio/{__version__}"
        self.is_ssl = bool(cfg.is_ssl)  # gunicorn's test: a certfile or a keyfile asks for TLS
        self.options = HttpOptions.from_config(cfg)  # what every connection reads
        self.server_headers = ServerHeaders(self.software)  # Date and Server, for every response
        self.max_connections = cfg.worker_connections or 0
        self.shed_total = 0  # connections closed to make room at max_connections (shedding.py)
        self._no_room = False  # at max_connections, none could be shed when last looked
        self._candidates = Candidates()  # to shed at max_connections
        self._listeners: list[asyncio.AbstractServer] = []
        self._accepting = False
        self._listen_task: asyncio.Task | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._busy_timer: asyncio.TimerHandle | None = None  # see BUSY_GRACE
        self._free_seen = False  # a thread came free since the busy timer started
        self._stopped: asyncio.Future | None = None
        self._new_connection: Callable[[], HttpProtocol] | None = None  # the protocol factory
        self._busy_aware = cfg.workers > 1 or cfg.reuse_port
        self._unix_files: dict[str, tuple[int, int]] = {}  # unix sockets we bound, to unlink

    # -- start ------------------------------------------------------------------------------

    @property
    def requests_total(self) -> int:
        """Requests answered (not those the parser refused).  The count, the worker's stats and
        its max-requests callback live on ``services``, which the connections call."""
        return self.services.requests_total

    @property
    def addresses(self) -> list[str]:
        return [describe(s) for s in self.sockets or []]

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop ``start()`` runs on."""
        if self._loop is None:
            raise RuntimeError("the server is not started: await start() or serve() first")
        return self._loop

    async def start(self) -> None:
        """Bind, load and start accepting; raises if any of it fails (a port in use, an app of
        the wrong kind, a failed lifespan startup).  ``serve()`` after ``start()`` serves on."""
        if self.ready.is_set() and self._stopped is not None and not self._stopped.done():
            return  # already started: serve() after start()
        self.ready.clear()
        self._loop = self.services.loop = loop = asyncio.get_running_loop()
        self._stopped = loop.create_future()
        self.pool = pool = make_pool(loop, self.cfg.threads, self.cfg.max_threads)
        # Refuses an app it cannot serve, before binding.
        self.handler = handler = self._make_handler(loop, pool)
        # HttpProtocol, or with HTTP/2 offered the one that negotiates it (http2/negotiate.py)
        self._new_connection = connection_factory(self.cfg, self, handler, self.options)
        if self.sockets is None:
            self.sockets = bind_all(self.cfg)
            self._unix_files = unix_files(self.sockets)
        for sock in self.sockets:
            limit_unsent(sock)
        self.log.batch_access_lines(loop)
        if self._busy_aware:
            pool.on_load_change = self._update_accepting
        pool.after_callbacks = self.services.flush_all  # see http/output.py
        await handler.startup()  # ASGI lifespan: before the first connection is accepted
        self.ssl_context = self._ssl_context()
        self._tick()
        await self._listen()
        self.ready.set()

    def _make_handler(self, loop: asyncio.AbstractEventLoop, pool: ThreadPool) -> AppHandler:
        """The app's handler, given what it uses: the one place that knows both kinds."""
        from unicorn_aio.apploader import interface_mismatch, is_asgi_app

        app = self.app
        if not callable(app):
            raise TypeError(f"cannot serve {app!r}: an app is a callable, "
                            f"app(environ, start_response) or async app(scope, receive, send)")
        cfg = self.cfg
        interface = cfg.interface
        if interface == "auto":
            interface = "asgi" if is_asgi_app(app) else "wsgi"
        else:
            problem = interface_mismatch(app, interface)
            if problem:
                raise ValueError(f"cannot serve {app!r}: {problem} (interface={interface!r})")
        self.interface = interface
        if interface == "asgi":
            from unicorn_aio.asgi.handler import ASGIHandler
            return ASGIHandler(app, cfg, log=self.log, loop=loop, headers=self.server_headers,
                               is_ssl=self.is_ssl, body_timeout=self.options.body_timeout)
        from unicorn_aio.wsgi.handler import WSGIHandler
        return WSGIHandler(app, cfg, log=self.log, pool=pool, headers=self.server_headers,
                           is_ssl=self.is_ssl, body_timeout=self.options.body_timeout,
                           worker=self.worker)

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.is_ssl:
            return None
        from unicorn_aio.tls import ssl_context
        return ssl_context(self.cfg)

    async def serve(self) -> None:
        """Serve until cancelled or until ``shutdown()``; shuts down gracefully either way."""
        try:
            await self.start()
            assert self._stopped is not None  # made by start()
            await self._stopped
        finally:
            await _finish_uncancelled(self.shutdown())

    # -- accepting --------------------------------------------------------------------------

    async def _listen(self) -> None:
        if self._accepting:
            return
        assert self._new_connection is not None and self.sockets is not None  # start()
        self._accepting = True
        for sock in self.sockets:
            # A dup per asyncio server: closing it to pause accepting leaves the real listening
            # socket, and its kernel queue, open for the sibling workers.
            listener = await self.loop.create_server(
                self._new_connection, sock=sock.dup(), backlog=self.cfg.backlog,
                ssl=self.ssl_context, start_serving=True)
            self._listeners.append(listener)

    def pause_accepting(self) -> None:
        if not self._accepting:
            return
        self._accepting = False
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()

    def resume_accepting(self) -> None:
        if not self._accepting and self._listen_task is None and self._stopped is not None \
                and not self._stopped.done() and not self.shutting_down:
            self._listen_task = self.loop.create_task(self._listen())
            self._listen_task.add_done_callback(self._listen_done)

    def _listen_done(self, task: asyncio.Task[None]) -> None:
        self._listen_task = None
        if not task.cancelled() and task.exception() is not None:
            self.log.error("cannot resume accepting: %s", task.exception())
        elif self._accepting:
            # A pause asked for while the task waited to run found nothing to pause: ask again.
            self._update_accepting()

    def hand_off(self) -> None:
        """This worker is on its way out and siblings serve: stop accepting for good, and close
        each HTTP connection after the response it is on, so its clients come back to a
        sibling (the master's HAND_OFF)."""
        self.shutting_down = True
        self.pause_accepting()
        for conn in list(self.connections):
            if isinstance(conn, (HttpProtocol, H2Protocol)):  # a WebSocket finishes on its own
                conn.shutdown()

    def _update_accepting(self) -> None:
        """Stop accepting while full (at max_connections with none to shed) or busy (every app
        thread, throughout BUSY_GRACE), so the kernel hands new connections to idle siblings."""
        full = self._no_room and len(self.connections) >= self.max_connections
        busy = self._busy()
        if not busy:
            self._free_seen = True
        if self._accepting:
            if full:
                self.pause_accepting()
            elif busy and self._busy_timer is None:
                self._free_seen = False
                self._busy_timer = self.loop.call_later(BUSY_GRACE, self._still_busy)
        elif not full and not busy:
            self.resume_accepting()

    def _busy(self) -> bool:
        pool = self.pool
        return self._busy_aware and pool is not None and pool.in_flight >= pool.max_size

    def _still_busy(self) -> None:
        self._busy_timer = None
        if not self._accepting or not self._busy():
            return
        if self._free_seen:  # busy again, not throughout: look again later
            self._free_seen = False
            self._busy_timer = self.loop.call_later(BUSY_GRACE, self._still_busy)
        else:
            self.pause_accepting()

    # -- connection bookkeeping (ConnectionHost: called by the connections) -----------------

    def connection_made(self, conn: TrackedConnection) -> None:
        self.connections.add(conn)
        if self.max_connections and len(self.connections) >= self.max_connections:
            # A WebSocket registers before the connection it takes over leaves: no newcomer.
            self._make_room(newcomer=isinstance(conn, HttpProtocol))

    def _make_room(self, newcomer: bool, rank_again: bool = False) -> None:
        """At max_connections: past it, shed a connection for the newcomer, which is served
        instead of waiting in the backlog; with none to shed, stop accepting until one closes or
        can be shed (each sweep looks again)."""
        shed = self._candidates.first(self.connections, self.loop.time(), rank_again)
        self._no_room = shed is None
        if shed is not None and newcomer and len(self.connections) > self.max_connections:
            self.shed_total += 1
            self.log.debug("shed the connection from %s to make room (%d connections)",
                           shed.peername, self.max_connections,
                           extra={"metric": "unicorn_aio.connections.shed", "value": 1,
                                  "mtype": "counter"})
            evict(shed)
        self._update_accepting()

    def connection_lost(self, conn: TrackedConnection) -> None:
        self.connections.discard(conn)
        if not self._accepting:
            self._update_accepting()

    def request_refused(self, status: int, seconds: float, peer: Address,
                        line: tuple[bytes, bytes, str] | None) -> None:
        self.refused_total += 1
        stats = self.services.stats
        if stats is not None:
            stats.record(str(status), seconds, 0, 0)
        if line is not None and self.log.access_enabled:  # gunicorn's body size: 0
            self.log.access(refused_environ(line, peer), status_line(status), [], 0, seconds)

    # -- time -------------------------------------------------------------------------------

    def _tick(self) -> None:
        # Next sweep first: a failure below must not stop the timeouts for the worker's life.
        loop = self.loop
        self._sweeper = loop.call_later(SWEEP_INTERVAL, self._tick)
        self.server_headers.refresh()
        now = loop.time()
        expired = []
        for conn in self.connections:
            if conn.deadline <= now:
                expired.append(conn)
            elif conn.quiet:
                conn.shed()
            else:
                conn.quiet = True  # until its next byte
        for conn in expired:
            conn.on_timeout()
        if self.max_connections and len(self.connections) >= self.max_connections:
            # At the limit, whether any can be shed changes as connections go idle or busy.
            self._make_room(newcomer=False, rank_again=True)

    # -- stop -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask ``serve()`` to return (after a graceful shutdown)."""
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stop accepting, let in-flight requests finish (up to ``graceful_timeout``), close."""
        self.stop()
        loop = self._loop
        if loop is None:
            return  # never started
        if timeout is None:
            timeout = self.cfg.graceful_timeout
        self.shutting_down = True
        self.pause_accepting()
        if self._listen_task is not None:
            self._listen_task.cancel()
        if self.close_listeners and self.sockets:
            sockets = self.sockets
            # Awaits when the backlog is not empty: serve()'s own shutdown, racing this one,
            # may have closed and let go of the sockets meanwhile.
            await self._accept_backlog()
            for sock in sockets:
                sock.close()
            # Ours are bound again by a later start(); given ones are gone for good.
            self.sockets = None if self.own_sockets else []
            if self.own_sockets:
                unlink_own_files(self._unix_files)
        # uvloop calls connection_made one loop turn after an accept: let connections accepted
        # just before we stopped register, or they would look like nothing and die with us.
        for _ in range(2):
            await asyncio.sleep(0)
        for conn in list(self.connections):
            conn.shutdown()
        deadline = loop.time() + timeout
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.transport.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._busy_timer is not None:
            self._busy_timer.cancel()
            self._busy_timer = None
        if self.pool is not None:
            self.pool.shutdown(wait=False)
        if self.handler is not None:
            await self.handler.shutdown()  # ASGI: leftover app tasks, then lifespan shutdown
        # App threads still running past the grace period log on their own from here on.
        self.log.batch_access_lines(None)

    async def _accept_backlog(self) -> None:
        """Take the connections the kernel already completed, before closing the listeners.

        Their clients have sent (or are sending) requests; closing a listener with a
        non-empty accept queue resets them all.  Once every process has closed its copy,
        new clients get a clean 'connection refused' instead.
        """
        new_connection = self._new_connection
        if new_connection is None or self.sockets is None:
            return  # start() failed before there was a handler to serve them
        for sock in self.sockets:
            while True:
                try:
                    conn, _ = sock.accept()
                except OSError:  # BlockingIOError: the queue is empty
                    break
                try:
                    await self.loop.connect_accepted_socket(
                        new_connection, conn, ssl=self.ssl_context)
                except OSError:
                    conn.close()


async def _finish_uncancelled(coro: Coroutine[Any, Any, None]) -> None:
    """Await ``coro`` to its end even if the awaiting task is cancelled (again) meanwhile, then
    raise that cancellation.

    A bare ``await asyncio.shield(...)`` gives up at the next cancel: a supervisor cancelling
    twice, or an anyio cancel scope that cancels every iteration, and serve() returned at once,
    its caller closing the loop under the requests the graceful shutdown was letting finish.
    The graceful timeout bounds the wait; cancelling the shutdown itself (asyncio.run's final
    sweep after a second Ctrl-C) still ends it at once.
    """
    task = asyncio.ensure_future(coro)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True
    task.result()
    if cancelled:
        raise asyncio.CancelledError


def limit_unsent(sock: socket.socket) -> None:
    """NOTSENT_LOWAT on a TCP listening socket, where the platform has the option."""
    option = getattr(socket, "TCP_NOTSENT_LOWAT", None)
    if option is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, option, NOTSENT_LOWAT)
    except OSError:
        pass


async def serve(app: object, bind: str | list[str] = "127.0.0.1:8000", **settings: Any) -> None:
    """Serve ``app`` (WSGI or ASGI) on the running loop until cancelled; ``bind`` is one or a
    list."""
    if settings.get("workers", 1) != 1:
        raise ConfigError("serve() runs in the calling process: workers must be 1 "
                          "(use python -m unicorn_aio for a pre-fork master)")
    await Server(app, bind=bind, **settings).serve()
