"""The request watchdog: a WSGI request stuck in its app thread is logged, or stopped.

The worker's heartbeat comes from the event loop, so the master sees a hung loop (an app run
inline, a C call holding the GIL) and kills the worker, as before.  A request stuck in an app
thread (``while True: pass``, ``time.sleep(1000)``, a database call that never returns) leaves
the loop beating: without this, the thread was lost for good, and with every thread stuck the
worker served nothing and said nothing.

A request is stuck when its app code has sent nothing - no head, no body bytes - for the limit.
Time its thread spends waiting on the client (reading a streamed ``wsgi.input``, writing to a
client that reads slowly) is not the app's and does not count; a response that keeps writing is
never stuck.  The watchdog runs on the loop, a sweep every second at most, and costs nothing
per request: each sweep reads the stacks of the app threads (``sys._current_frames``) for the
request each one runs and whether it waits on the client (the handler names the frames that
tell), and compares what it has sent with what it had sent at the sweep before.  With nothing in
flight a sweep returns at once.

What it does with a stuck request depends on the worker class (docs/timeouts.md has the table):
where gunicorn's sync worker would kill the worker (``-k sync --threads 1``, the defaults) it
acts at ``--timeout``; elsewhere (gthread, sync with more threads, the green classes, which
gunicorn runs without a limit) it logs the request once, unless ``--request-timeout`` asks it to
act.  Acting is:

* one log line naming the request, with the stack of its thread; where gunicorn would have
  killed the worker, its ``WORKER TIMEOUT (pid:N)`` line at CRITICAL and its ``worker_abort``
  hook before it (alerts and error reporters hang on them);
* the client gets a 500 if no head went out (as from gunicorn's killed sync worker), else what
  the thread had queued and the close, which tells it the body is cut (RFC 9112 7.1); what the
  thread does from then on is discarded (the cycle's ``abandon``);
* the thread is interrupted with an asynchronous exception (``ThreadAbandoned``), which stops
  Python code between two bytecodes, and leaves the pool, whose replacement serves at once;
* a thread still alive ``INTERRUPT_GRACE`` later is blocked where Python cannot interrupt it (a
  C call: ``time.sleep``, a socket read without a timeout).  When such threads reach
  ``--threads`` in number the worker retires: the master starts a fresh worker first, then
  stops this one gracefully; its exit ends the stuck threads with it.
"""

from __future__ import annotations

import asyncio
import ctypes
import inspect
import os
import sys
import threading
import traceback
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol, runtime_checkable

from unicorn_aio.http.contract import NEVER, Connection, or_never
from unicorn_aio.http.response import error_response
from unicorn_aio.wsgi.threadpool import ThreadAbandoned, ThreadPool

if TYPE_CHECKING:
    from unicorn_aio.config.config import Config
    from unicorn_aio.http.protocol import Request
    from unicorn_aio.log.logger import Logger

# Seconds an interrupted thread has to end before it counts as uninterruptible: Python code
# stops within a switch interval (5 ms); this leaves the request's hooks time to run.
INTERRUPT_GRACE = 1.0
# gunicorn's sync worker, the one that kills a worker whose request runs past --timeout.
SYNC_CLASSES = ("sync", "gunicorn.workers.sync.SyncWorker")


class WatchedRequest(Protocol):
    """What the watchdog uses of a request running in an app thread (wsgi/handler.WSGICycle)."""

    req: Request
    protocol: Connection

    @property
    def head_sent(self) -> bool: ...

    @property
    def sent(self) -> int: ...

    def abandon(self) -> list[bytes]:
        """Loop thread: the thread running it is given up on: discard what it sends from now
        on; returns the response bytes it queued that are not written yet."""


@runtime_checkable
class Retirable(Protocol):
    """A worker process that can ask the master for a fresh worker in its place."""

    def retire(self, reason: str) -> None: ...


def worker_class_name(worker_class: Any) -> str:
    return (f"{worker_class.__module__}.{worker_class.__qualname__}"
            if inspect.isclass(worker_class) else str(worker_class))


def limits(cfg: Config) -> tuple[float, float]:
    """(seconds after which a stuck request is logged, seconds after which it is stopped);
    NEVER for no limit."""
    log_after = or_never(cfg.timeout)
    if cfg.request_timeout is not None:
        return log_after, or_never(cfg.request_timeout)
    if worker_class_name(cfg.worker_class) in SYNC_CLASSES and cfg.threads == 1:
        return log_after, log_after
    return log_after, NEVER


