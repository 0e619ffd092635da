"""The app thread pool: the one place work crosses between the event loop and app threads.

Work goes in through a ``queue.SimpleQueue`` (a C-level lock-free-ish deque, far cheaper than
``loop.run_in_executor`` which allocates a concurrent future and an asyncio future per call and
wakes the loop once per result). Results come back through ``call_on_loop``: threads append
callbacks to a deque and only the first one after a drain pays for ``call_soon_threadsafe`` (a
write to the loop's self-pipe). Under load one wakeup carries many finished responses, which is
worth 3-4x hello-world throughput over a future per request.

Submissions are batched the same way in the other direction: ``submit`` only appends, and one
``call_soon`` per loop iteration puts the whole batch on the queue.  Handing over each request
as it is parsed wakes an idle app thread mid-iteration; on a busy core that thread then fights
the loop thread for the GIL, and the ping-pong cost 1.5 context switches per request (0.2 when
batched, and a third more hello-world rps in thread-pool mode).
"""

from __future__ import annotations

import asyncio
import collections
import os
import queue
import threading
from typing import Callable, Final

_STOP: Final = object()


class ThreadAbandoned(BaseException):
    """Raised in an app thread the pool has given up on (``abandon``): it ends the thread.

    A BaseException, so that an app's ``except Exception`` lets it through."""


def schedule_as_batch() -> None:
    """Put the calling thread under SCHED_BATCH: woken, it waits for the running thread to
    block or use up its slice, instead of preempting it.

    A woken app thread preempted the loop thread, found the GIL held by it, and slept again:
    two context switches for nothing, per handoff; batch scheduling removes most of them.
    The same goes the other way for a worker's loop thread (prefork/worker.py), woken by a
    socket or an app thread's result while an app thread holds the GIL.  Weight and nice are
    unchanged, so the threads get the same CPU share; only wakeup preemption goes (threads and
    processes the app starts from a request inherit the policy, with the same effect).  Not
    Linux, or refused: no harm.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError):
        pass


class ThreadPool:
    def __init__(self, loop, size: int, name: str = "unicorn_aio-app") -> None:
        if size < 1:
            raise ValueError(f"thread pool size must be at least 1, got {size}")
        self.loop = loop
        self.size = size
        self.max_size = size  # the most threads it runs at once; see ElasticThreadPool
        self.name = name
        # Work submitted and not yet finished; the server reads it to decide when it is
        # saturated and should stop accepting (see Server._update_accepting).
        self.in_flight = 0
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._batch: list[Callable[[], None]] = []  # submitted this loop iteration
        self._threads: list[threading.Thread] = []
        self._done: collections.deque = collections.deque()
        self._wakeup_pending = False
        # Called on the loop when the pool fills up (in_flight reaches max_size) and when a
        # thread comes free again: the server's busy-aware accepting, which looks only at
        # whether it is full.  Not on every change: under load with one thread the pool stays
        # past full for a whole batch, and each call cost a request two Python calls.
        self.on_load_change: Callable[[], None] | None = None
        # Called on the loop after each batch of callbacks from app threads: the server writes
        # the responses they finished then, before the loop next polls.  Left for a later loop
        # iteration, they waited out the poll, where the loop thread lets go of the GIL and
        # busy app threads kept it for up to a switch interval (5 ms): 0.67x the rps.
        self.after_callbacks: Callable[[], None] | None = None

    # -- loop thread ------------------------------------------------------------------------

    def submit(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` on an app thread.  Threads start lazily so a worker that never
        dispatches (inline mode, ASGI) never pays for them, and so none exist at fork time."""
        if len(self._threads) < self.size and self.in_flight >= len(self._threads):
            self._start_thread()
        self.in_flight += 1
        if not self._batch:
            self.loop.call_soon(self._put_batch)
        self._batch.append(fn)
        if self.in_flight == self.max_size and self.on_load_change is not None:
            self.on_load_change()

    def _put_batch(self) -> None:
        batch, self._batch = self._batch, []
        put = self._tasks.put
        for fn in batch:
            put(fn)

    def _start_thread(self) -> None:
        t = threading.Thread(target=self._run, name=f"{self.name}-{len(self._threads)}", daemon=True)
        self._threads.append(t)
        t.start()

    @property
    def threads(self) -> list[threading.Thread]:
        """The app threads the pool counts as its own (not the ones it abandoned)."""
        return self._threads

    def abandon(self, thread: threading.Thread) -> None:
        """Loop thread: give up on ``thread``, stuck in its work item (the request watchdog,
        wsgi/watchdog.py).  It leaves the pool and its work stops counting as in flight, so a
        replacement starts at once if work is waiting, else with the next submit; the thread
        itself ends when ThreadAbandoned reaches ``_run``."""
        self._threads.remove(thread)
        self.in_flight -= 1
        if self.in_flight > len(self._threads) and len(self._threads) < self.size:
            self._start_thread()
        if self.in_flight == self.max_size - 1 and self.on_load_change is not None:
            self.on_load_change()

    def task_done(self) -> None:
        """Called on the loop thread when a submitted unit of work has fully finished."""
        self.in_flight -= 1
        if self.in_flight == self.max_size - 1 and self.on_load_change is not None:
            self.on_load_change()

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        self._put_batch()  # work submitted before the stop runs before it
        for _ in self._threads:
            self._tasks.put(_STOP)
        if wait:
            for t in self._threads:
                t.join(timeout)
        self._threads.clear()

    # -- any thread -------------------------------------------------------------------------

    def call_on_loop(self, callback: Callable, *args) -> None:
        """Schedule ``callback(*args)`` on the loop thread, coalescing wakeups."""
        self._done.append((callback, args))
        # No lock: two threads may both see False and wake the loop twice (harmless, the
        # second run finds nothing), but none can miss a wakeup - see _run_callbacks.
        if self._wakeup_pending:
            return
        self._wakeup_pending = True
        try:
            self.loop.call_soon_threadsafe(self._run_callbacks)
        except RuntimeError:  # loop closed during shutdown: nobody is left to tell
            pass

    def _run_callbacks(self) -> None:
        # Clear the flag first: a thread that saw it set had already appended, so its callback
        # runs below; one that sees it clear schedules a new wakeup.
        self._wakeup_pending = False
        done = self._done
        while done:
            callback, args = done.popleft()
            try:
                callback(*args)
            except Exception as exc:  # one failure must not strand the callbacks behind it
                self.loop.call_exception_handler({
                    "message": "unicorn_aio: error in a callback from an app thread",
                    "exception": exc})
        if self.after_callbacks is not None:
            self.after_callbacks()

    # -- app threads ------------------------------------------------------------------------

    def _run(self) -> None:
        schedule_as_batch()
        get = self._tasks.get
        try:
            while True:
                fn = get()
                if fn is _STOP:
                    return
                fn()  # work items handle their own exceptions; see WSGICycle.run in wsgi/handler.py
        except ThreadAbandoned:
            pass  # a replacement has taken this thread's place (abandon)


