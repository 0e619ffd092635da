"""The request body between the event loop (which feeds it) and the app (which reads it).

Small bodies arrive whole before the app is dispatched, so reading them never blocks or locks.
Larger ones stream: the loop feeds decoded chunks as they arrive, the app thread blocks in
``read()`` until data comes, and the buffer is bounded both ways - past ``HIGH_WATER`` the
protocol stops reading the socket, and once the app has read it below ``LOW_WATER`` it resumes. A 1 GB
upload therefore lives in a few hundred kilobytes.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from unicorn_aio.http.contract import thread_timeout

HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
# Seconds of waiting before --body-min-rate applies when --body-timeout is off (otherwise it
# applies once the reader has waited --body-timeout in all, so no stall is cut sooner than
# before): a client gets time to ramp up, as under Kestrel's MinRequestBodyDataRate.
MIN_RATE_GRACE = 5.0


class ClientDisconnected(OSError):
    """The client went away while the app was reading its body or writing its response."""


class BodyTimeout(OSError):
    """The client stopped sending the request body for longer than ``--body-timeout``."""


class RequestBody:
    """``wsgi.input``: a file-like reader of the request body (PEP 3333 input stream)."""

    __slots__ = ("_buf", "complete", "_error", "_cond", "_paused", "_resume", "_continue",
                 "_timeout", "_notify", "_min_rate", "_fed", "_waited")

    def __init__(self) -> None:
        self._buf = bytearray()
        # Every byte of the body is in (read on the loop, per request: a slot, not a property).
        self.complete = False
        self._error: BaseException | None = None
        self._cond: threading.Condition | None = None  # only once the body streams
        self._paused = False
        self._resume: Callable[[], None] | None = None
        self._continue: Callable[[], None] | None = None
        self._timeout: float | None = None
        self._notify: Callable[[], None] | None = None  # a reader on the loop (ASGI); see watch
        # --body-min-rate: bytes fed since streaming began, and seconds a reader spent waiting.
        self._min_rate = 0
        self._fed = 0
        self._waited = 0.0

    # -- loop thread ------------------------------------------------------------------------

    def start_streaming(self, resume_reading: Callable[[], None],
                        send_continue: Callable[[], None] | None, timeout: float,
                        min_rate: int = 0) -> None:
        """Called before the app is dispatched with the body still incomplete.

        ``resume_reading`` and ``send_continue`` are thread-safe callables that run on the loop.
        A blocked reader fails with BodyTimeout after ``timeout`` seconds without a byte (NEVER:
        no limit), or
        once the bytes arriving while it waits average under ``min_rate`` per second.
        """
        self._cond = threading.Condition()
        self._resume = resume_reading
        self._continue = send_continue
        self._timeout = thread_timeout(timeout)
        self._min_rate = min_rate

    def watch(self, notify: Callable[[], None], resume_reading: Callable[[], None]) -> None:
        """For a reader on the loop thread itself (ASGI), after ``start_streaming``.

        ``notify()`` is called whenever bytes arrive, the body ends or fails, so an async reader
        can wait on an event instead of a condition; ``resume_reading`` is called directly.
        """
        self._notify = notify
        self._resume = resume_reading

    def unwatch(self) -> None:
        """The reader is done: drop its callbacks, which refer back to it through the request."""
        self._notify = None

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> bool:
        """Append decoded body bytes; returns True when the socket should stop being read."""
        cond = self._cond
        if cond is None:
            self._buf += data
            return False
        with cond:
            self._buf += data
            self._fed += len(data)
            cond.notify()
            if len(self._buf) >= HIGH_WATER:
                self._paused = True
            if self._notify is not None:
                self._notify()
            return self._paused

    def finish(self) -> None:
        self.complete = True
        if self._cond is not None:
            with self._cond:
                self._cond.notify_all()
            if self._notify is not None:
                self._notify()

    def abort(self, exc: BaseException) -> None:
        """The connection is gone (or the body stalled): wake and fail any reader."""
        if self.complete:
            return
        self._error = exc
        if self._cond is not None:
            with self._cond:
                self._cond.notify_all()
            if self._notify is not None:
                self._notify()

    # -- a reader on the loop thread (ASGI): never blocks -----------------------------------

    def read_nowait(self) -> bytes:
        """What is buffered now (b"" if nothing yet); raises the error if the body failed."""
        if not self._buf and not self.complete and self._error is not None:
            raise self._error
        return self._take(-1)

    def want_more(self) -> None:
        """The reader found nothing and is about to wait: ask the client for the body
        (``Expect: 100-continue``, RFC 9110 10.1.1) and make sure the socket is being read."""
        if self._continue is not None:
            send, self._continue = self._continue, None
            send()
        if self._paused:
            self._unpause()

    # -- app side (an app thread, or the loop in inline mode with a complete body) ---------

    def _take(self, size: int) -> bytes:
        buf = self._buf
        if size < 0 or size >= len(buf):
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[:size])
            del buf[:size]
        if self._paused and len(buf) < LOW_WATER:
            self._unpause()
        return data

    def _unpause(self) -> None:
        self._paused = False
        if self._resume is not None:  # set by start_streaming, before anything can pause
            self._resume()

    def _wait_for_data(self, cond: threading.Condition) -> None:
        """Block (holding ``cond``, the body's) until bytes arrive, the body ends, or it fails."""
        if self._continue is not None:
            send, self._continue = self._continue, None
            send()
        if self._paused:  # we are about to wait for bytes the paused loop would never read
            self._unpause()
        timeout, rate = self._timeout, self._min_rate
        if rate:
            # Wait no longer than the average can bear: the bytes fed so far pay for
            # fed/rate seconds of waiting, and the first --body-timeout seconds are free.
            budget = max(self._fed / rate, timeout or MIN_RATE_GRACE) - self._waited
            if timeout is None or budget < timeout:
                timeout = max(budget, 0.0)
        start = time.monotonic()
        arrived = cond.wait(timeout)
        self._waited += time.monotonic() - start
        if arrived:
            return
        if timeout != self._timeout:
            raise BodyTimeout(f"request body arriving at {self._fed / self._waited:.0f} bytes/s, "
                              f"under --body-min-rate {rate}")
        raise BodyTimeout(f"request body stalled for {self._timeout:g}s")

    def _check_error(self) -> None:
        if self._error is not None:
            raise self._error

    def read(self, size: int | None = -1) -> bytes:
        if size is None:
            size = -1
        cond = self._cond
        if cond is None or self.complete and self._error is None:
            return self._take(size)
        with cond:
            if size < 0:
                chunks = []
                while True:
                    if self._buf:
                        chunks.append(self._take(-1))
                    if self.complete:
                        return b"".join(chunks)
                    self._check_error()
                    self._wait_for_data(cond)
            # Like a file (and gunicorn's Body): read(n) returns n bytes unless the body ends
            # first. Apps such as Django read Content-Length bytes in one call and trust it.
            while len(self._buf) < size and not self.complete:
                self._check_error()
                self._wait_for_data(cond)
            return self._take(size)

    def readline(self, size: int | None = -1) -> bytes:
        if size is None:
            size = -1
        cond = self._cond
        if cond is None:
            return self._readline_buffered(size)
        with cond:
            while True:
                buf = self._buf
                nl = buf.find(b"\n")
                if nl >= 0 or self.complete or 0 <= size <= len(buf):
                    return self._readline_buffered(size)
                self._check_error()
                self._wait_for_data(cond)

    def _readline_buffered(self, size: int) -> bytes:
        nl = self._buf.find(b"\n")
        end = len(self._buf) if nl < 0 else nl + 1
        if 0 <= size < end:
            end = size
        return self._take(end)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                return lines

    def __iter__(self) -> RequestBody:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class NoBody(RequestBody):
    """The body of every request that has none (no Content-Length, no chunked): complete from
    the start, and one object shared by all of them, so nothing may change it.  The loop never
    feeds it; what would record a reader (ASGI's watch) does nothing, and reads find it empty."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__()
        self.complete = True

    def start_streaming(self, resume_reading: Callable[[], None],
                        send_continue: Callable[[], None] | None, timeout: float,
                        min_rate: int = 0) -> None:
        raise RuntimeError("a request without a body has none to stream")

    def feed(self, data: bytes) -> bool:
        raise RuntimeError("a request without a body was given body bytes")

    def watch(self, notify: Callable[[], None], resume_reading: Callable[[], None]) -> None:
        pass

    def unwatch(self) -> None:
        pass

    def finish(self) -> None:
        pass

    def abort(self, exc: BaseException) -> None:
        pass


NO_BODY = NoBody()