@dataclass
class _Watch:
    """One request as the sweeps have seen it in its thread."""

    request: WatchedRequest
    mark: tuple[bool, int]  # (head sent, body bytes sent) when last seen to change
    since: float  # loop time of that change: the request has sent nothing since
    logged: bool = False


@dataclass
class _Interrupted:
    """A thread sent ThreadAbandoned, until it ends."""

    thread: threading.Thread
    request: str
    due: float  # loop time by which it should have ended
    lost: bool = False  # it did not: blocked where Python cannot interrupt it


class Watchdog:
    def __init__(self, loop: asyncio.AbstractEventLoop, pool: ThreadPool, log: Logger, *,
                 log_after: float, act_after: float, threads: int, worker: object = None,
                 runs: Iterable[Callable[..., Any]], waits: Iterable[Callable[..., Any]],
                 on_timeout: Callable[[], None] | None = None) -> None:
        self.loop = loop
        self.pool = pool
        self.log = log
        # The functions whose frames in an app thread's stack say that it runs a request (their
        # first argument is it), and that it waits on that request's client right now.
        self.runs: frozenset[CodeType] = frozenset(fn.__code__ for fn in runs)
        self.waits: frozenset[CodeType] = frozenset(fn.__code__ for fn in waits)
        self.log_after = log_after
        self.act_after = act_after
        self.threads = threads  # --threads: lost threads that retire the worker
        self.retire = worker.retire if isinstance(worker, Retirable) else None
        # Set where gunicorn's master would kill the worker: its line and worker_abort hook.
        self.on_timeout = on_timeout
        limit = min(log_after, act_after)
        self.interval = min(1.0, limit / 4)  # a stuck request is seen within a quarter of it
        self._watches: dict[int, _Watch] = {}
        self._interrupted: list[_Interrupted] = []
        self._retired = False
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def for_config(cls, cfg: Config, loop: asyncio.AbstractEventLoop, pool: ThreadPool,
                   log: Logger, worker: object, *, runs: Iterable[Callable[..., Any]],
                   waits: Iterable[Callable[..., Any]]) -> Watchdog | None:
        """The watchdog ``cfg`` asks for, or None when it has no limit to watch."""
        log_after, act_after = limits(cfg)
        if log_after == NEVER and act_after == NEVER:
            return None
        on_timeout = None
        if cfg.request_timeout is None and act_after != NEVER:  # gunicorn's sync worker's case

            def on_timeout() -> None:
                log.critical("WORKER TIMEOUT (pid:%d)", os.getpid())  # as gunicorn's master
                if worker is not None:  # serve() embedded has no worker to pass
                    try:
                        cfg.worker_abort(worker)
                    except Exception:
                        log.exception("worker_abort hook failed")

        return cls(loop, pool, log, log_after=log_after, act_after=act_after,
                   threads=cfg.threads, worker=worker, runs=runs, waits=waits,
                   on_timeout=on_timeout)

    def start(self) -> None:
        self._timer = self.loop.call_later(self.interval, self._sweep)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- the sweep --------------------------------------------------------------------------

    def _sweep(self) -> None:
        # Next sweep first: a failure below must not end the watch for the worker's life.
        self._timer = self.loop.call_later(self.interval, self._sweep)
        if self._interrupted:
            self._count_lost()
        if not self.pool.in_flight:
            self._watches.clear()
            return
        now = self.loop.time()
        frames = sys._current_frames()
        watches: dict[int, _Watch] = {}
        for thread in list(self.pool.threads):
            ident = thread.ident
            if ident is None:
                continue  # not started yet
            frame = frames.get(ident)
            request, waiting, base = self._locate(frame)
            if request is None:
                continue
            mark = (request.head_sent, request.sent)
            watch = self._watches.get(ident)
            if watch is None or watch.request is not request:
                watch = _Watch(request, mark, now)
            elif waiting or mark != watch.mark:
                watch.mark, watch.since = mark, now
            idle = now - watch.since
            if idle >= self.act_after:
                self._act(thread, watch.request, idle, _stack(frame, base))
                continue
            watches[ident] = watch
            if idle >= self.log_after and not watch.logged:
                watch.logged = True
                self.log.warning(
                    "Request stuck: %s has sent nothing for %.1fs (--timeout %g) in thread %s; "
                    "left running (%s). Its stack, most recent call last:\n%s",
                    describe(request), idle, self.log_after, name(thread), self._why_not(),
                    _stack(frame, base))
        self._watches = watches

    def _locate(self, frame: FrameType | None
                ) -> tuple[WatchedRequest | None, bool, FrameType | None]:
        """From an app thread's innermost ``frame``: the request it runs (None: none), whether
        it waits on the client right now, and the request's outermost frame."""
        waiting = False
        while frame is not None:
            code = frame.f_code
            if code in self.runs:
                request = frame.f_locals.get(code.co_varnames[0])  # "self", or appthread's cycle
                while frame.f_back is not None and frame.f_back.f_code in self.runs:
                    frame = frame.f_back  # one request method calling another: start at the first
                return request, waiting, frame
            if code in self.waits:
                waiting = True
            frame = frame.f_back
        return None, False, None

    def _why_not(self) -> str:
        if self.act_after == NEVER:
            return ("gunicorn sets no limit on a request under this worker class; "
                    "--request-timeout stops such requests")
        return f"--request-timeout {self.act_after:g} stops it"

    def _act(self, thread: threading.Thread, request: WatchedRequest, idle: float,
             stack: str) -> None:
        # Interrupt first, while the thread is where the sweep saw it: a thread that gets past
        # the request must not take the exception into the next one.
        interrupt(thread)
        outcome = answer(request)
        self.pool.abandon(thread)
        self._interrupted.append(_Interrupted(thread, describe(request),
                                              self.loop.time() + INTERRUPT_GRACE))
        if self.on_timeout is not None:
            self.on_timeout()
        self.log.error("Request timeout: %s sent nothing for %.1fs (limit %gs); %s, thread %s "
                       "interrupted and replaced. Its stack, most recent call last:\n%s",
                       describe(request), idle, self.act_after, outcome, name(thread), stack)

    def _count_lost(self) -> None:
        now = self.loop.time()
        alive = []
        for item in self._interrupted:
            if not item.thread.is_alive():
                if item.lost:
                    self.log.info("Thread %s, stuck in %s, has returned and ended",
                                  name(item.thread), item.request)
                continue
            alive.append(item)
            if not item.lost and now >= item.due:
                item.lost = True
                lost = sum(1 for i in self._interrupted if i.lost and i.thread.is_alive())
                self.log.warning(
                    "Thread %s did not stop within %gs of its interruption (%s): it is blocked "
                    "where Python cannot interrupt it, such as time.sleep or a socket read "
                    "without a timeout in C; %d of --threads %d lost", name(item.thread),
                    INTERRUPT_GRACE, item.request, lost, self.threads)
        self._interrupted = alive
        lost = sum(1 for item in alive if item.lost)
        if lost >= self.threads and not self._retired:
            self._retired = True
            reason = (f"{lost} app thread(s) stuck where they cannot be interrupted, as many as "
                      f"--threads {self.threads}")
            if self.retire is not None:
                self.retire(reason)
            else:
                self.log.error("%s: replacement threads serve meanwhile, but only a restart "
                               "frees these", reason)