# How long threads past an elastic pool's base size may go unneeded before they exit.
IDLE_TIMEOUT: Final = 5.0


def make_pool(loop, size: int, max_size: int | None = None) -> ThreadPool:
    """A pool of ``size`` threads, or an elastic one up to ``max_size`` when that is more."""
    if max_size is not None and max_size > size:
        return ElasticThreadPool(loop, size, max_size)
    return ThreadPool(loop, size)


class ElasticThreadPool(ThreadPool):
    """A pool that starts a thread whenever work finds every thread busy, up to ``max_size``,
    and lets the threads past ``size`` go once they have been unneeded for ``idle_timeout``
    (to twice that): gunicorn's gevent and eventlet workers' concurrency (a greenlet per
    connection) for apps that wait, without monkey-patching.

    Only the loop thread decides how many threads there are: a thread too many is sent a stop
    through the work queue, behind the work already in it, and whichever thread takes it
    exits.  A thread deciding on its own, on a timed-out wait, could leave just as work is
    handed to it; and under light steady load the queue's lock hands work to every waiting
    thread in turn, so none would ever time out.
    """

    def __init__(self, loop, size: int, max_size: int, name: str = "unicorn_aio-app",
                 idle_timeout: float = IDLE_TIMEOUT) -> None:
        super().__init__(loop, size, name)
        if max_size < size:
            raise ValueError(f"an elastic pool's max_size ({max_size}) is below its size ({size})")
        self.max_size = max_size
        self.idle_timeout = idle_timeout
        # Stops sent and not yet taken: the threads taking work are the others.
        self._stopping = 0
        self._peak = 0  # the most work in flight since the last trim
        self._trim_timer: asyncio.TimerHandle | None = None

    def submit(self, fn: Callable[[], None]) -> None:
        working = len(self._threads) - self._stopping
        if self.in_flight >= working and working < self.max_size:
            self._start_thread()
        self.in_flight += 1
        if self.in_flight > self._peak:
            self._peak = self.in_flight
        if not self._batch:
            self.loop.call_soon(self._put_batch)
        self._batch.append(fn)
        if self.in_flight == self.max_size and self.on_load_change is not None:
            self.on_load_change()

    def _start_thread(self) -> None:
        super()._start_thread()
        if self._trim_timer is None and len(self._threads) - self._stopping > self.size:
            self._trim_timer = self.loop.call_later(self.idle_timeout, self._trim)

    def _trim(self) -> None:
        """Stop the threads the busiest moment since the last trim did not need.  Those kept
        number at least the work in flight, so queued work never waits on a thread that
        left."""
        self._trim_timer = None
        working = len(self._threads) - self._stopping
        for _ in range(working - max(self.size, self._peak)):
            self._tasks.put(_STOP)
            self._stopping += 1
        self._peak = self.in_flight
        if len(self._threads) - self._stopping > self.size:
            self._trim_timer = self.loop.call_later(self.idle_timeout, self._trim)

    def _run(self) -> None:
        super()._run()
        self.call_on_loop(self._left, threading.current_thread())

    def _left(self, thread: threading.Thread) -> None:
        # Not listed: the pool abandoned it (abandon) or shut down; either counted it out.
        if thread in self._threads:
            self._threads.remove(thread)  # so a later thread reusing its ident is not taken for it
            self._stopping -= 1

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        if self._trim_timer is not None:
            self._trim_timer.cancel()
            self._trim_timer = None
        super().shutdown(wait, timeout)
        self._stopping = 0
