"""ASGI 3 on the worker's event loop: one task per request, no threads.

``ASGIHandler.start`` is called on the loop when a request can run (see ``protocol.py``, and the
contract between the two in ``contract.py``).  An
HTTP request gets an ``HTTPCycle``, whose task calls the app with the request's scope
(``scope.py``): the app's ``receive`` hands it the body as the protocol
feeds it (``RequestBody.watch`` wakes it), its ``send`` writes through the connection (which
holds the bytes until the loop iteration ends: http/output.py) and waits while the transport
has paused writing.  A WebSocket upgrade is handed to
``websocket.WebSocket``, which takes the connection over from the HTTP protocol.

The response on the wire is framed by ``response.py``, exactly as for WSGI.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
import traceback
from typing import TYPE_CHECKING, Any, Callable, Coroutine, Final, Sequence

from unicorn_aio.asgi.lifespan import Lifespan
from unicorn_aio.asgi.scope import Scopes, decode_path
from unicorn_aio.http.body import ClientDisconnected
from unicorn_aio.http.contract import NEVER, Address, Connection, or_never
from unicorn_aio.http.response import (
    LAST_CHUNK,
    NO_BODY_STATUS,
    Prepared,
    ServerHeaders,
    app_headers,
    clip_to_length,
    error_response,
    head_for,
    status_line,
)
from unicorn_aio.http.response import head as response_head
from unicorn_aio.http.rules import request_path

if TYPE_CHECKING:
    from unicorn_aio.asgi.websocket import WebSocket
    from unicorn_aio.config.config import Config
    from unicorn_aio.http.protocol import Request
    from unicorn_aio.log.logger import Logger

SENDFILE_CHUNK: Final = 256 * 1024


_HEADER_NAMES: Final[dict[bytes, str]] = {}  # apps send the same few names on every response


def decode_headers(headers: Any) -> list[tuple[str, str]]:
    """ASGI's byte pairs as the str pairs ``response.app_headers`` checks."""
    if type(headers) is list or type(headers) is tuple:
        try:  # the usual case in one pass: bytes, and names this server has decoded before
            return [(_HEADER_NAMES[name], value.decode("latin-1")) for name, value in headers]
        except (KeyError, TypeError, ValueError, AttributeError):
            pass  # a new name, or not bytes: the loop below learns it, or says what is wrong
    names = _HEADER_NAMES
    try:
        decoded = []
        for name, value in headers:
            if type(name) is not bytes:
                name = bytes(name)
            text = names.get(name)
            if text is None:
                text = name.decode("latin-1")
                if len(names) < 1024:
                    names[name] = text
            decoded.append((text, bytes(value).decode("latin-1")
                            if type(value) is not bytes else value.decode("latin-1")))
        return decoded
    except (TypeError, ValueError):
        raise ValueError(f"invalid ASGI response headers {headers!r}: expected "
                         "an iterable of [bytes, bytes]") from None


# (status, tuple of the header pairs) -> Prepared: apps answer with the same status and headers
# again and again, and a repeat costs one lookup instead of decoding and checking them.  Bounded
# as response.prepare's is: an app whose headers vary per response fills it once, then pays.
# Compared on every request, and imported from a module that is not compiled: as a Final name
# the compiled build reads it from a C static, not from this module's dict.
_NEVER: Final = NEVER
_PREPARED: Final[dict[tuple[int, tuple[Any, ...]], Prepared]] = {}
_PREPARED_MAX: Final = 512


def prepare(status: Any, headers: Any) -> Prepared | None:
    """An ``http.response.start``'s status and headers checked, as ``response.Prepared``, when
    they are the usual kind (an int status from 200, a list of hashable pairs); None for any
    other, which ``send()`` checks as it comes.  Raises ValueError as status_line,
    decode_headers and app_headers do."""
    # The type first: 200.0 and True are equal to ints, and would find their entries.  1xx is
    # no final status, which Prepared (check_status) refuses.
    if type(status) is not int or type(headers) is not list or status < 200:
        return None
    try:
        key = (status, tuple(headers))
        prepared = _PREPARED.get(key)
    except TypeError:  # an unhashable pair (a list): checked as it comes
        return None
    if prepared is None:
        prepared = Prepared(status_line(status), decode_headers(headers))
        if len(_PREPARED) < _PREPARED_MAX:
            _PREPARED[key] = prepared
    return prepared


