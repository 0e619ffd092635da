"""PEP 3333: running a WSGI app for one request, on an app thread or inline on the loop.

``WSGIHandler.start`` is called on the loop when a request can run.  It creates a ``WSGICycle``,
the bridge between the loop thread (which owns the transport) and the app thread (which runs the
app): the app thread never touches the transport.  Everything it sends goes through ``_emit``:

* a response the app returns whole (a list, the common case) is framed on the app thread and
  handed to the loop in one ``call_on_loop`` together with the end of the request;
* a streamed response is pushed chunk by chunk through a bounded outbox (outbox.py): the app
  thread blocks while the loop is behind on writing it.

The environ each app call receives is built in environ.py; a ``wsgi.file_wrapper`` goes out
with sendfile(2) from sendfile.py.
"""

from __future__ import annotations

import asyncio
import http
import time
from functools import partial
from typing import Any, Callable, Final, Sequence

from unicorn_aio.config import settings
from unicorn_aio.config.config import Config
from unicorn_aio.http.body import BodyTimeout, ClientDisconnected, RequestBody
from unicorn_aio.http.contract import Connection, thread_timeout
from unicorn_aio.http.protocol import Request
from unicorn_aio.http.response import (
    LAST_CHUNK,
    NO_BODY_STATUS,
    Prepared,
    ServerHeaders,
    bodyless,
    clip_to_length,
    error_response,
    head_for,
    prepare,
)
from unicorn_aio.http.response import head as response_head
from unicorn_aio.http.rules import Reject
from unicorn_aio.log.logger import Logger
from unicorn_aio.wsgi import appthread
from unicorn_aio.wsgi.environ import FileWrapper, RequestEnviron, ServerEnviron
from unicorn_aio.wsgi.hooks import HookRequest, HookResponse
from unicorn_aio.wsgi.outbox import NO_THREAD
from unicorn_aio.wsgi.threadpool import ThreadAbandoned, ThreadPool
from unicorn_aio.wsgi.watchdog import Watchdog


class WSGIHandler(ServerEnviron):
    """Starts a ``WSGICycle`` for each request: the ``AppHandler`` (http/contract.py) of WSGI."""

    eof_is_disconnect = False  # a client that half-closes still wants its answer (RFC 9112 9.6)

    def __init__(self, app: Callable[..., Any], cfg: Config, *, log: Logger, pool: ThreadPool,
                 headers: ServerHeaders, is_ssl: bool, body_timeout: float,
                 worker: object = None) -> None:
        super().__init__(cfg, software=headers.software, is_ssl=is_ssl)
        self.app = app
        self.pool = pool
        self.loop: asyncio.AbstractEventLoop = pool.loop
        self.log = log
        self.server_headers = headers
        self.worker = worker  # what gunicorn's request hooks receive as their worker
        self.inline = cfg.dispatch == "inline"
        self.ready: list[WSGICycle] = []  # inline requests parsed this loop iteration (start)
        # How long an app thread waits for a client that reads none of its response.
        self.stall_timeout = thread_timeout(body_timeout)
        self.sendfile = cfg.sendfile and not is_ssl  # sendfile(2) would bypass TLS
        # Hooks left at gunicorn's do-nothing defaults cost nothing per request.
        self.pre_request: Callable[..., object] | None = (
            None if cfg.pre_request is settings.pre_request else cfg.pre_request)
        self.post_request: Callable[..., object] | None = (
            None if getattr(cfg.post_request, "__code__", None)
            is settings.post_request.__code__ else cfg.post_request)
        # Requests stuck in app threads (watchdog.py): the frames that run one, those that wait
        # on its client (a streamed body, a slow reader): the client's time, not the app's.
        self.watchdog = Watchdog.for_config(
            cfg, self.loop, pool, log, worker, runs=(appthread.run, appthread.respond),
            waits=(appthread.wait_for_client, appthread.send_file, RequestBody.read,
                   RequestBody.readline))

    async def startup(self) -> None:
        if self.watchdog is not None:
            self.watchdog.start()

    async def shutdown(self) -> None:
        if self.watchdog is not None:
            self.watchdog.stop()

    def loop_callback(self, fn: Callable[[], None]) -> Callable[[], None]:
        # The app reads the body on an app thread: the call is carried to the loop.
        call = self.pool.call_on_loop
        return lambda: call(fn)

    def start(self, conn: Connection, req: Request) -> None:
        cycle = WSGICycle(self, conn, req)
        req.cycle = cycle
        if self.inline and req.body_complete():
            # Run after this iteration's reads, all together, then written together: reading
            # every socket first and running every app next, as the thread pool's phases do,
            # keeps each phase's code and data hot (hello, alternating runs on the busy 2-core
            # machine: 20.0k -> 24.4k rps, 47 -> 40 us of CPU a request).
            ready = self.ready
            if not ready:
                self.loop.call_soon(self.run_ready)
            ready.append(cycle)
        else:
            self.pool.submit(_partial(_run_on_thread, cycle))

    def run_ready(self) -> None:
        """Loop thread, once per iteration that parsed inline requests: run them, then write."""
        ready = self.ready
        i = 0
        while i < len(ready):  # a request pipelined behind one of these joins it as it starts
            cycle = ready[i]
            i += 1
            if cycle.lost:
                continue
            try:
                cycle.run_inline()
            except Exception:  # ours, not the app's (run_inline answers for those)
                self.log.exception("Error answering %s", cycle.req.url.decode("latin-1", "replace"))
                cycle.protocol.transport.abort()
        ready.clear()
        if self.pool.after_callbacks is not None:
            self.pool.after_callbacks()  # the server writes what they answered, now