def answer(request: WatchedRequest) -> str:
    """Answer the client of a request whose thread is given up on; what it got, for the log."""
    queued = request.abandon()
    protocol = request.protocol
    transport = protocol.transport
    if transport.is_closing():
        return "its client had left"
    if request.head_sent:
        protocol.writelines(queued)
        outcome = "connection closed mid-response"
    else:
        protocol.write(error_response(500, "request timeout", request.req.method))
        outcome = "answered 500"
    protocol.flush()  # after what the connection held, before the close
    transport.close()
    return outcome


def describe(request: WatchedRequest) -> str:
    peer = request.protocol.peername
    client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else (peer or "a unix socket")
    return (f"{request.req.method.decode('latin-1')} {request.req.url.decode('latin-1')} "
            f"from {client}")


def name(thread: threading.Thread) -> str:
    # The kernel's id too: a replacement takes the name of the thread it replaces, and the id
    # is what top -H and py-spy show.
    return f"{thread.name} (tid {thread.native_id})"


def interrupt(thread: threading.Thread) -> bool:
    """Raise ThreadAbandoned in ``thread`` at its next bytecode: at once in Python code, once a
    blocking C call returns otherwise.  False if there was no such thread."""
    ident = thread.ident
    if ident is None:
        return False
    return ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(ThreadAbandoned)) == 1


def _stack(frame: FrameType | None, base: FrameType | None) -> str:
    """The stack from ``base`` (the request's outermost frame) to ``frame``, as a traceback."""
    frames = []
    while frame is not None:
        frames.append((frame, frame.f_lineno))
        if frame is base:
            break
        frame = frame.f_back
    return "".join(traceback.StackSummary.extract(reversed(frames)).format()).rstrip("\n")