def awaiting(call: Any) -> str:
    """Where an app's call waits, as a traceback: its chain of awaits, which ``Task.get_stack``
    does not follow past the first coroutine (nor into one whose task began in compiled code,
    which has no frames: hence the app's call, not the request's task)."""
    frames = []
    step = call
    while step is not None:
        frame = getattr(step, "cr_frame", None) or getattr(step, "gi_frame", None)
        if frame is None:
            break  # a future, or a coroutine that has finished
        frames.append((frame, frame.f_lineno))
        step = getattr(step, "cr_await", None) or getattr(step, "gi_yieldfrom", None)
    return "".join(traceback.StackSummary.extract(frames).format()).rstrip("\n")


class ASGIHandler:
    """Starts an ``HTTPCycle`` (or a WebSocket) for each request; holds the shared state.

    The ``AppHandler`` of http/contract.py for ASGI apps."""

    # A client's FIN is its disconnect (see HttpProtocol.eof_received): async apps wait on
    # clients for a long time, and must be told when one is gone.
    eof_is_disconnect = True

    def __init__(self, app: Callable[..., Any], cfg: Config, *, log: Logger,
                 loop: asyncio.AbstractEventLoop, headers: ServerHeaders, is_ssl: bool,
                 body_timeout: float) -> None:
        self.app = app
        self.log = log
        self.loop = loop
        self.server_headers = headers
        self.http_scheme, self.ws_scheme = ("https", "wss") if is_ssl else ("http", "ws")
        self.body_timeout = body_timeout  # seconds receive() waits for body bytes; NEVER: none
        self.request_timeout = or_never(cfg.asgi_request_timeout)  # a request task's lifetime
        self.lifespan = Lifespan(app, cfg.lifespan, log)
        # scope(kind, protocol, req, scheme): a request's scope (asgi/scope.py)
        self.scope = Scopes(self.http_scheme, cfg.mount_point, self.lifespan.state).make
        # As ever for --graceful-timeout here, 0 lets the app's lifespan shutdown take its time.
        self.lifespan_timeout = or_never(cfg.graceful_timeout)
        # strong references: the loop keeps weak ones
        self.tasks: set[asyncio.Task[None]] = set()
        self._forget = self.tasks.discard  # one bound method for every task's done callback
        self.websocket_max_size: float = cfg.websocket_max_size or math.inf  # 0: no limit
        self._ws_class: type[WebSocket] | None = None
        self._ws_warned = False

    # -- lifespan (Server.start / Server.shutdown) ------------------------------------------

    @property
    def state(self) -> dict[str, Any]:
        return self.lifespan.state

    async def startup(self) -> None:
        await self.lifespan.startup()

    async def shutdown(self) -> None:
        """After the connections are gone: app tasks still running have no client left
        (a long-poll whose client left), so they are cancelled before lifespan shutdown."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
            # A request's task cancelled before its first step never ran run(), whose end
            # takes it out of ``tasks``.
            self.tasks.difference_update([task for task in tasks if task.done()])
        await self.lifespan.shutdown(self.lifespan_timeout)

    # -- requests ---------------------------------------------------------------------------

    def loop_callback(self, fn: Callable[[], None]) -> Callable[[], None]:
        return fn  # the app reads the body on the loop itself

    def start(self, conn: Connection, req: Request) -> None:
        if req.framing.upgrade and req.method == b"GET" and self._websocket_class(req):
            # The parser raises its upgrade signal only after this callback returns; the
            # bytes after the head are on ``req.upgrade`` by the time this runs.
            self.loop.call_soon(self._start_websocket, conn, req)
            return
        self._start_http(conn, req)

    def _start_http(self, conn: Connection, req: Request) -> None:
        cycle = req.cycle = HTTPCycle(self, conn, req)
        # Not spawn(): run() leaves ``tasks`` itself, which spares every request a done
        # callback the loop would schedule and run an iteration later.
        task = cycle.task = self.loop.create_task(cycle.run())
        self.tasks.add(task)
        if self.request_timeout != _NEVER:  # run() cancels it as it ends
            cycle.timer = self.loop.call_later(self.request_timeout, cycle.expire, task)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._forget)
        return task

    def _websocket_class(self, req: Request) -> type[WebSocket] | None:
        if not any(n.lower() == b"upgrade" and v.strip().lower() == b"websocket"
                   for n, v in req.headers):
            return None
        if self._ws_class is None:
            try:
                from unicorn_aio.asgi.websocket import WebSocket
            except ImportError:
                if not self._ws_warned:
                    self._ws_warned = True
                    self.log.warning("WebSocket upgrade refused: wsproto is not installed "
                                     "(pip install 'unicorn_aio[asgi]'); answering as HTTP")
                return None
            self._ws_class = WebSocket
        return self._ws_class

    def _start_websocket(self, conn: Connection, req: Request) -> None:
        if not conn.answering(req):
            return  # the connection is gone
        if req.upgrade is None:  # the parser did not switch protocols after all
            self._start_http(conn, req)
            return
        assert self._ws_class is not None  # start() found it
        conn.detach(req, self._ws_class(self, conn, req))

    def access_environ(self, peer: Address, req: Request) -> dict[str, Any]:
        """The WSGI-style environ the access logger reads."""
        raw_path, query = request_path(req.url)
        env = {
            "REQUEST_METHOD": req.method.decode("ascii"),
            "RAW_URI": req.url.decode("latin-1"),
            "PATH_INFO": decode_path(raw_path),
            "QUERY_STRING": query.decode("latin-1"),
            "SERVER_PROTOCOL": "HTTP/2.0" if req.version == "2" else "HTTP/" + req.version,
            "REMOTE_ADDR": peer[0] if isinstance(peer, tuple) else "",
            "REMOTE_PORT": str(peer[1]) if isinstance(peer, tuple) else "",
        }
        for name, raw in req.headers:
            key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
            value = raw.decode("latin-1")
            env[key] = env[key] + "," + value if key in env else value
        return env


class HTTPCycle:
    """One HTTP request's trip through an ASGI app, on the loop; the ``RequestCycle`` of
    http/contract.py."""

    __slots__ = ("handler", "protocol", "req", "task", "status", "headers",
                 "content_length", "keep_alive", "chunked", "started", "head_sent", "complete",
                 "failed", "lost", "paused", "sent", "body_done", "waiter", "writable",
                 "start_time", "bodyless", "own_headers", "trailers", "prepared", "timer",
                 "app_call")
    task: asyncio.Task[None]  # the task run() is: set by ASGIHandler._start_http
    timer: asyncio.TimerHandle  # --asgi-request-timeout's, set there when it is on

    def __init__(self, handler: ASGIHandler, protocol: Connection, req: Request) -> None:
        self.handler = handler
        self.protocol = protocol
        self.req = req
        self.status: str | None = None
        # What the head sends of the app's (Prepared's tuple, or a list): replaced, never changed
        self.headers: Sequence[tuple[str, str]] = ()
        self.content_length: int | None = None
        self.own_headers: frozenset | None = None  # which of Date and Server the app set
        self.prepared: Prepared | None = None  # http.response.start's, when prepare() took it
        self.keep_alive = req.keep_alive
        self.chunked = False
        self.started = False  # http.response.start received
        self.head_sent = False  # written: until then an error can still become a 500
        self.complete = False
        self.failed = False  # cut short after the head: an HTTP/2 stream resets (stream.py)
        self.lost = False
        self.paused = protocol.write_paused
        self.sent = 0
        self.body_done = False  # the last http.request message was handed out
        # receive() waiting for body or disconnect
        self.waiter: asyncio.Future[None] | None = None
        # send() waiting for the transport to take more (resume_writing)
        self.writable: asyncio.Future[None] | None = None
        self.start_time = time.time() if handler.log.access_enabled else 0.0
        self.bodyless = False
        self.trailers: list[tuple[bytes, bytes]] | None = None  # announced: collected here
        self.app_call: Any = None  # the app's coroutine, kept only under --asgi-request-timeout
        if not req.body_complete():
            req.body.watch(self._wake, protocol.resume_reading)

    async def run(self) -> None:
        handler = self.handler
        try:
            scope = handler.scope("http", self.protocol, self.req, handler.http_scheme)
            call = handler.app(scope, self.receive, self.send)
            if handler.request_timeout != _NEVER:
                self.app_call = call  # for expire's log line
            await call
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            assert task is not None  # run() is the request's task
            if task.cancelling():
                raise  # we cancelled it (shutdown, client gone): not the app's error
            # The app's own (an anyio cancel scope leaking out, say): answer, do not hang.
            self._on_error(RuntimeError(f"the ASGI app raised CancelledError: {exc}"))
        except (Exception, SystemExit, KeyboardInterrupt) as exc:
            # SystemExit and KeyboardInterrupt from one request must not take the worker and
            # every other connection on it down (uvicorn answers 500 too).
            self._on_error(exc)
        else:
            if not self.complete and not self.lost:
                self._on_error(RuntimeError(
                    "the ASGI app returned without " + ("completing its response"
                                                        if self.started else "sending a response")))
        finally:
            handler.tasks.discard(self.task)
            if handler.request_timeout != _NEVER:
                self.timer.cancel()
                self.app_call = None  # it refers back to this cycle

    # -- receive ----------------------------------------------------------------------------

    async def receive(self) -> dict:
        body = self.req.body
        while not self.body_done and not self.complete:
            try:
                data = body.read_nowait()
            except OSError:
                self.lost = True
                break
            if body.complete:
                self.body_done = True
                return {"type": "http.request", "body": data, "more_body": False}
            if data:
                return {"type": "http.request", "body": data, "more_body": True}
            if self.lost:
                break
            body.want_more()
            if not await self._wait(self.handler.body_timeout):
                self.handler.log.info("request body from %s stalled; closing",
                                      self.protocol.peername)
                self.keep_alive = False
                self.lost = True
                self.protocol.flush()
                self.protocol.transport.close()
                break
        # The whole body was handed out: what remains to report is the end of the exchange.
        while not self.lost and not self.complete:
            await self._wait(_NEVER)
        return {"type": "http.disconnect"}

    async def _wait(self, timeout: float) -> bool:
        """Until _wake (body progress, response complete, disconnect); False on timeout."""
        waiter = self.waiter = self.handler.loop.create_future()
        try:
            if timeout == _NEVER:
                await waiter
            else:
                await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            return False
        finally:
            self.waiter = None
        return True

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- send -------------------------------------------------------------------------------

    async def send(self, message: dict) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            if not self.started or self.complete:
                raise RuntimeError(f"unexpected ASGI message {kind!r}: "
                                   + ("the response is complete" if self.complete
                                      else "send 'http.response.start' first"))
            if self.lost:
                raise ClientDisconnected("client disconnected")
            more = message.get("more_body", False)
            self._write(message.get("body", b""), more)
            if more:
                if self.paused:
                    await self._until_writable()
            elif self.trailers is None:
                self._finish()
        elif kind == "http.response.start":
            if self.started:
                raise RuntimeError("unexpected ASGI message 'http.response.start': sent twice")
            if self.lost:
                raise ClientDisconnected("client disconnected")
            status, headers = message["status"], message.get("headers", ())
            prepared = self.prepared = prepare(status, headers)
            if prepared is not None:
                status = prepared.status
                self.headers = prepared.headers
                self.content_length, close = prepared.content_length, prepared.close
                self.own_headers = prepared.own
            else:
                status = status_line(status)
                self.headers, self.content_length, close, self.own_headers = app_headers(
                    decode_headers(headers))
            self.status, self.started = status, True
            self.bodyless = self.req.method == b"HEAD" or status.startswith(NO_BODY_STATUS)
            self.trailers = [] if self.req.version == "2" and message.get("trailers") else None
            if close:
                self.keep_alive = False
        elif kind == "http.response.pathsend":
            if not self.started or self.complete:
                raise RuntimeError(f"unexpected ASGI message {kind!r}")
            await self._pathsend(message["path"])
        elif kind == "http.response.trailers":
            # Sent over HTTP/2 when announced; dropped otherwise (RFC 9110 6.5.1 allows it).
            if self.trailers is not None and not self.complete:
                self.trailers += [(bytes(n).lower(), bytes(v)) for n, v in message["headers"]]
                if not message.get("more_trailers", False):
                    getattr(self.protocol.transport, "send_trailers")(self.trailers)
                    self._finish()
        else:
            raise RuntimeError(f"unexpected ASGI message type {kind!r} in an HTTP request")

    def _write(self, data: bytes, more: bool) -> None:
        head = b""
        if not self.head_sent:
            status = self.status
            assert status is not None  # send() takes a body only after http.response.start
            req = self.req
            if not more and self.content_length is None and not status.startswith(
                    NO_BODY_STATUS) and (data or req.method != b"HEAD"):
                # The whole body is in this one message: a length beats chunked framing (and
                # a HEAD answer shows the length its GET would have).
                self.content_length = len(data)
                self.headers = [*self.headers, ("content-length", str(len(data)))]
            prepared = self.prepared
            length = self.content_length
            if prepared is not None and length is not None and req.version == "1.1" and \
                    self.own_headers is None and status[:3] != "204":
                # The usual response: its head from the lines Prepared built once (what
                # response.head would build: HTTP/1.1, a known length, our Date and Server).
                self.keep_alive = keep_alive = self.keep_alive and not self.protocol.closing \
                    and req.body_complete()
                head = head_for(prepared, None if prepared.content_length is not None else length,
                                keep_alive, self.handler.server_headers.data)
            else:
                head, self.chunked, self.keep_alive = response_head(
                    req, status, list(self.headers), self.content_length,
                    self.keep_alive and not self.protocol.closing,
                    self.handler.server_headers.lines, self.own_headers)
            self.head_sent = True
        if self.bodyless:
            if head:
                self.protocol.write(head)
            return
        length = self.content_length
        if length is not None and len(data) > length - self.sent:
            data, _ = clip_to_length(data, length, self.sent, self.handler.log)
            self.keep_alive = False
        self.sent += len(data)
        out = self.protocol
        if self.chunked:
            parts = [head, b"%x\r\n" % len(data), data, b"\r\n"] if data else [head]
            if not more:
                parts.append(LAST_CHUNK)
            out.writelines(parts)
        elif not head:
            if data:
                out.write(data)
        elif len(data) < 65536:  # one copy beats a second write for small bodies
            out.write(head + data)
        else:
            out.writelines((head, data))

    async def _pathsend(self, path: str) -> None:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if self.content_length is None:
                self.content_length = size
                self.headers = [*self.headers, ("content-length", str(size))]
            if not self.bodyless:
                # Page-cache reads are short; a cold disk would stall the loop, which is why
                # large files behind slow disks belong in a reverse proxy.
                while chunk := f.read(SENDFILE_CHUNK):
                    self._write(chunk, True)
                    if self.lost:
                        raise ClientDisconnected("client disconnected")
                    if self.paused:
                        await self._until_writable()
        self._write(b"", False)
        if self.trailers is None:
            self._finish()

    async def _until_writable(self) -> None:
        while self.paused and not self.lost:
            self.writable = self.handler.loop.create_future()
            try:
                await self.writable
            finally:
                self.writable = None
        if self.lost:
            raise ClientDisconnected("client disconnected")

    def _finish(self) -> None:
        """The response is complete: hand the connection back for the next request."""
        self.complete = True
        if self.content_length is not None and self.sent < self.content_length \
                and not self.bodyless:
            self.keep_alive = False  # fewer bytes than promised: only the close tells
        if self.waiter is not None:
            self._wake()  # a receive() waiting for http.disconnect
        if self.handler.log.access_enabled:
            self._log_access()
        self.req.body.unwatch()
        self.protocol.finish_request(self.req, self.keep_alive)

    def _on_error(self, exc: BaseException) -> None:
        if self.lost:
            return  # the client left: not a server error
        self.handler.log.error("Exception in ASGI application for %s",
                               self.req.url.decode("latin-1", "replace"), exc_info=exc)
        self._fail()

    def expire(self, task: asyncio.Task[None]) -> None:
        """--asgi-request-timeout: the request's task has run too long; answer for it (as for
        an app error) and cancel it."""
        if task.done():
            return  # cancelled before its first step (a stop): run() never began to cancel us
        peer = self.protocol.peername
        client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else (peer or "a unix socket")
        self.handler.log.error(
            "ASGI request timeout: %s %s from %s ran past --asgi-request-timeout %gs; "
            "cancelled. Where it waited, most recent call last:\n%s",
            self.req.method.decode("latin-1"), self.req.url.decode("latin-1", "replace"),
            client, self.handler.request_timeout, awaiting(self.app_call))
        if not self.lost:
            self._fail()
        task.cancel()

    def _fail(self) -> None:
        """The app will not finish its response: a 500 if no head went out, else a cut body
        and the close."""
        if self.complete:
            return  # raised after the response was sent: nothing left to tell the client
        self.keep_alive = False
        self.complete = True
        self._wake()
        if not self.head_sent:
            self.status, self.headers, self.sent = "500 Internal Server Error", [], 0
            self.protocol.write(error_response(500, "", self.req.method))
            self.head_sent = True
        else:
            # Without the last-chunk, and with the close, the client knows the body is cut
            # short (RFC 9112 7.1).
            self.failed = True
        self._log_access()
        self.req.body.unwatch()
        self.protocol.finish_request(self.req, False)

    def _log_access(self) -> None:
        log = self.handler.log
        if log.access_enabled and self.status is not None:
            try:
                environ = self.handler.access_environ(self.protocol.peername, self.req)
                log.access(environ, self.status, self.headers, self.sent,
                           time.time() - self.start_time)
            except Exception:
                log.exception("Error writing the access log")

    # -- called by the protocol -------------------------------------------------------------

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        writable = self.writable
        if writable is not None and not writable.done():
            writable.set_result(None)

    def connection_lost(self) -> None:
        self.lost = True
        self._wake()
        self.resume_writing()