# Per request on the thread pool's path, from modules that are not compiled: as Final names
# the compiled build reads them from C statics, not from this module's dict.
_partial: Final = partial
_run_on_thread: Final = appthread.run
_FAILED: Final = object()  # what "the app returned" when calling it raised
# Iterating these cannot block: a response object over a list (Django's HttpResponse) is joined
# and framed whole, like a list, on the loop or the app thread alike.
_SEQUENCE_ITERATORS: Final[tuple[type, ...]] = (type(iter([])), type(iter(())))



class WSGICycle(RequestEnviron):
    """One request's trip through a WSGI app; the ``RequestCycle`` of http/contract.py."""

    handler: WSGIHandler

    # Per-request state starts as these class defaults: __init__ sets only what differs, since
    # it runs for every request (hello-world throughput is mostly per-request Python).
    status: str | None = None
    # No shared default: a list here would be one list for every request.  Set with the status
    # (start_response, or an error answer); HookResponse alone may look before that.
    headers: Sequence[tuple[str, str]]
    head_sent = False
    chunked = False
    content_length: int | None = None
    sent = 0
    on_loop = False
    lost = False
    failed = False  # the app raised after the head went out
    abandoned = False  # the watchdog answered for it and gave its thread's place away
    own_headers: frozenset | None = None  # which of Date and Server the app set (app_headers)
    prepared: Prepared | None = None  # what start_response made of its arguments
    start_time = 0.0
    body_iter: Any = None  # iter() of what the app returned, once taken

    def __init__(self, handler: WSGIHandler, protocol: Connection, req: Request) -> None:
        self.handler = handler
        self.protocol = protocol
        self.req = req
        self.keep_alive = req.keep_alive
        self.paused = protocol.write_paused
        self.outbox: list[bytes] = []
        self.cond = NO_THREAD
        if handler.log.access_enabled:
            self.start_time = time.time()

    # -- the app's side of PEP 3333 ---------------------------------------------------------

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response called a second time without exc_info")
        prepared = prepare(status, headers)
        self.prepared = prepared
        self.status = prepared.status
        self.chunked = False
        self.headers = prepared.headers  # a tuple: replaced, never changed in place
        self.content_length = prepared.content_length
        self.own_headers = prepared.own
        if prepared.close:
            self.keep_alive = False
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333's legacy ``write()`` callable."""
        if self.status is None:
            raise AssertionError("write() called before start_response()")
        if type(data) is not bytes:  # raised here, in the app, not later on the loop
            raise TypeError(f"write() takes bytes (PEP 3333), got {type(data).__name__}")
        self._send_body(data)

    # -- running ----------------------------------------------------------------------------

    def run(self) -> None:
        """On an app thread: the whole request, from environ to the last byte."""
        result: Any = _FAILED
        handler = self.handler
        try:
            environ = self.build_environ()
            if handler.pre_request is not None:
                # gunicorn runs hooks where the app runs: an exception fails the request only.
                handler.pre_request(handler.worker, HookRequest(self.req))
            result = handler.app(environ, self.start_response)
        except Exception as exc:
            self._on_error(exc)
        finally:
            self._respond(result)

    def run_inline(self) -> None:
        """On the loop thread, for apps declared non-blocking (``--dispatch inline``)."""
        self.on_loop = True
        handler = self.handler
        result: Any = _FAILED
        try:
            environ = self.build_environ()  # as in run
            if handler.pre_request is not None:
                handler.pre_request(handler.worker, HookRequest(self.req))
            result = handler.app(environ, self.start_response)
            if type(result) not in (list, tuple) and self.req.method != b"HEAD" and \
                    type(self._body_iter(result)) not in _SEQUENCE_ITERATORS:
                # A generator may block between chunks: finish it on a thread.
                self.on_loop = False
                handler.pool.submit(partial(appthread.respond, self, result))
                return
        except Exception as exc:
            self._on_error(exc)
            if self.body_iter is None and result is not _FAILED:  # iter() refused it
                self._close_result(result)
                result = _FAILED
        status = self.status
        if type(result) in (list, tuple) and status is not None and not self.head_sent and \
                handler.post_request is None and not handler.log.access_enabled:
            # The usual case: what _respond and _end do for it, without their calls.
            try:
                self._send_whole(b"".join(result), status)
            except Exception as exc:
                self._on_error(exc)
                self._end()
                return
            self.protocol.finish_request(self.req, self.keep_alive)
            return
        self._respond(result)

    def _body_iter(self, result: Any) -> Any:
        it = self.body_iter
        if it is None:
            it = self.body_iter = iter(result)
        return it

    def _respond(self, result: Any) -> None:
        """Send what the app returned, close it, then give the connection back to the loop."""
        handler = self.handler
        try:
            status = self.status
            if type(result) in (list, tuple) and status is not None and not self.head_sent:
                self._send_whole(b"".join(result), status)  # the usual case; join refuses str items
            elif result is not _FAILED:
                self._send_result(result)
        except Exception as exc:
            self._on_error(exc)
        finally:
            if result is not _FAILED and type(result) not in (list, tuple):  # no close() there
                self._close_result(result)
            if handler.post_request is not None:
                self._post_request(handler.post_request)
            if handler.log.access_enabled:
                self._log_access()
            if self.on_loop:
                self._end()
            elif self.abandoned:
                raise ThreadAbandoned  # back from where it was stuck: its place is taken
            else:
                handler.pool.call_on_loop(self._finish_on_loop)

    def _send_result(self, result: Any) -> None:
        first, status = b"", self.status
        if status is None:
            first, status = self._first_chunk(result)
        elif not self.head_sent and type(self._body_iter(result)) in _SEQUENCE_ITERATORS:
            self._send_whole(b"".join(self.body_iter), status)
            return
        if self.req.method == b"HEAD" or status.startswith(NO_BODY_STATUS):
            return
        if not first and isinstance(result, FileWrapper) and appthread.send_file(self, result):
            return
        if first:
            self._send_body(first)
        for chunk in self._body_iter(result):
            if type(chunk) is not bytes:
                raise TypeError(f"the app yielded {type(chunk).__name__}, WSGI requires bytes")
            if chunk:
                self._send_body(chunk)
                if self.lost:
                    raise ClientDisconnected("client disconnected")

    def _first_chunk(self, result: Any) -> tuple[bytes, str]:
        """PEP 3333: a generator may call start_response as it runs, before it yields its first
        body bytes: those bytes, and the status.  A method of its own: where the caller found no
        status, the type checker (and the compiled build after it) takes it for None, though
        the generator sets it."""
        if type(result) in (list, tuple) or result is None:
            raise AssertionError("the app returned without calling start_response()")
        for first in self._body_iter(result):
            if type(first) is not bytes:
                raise TypeError(f"the app yielded {type(first).__name__}, WSGI requires bytes")
            if self.status is not None:
                return first, self.status
            if first:
                raise AssertionError("the app yielded a body before calling start_response()")
        raise AssertionError("the app returned without calling start_response()")

    def _on_error(self, exc: Exception) -> None:
        self.keep_alive = False
        if isinstance(exc, ClientDisconnected) or self.lost:
            return  # the client left; not a server error
        if isinstance(exc, BodyTimeout):  # the client stalled: its error, not ours (RFC 9110 15.5.9)
            self.handler.log.info("Request body from %s stalled: %s", self.protocol.peername, exc)
            if self.head_sent:
                self.failed = True
                return
            exc = Reject(408, str(exc))
        if isinstance(exc, Reject) and not self.head_sent:  # the request itself is wrong
            self.status = f"{exc.status} {http.HTTPStatus(exc.status).phrase}"
            self.headers = []
            self._emit(error_response(exc.status, exc.reason, self.req.method))
            self.head_sent = True
            return
        self.handler.log.exception("Error handling request %s %s", self.req.method.decode(
            "latin-1"), self.req.url.decode("latin-1", "replace"))
        if not self.head_sent:
            self.status = "500 Internal Server Error"
            self.headers = []
            self.outbox_reset()
            self._emit(error_response(500, "", self.req.method, html=True))  # gunicorn's page
            self.head_sent = True
            self.sent = 0
        else:
            self.failed = True

    def _send_whole(self, body: bytes, status: str) -> None:
        """The app returned its whole body (a list, the usual case): frame it in one piece.

        The same rules as _send_body and _end, without their per-chunk bookkeeping: nearly
        every response takes this path.  Unlike a stream, a short or long body is known before
        the head goes out, so the head can announce the close.
        """
        req, prepared = self.req, self.prepared
        if prepared is not None and status is prepared.status and prepared.usual and \
                len(body) == prepared.content_length and req.version == "1.1" and \
                req.method != b"HEAD":
            # The usual response, whose Content-Length the app gave and its body meets: the
            # head from the lines prepare() built, without the tests below and in _head.
            self.keep_alive = keep_alive = self.keep_alive and not self.protocol.closing and \
                req.body_complete()
            head = head_for(prepared, None, keep_alive, self.handler.server_headers.data)
            bodyless = False
        else:
            no_body_status = status.startswith(NO_BODY_STATUS)
            bodyless = no_body_status or req.method == b"HEAD"
            if self.content_length is None and not no_body_status:
                self.content_length = len(body)
                self.headers = [*self.headers, ("Content-Length", str(len(body)))]
            elif not bodyless and len(body) != self.content_length:
                # Too many bytes are cut; too few would leave the client waiting for the rest.
                # Either way only the close tells it where the body ends, and the head says so.
                body, _ = clip_to_length(body, self.content_length, 0, self.handler.log)
                self.keep_alive = False
            head = self._head(status)
        self.head_sent = True
        out: bytes | None
        if bodyless:
            out = head
        else:
            self.sent = len(body)
            out = head + body if len(body) < 65536 else None  # one copy beats a second write
        if self.on_loop:  # _write_now's work, without its call: every inline response comes here
            protocol = self.protocol
            if not self.lost and not protocol.transport.is_closing():
                if out is None:
                    protocol.writelines((head, body))
                else:
                    protocol.write(out)
        else:  # _end, on the loop, writes the outbox: nobody else reads it before then
            self.outbox += (head, body) if out is None else (out,)

    def _close_result(self, result: Any) -> None:
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                self.handler.log.exception("Error closing the WSGI response iterable")

    def _post_request(self, hook: Callable[..., object]) -> None:
        try:
            hook(self.handler.worker, HookRequest(self.req), self.environ, HookResponse(self))
        except Exception:
            self.handler.log.exception("post_request hook failed")

    def _log_access(self) -> None:
        log = self.handler.log
        if self.status is not None:
            try:
                environ = self.environ or self.build_environ()
                log.access(environ, self.status, self.headers, self.sent,
                           time.time() - self.start_time)
            except Exception:
                log.exception("Error writing the access log")

    # -- framing ----------------------------------------------------------------------------

    def _head(self, status: str) -> bytes:
        req, prepared, length = self.req, self.prepared, self.content_length
        if prepared is not None and status is prepared.status and length is not None and \
                req.version == "1.1" and self.own_headers is None and status[:3] != "204":
            # The usual head, from the lines prepare() built once: what head() builds for
            # HTTP/1.1 with a known length and our Date and Server.
            self.keep_alive = keep_alive = self.keep_alive and not self.protocol.closing and \
                req.body_complete()
            added = None if prepared.content_length is not None else length
            return head_for(prepared, added, keep_alive, self.handler.server_headers.data)
        head, self.chunked, self.keep_alive = response_head(
            req, status, self.headers, length, self.keep_alive and not self.protocol.closing,
            self.handler.server_headers.lines, self.own_headers)
        return head

    def _send_body(self, data: bytes) -> None:
        status = self.status
        assert status is not None  # write() and the app's iterable come after start_response
        head = b""
        if not self.head_sent:
            head = self._head(status)
            self.head_sent = True
        if self.req.method == b"HEAD" or status.startswith(NO_BODY_STATUS):
            if head:
                self._emit(head)
            return
        data, cut = clip_to_length(data, self.content_length, self.sent, self.handler.log)
        if cut:
            self.keep_alive = False
        self.sent += len(data)
        if self.chunked:
            self._emit(head + b"%x\r\n" % len(data), data, b"\r\n")
            return
        parts = (data,) if not head else (head + data,) if len(data) < 65536 else (head, data)
        if self.sent == self.content_length and not self.on_loop and self.cond is NO_THREAD:
            # The whole body, in the first chunk (Flask's): _end writes it with the end of the
            # request, in one wakeup of the loop, without the lock a stream needs.
            self.outbox += parts
        else:
            self._emit(*parts)

    def _end(self) -> None:
        """Loop thread: everything is queued; close the framing and hand back the connection."""
        if self.status is not None and not self.head_sent:
            try:
                self._send_body(b"")  # the head, built here when the app sent no body
            except ValueError as exc:  # a header value latin-1 cannot carry
                self._on_error(exc)
        elif self.chunked and not self.lost and not self.failed:
            # After an app error the last-chunk would tell the client a cut body is complete;
            # without it, and with the close, the client knows it is not (RFC 9112 7.1).
            self._emit(LAST_CHUNK)
        if self.content_length is not None and self.sent < self.content_length:
            status = self.status  # set with content_length, by start_response
            if status is not None and not bodyless(self.req.method, status):
                # Fewer bytes than promised: only closing tells the client the body is cut short.
                self.keep_alive = False
        if self.outbox:
            self._flush()
        self.protocol.finish_request(self.req, self.keep_alive)

    def _finish_on_loop(self) -> None:
        if self.abandoned:
            return  # it finished as the watchdog gave up on it: too late, already answered
        self.handler.pool.task_done()
        self.on_loop = True
        try:
            if self.head_sent and not self.chunked and self.cond is NO_THREAD and (
                    self.content_length is None or self.sent >= self.content_length):
                # A whole response (_send_whole's, the usual case): _end's and _write_now's work
                # for it, without their calls (the call alone cost an inline request 1.2% of
                # its instructions in _send_whole).
                outbox, protocol = self.outbox, self.protocol
                if outbox and not self.lost and not protocol.transport.is_closing():
                    if len(outbox) == 1:
                        protocol.write(outbox[0])
                    else:
                        protocol.writelines(outbox)
                protocol.finish_request(self.req, self.keep_alive)
            else:
                self._end()
        except Exception:
            # Our bug, not the app's: what went out may be half a response, so the connection
            # cannot be trusted to be in step any more.  Drop it rather than leave it hanging.
            self.handler.log.exception("Error finishing the response to %s",
                                       self.req.url.decode("latin-1", "replace"))
            self.protocol.transport.abort()
