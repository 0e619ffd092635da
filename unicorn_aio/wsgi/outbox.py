"""The bridge for a WSGI response's bytes between an app thread and the loop thread.

A mixin of ``WSGICycle`` (wsgi/handler.py), whose state it uses.  The loop thread owns the
transport; an app thread never touches it.  What an app thread sends is queued in the cycle's
``outbox`` and written by the loop (``_flush``), with a bounded queue: past ``OUTBOX_MAX``
queued bytes, or while the transport has paused writing, the app thread waits until the loop
has written them.  On the loop thread (inline dispatch, or once the app has returned) the bytes
go straight to the connection's held output.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Final

from unicorn_aio.http.body import ClientDisconnected
from unicorn_aio.wsgi import appthread

if TYPE_CHECKING:
    from unicorn_aio.http.contract import Connection
    from unicorn_aio.wsgi.handler import WSGIHandler

# Response bytes an app thread may queue for the loop before it waits for them to be written
# (the request body's own bounds are body.HIGH_WATER and LOW_WATER).
OUTBOX_MAX: Final = 256 * 1024


class NullCondition:
    """The lock of a request that never leaves the loop thread: nothing to wait for."""

    def __enter__(self) -> NullCondition:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def notify_all(self) -> None:
        pass

    def wait(self, timeout: float | None = None) -> bool:
        return True


NO_THREAD: Final = NullCondition()


class Outbox:
    """``WSGICycle``'s side of the loop/thread bridge, the root of its class chain (``Outbox``,
    ``FileSender``, ``RequestEnviron``, ``WSGICycle``): a chain, not mixins, so the compiled
    build (setup.py) lays them out as one native class."""

    # The lock between the loop and an app thread, made by the app thread the first time it
    # may have to wait (a streamed response); most requests never need one.  The loop side
    # sets its flag *before* taking the lock to notify, so a lock made in between still sees it.
    # NO_THREAD until then (WSGICycle.__init__).
    cond: threading.Condition | NullCondition
    queued = 0
    flush_scheduled = False
    # WSGICycle's
    handler: WSGIHandler
    protocol: Connection
    outbox: list[bytes]
    on_loop: bool
    lost: bool
    paused: bool
    abandoned: bool

    def _write_now(self, chunks: list[bytes] | tuple[bytes, ...]) -> None:
        """Loop thread: hand ``chunks`` to the connection, unless the client is gone."""
        protocol = self.protocol
        if chunks and not self.lost and not protocol.transport.is_closing():
            if len(chunks) == 1:
                protocol.write(chunks[0])
            else:
                protocol.writelines(chunks)

    def _emit(self, *parts: bytes) -> None:
        if self.on_loop:
            self._write_now(parts)
            return
        if self.cond is NO_THREAD:
            self.cond = threading.Condition()
        with self.cond:
            if self.lost:
                raise ClientDisconnected("client disconnected")
            self.outbox.extend(parts)
            self.queued += sum(map(len, parts))
            schedule = not self.flush_scheduled
            self.flush_scheduled = True
        if schedule:
            self.handler.pool.call_on_loop(self._flush)
        appthread.wait_for_client(self)

    def _wait_for_loop(self) -> None:
        """App thread, entered through appthread.wait_for_client (the watchdog's sign that the
        thread waits on its client): until the loop has written enough, or the client reads."""
        with self.cond:
            while (self.queued > OUTBOX_MAX or self.paused) and not self.lost:
                # Every flush and resume_writing notifies: a wait that times out means the
                # client read nothing for body_timeout.  Without a bound, a client that stops
                # reading would pin this app thread for ever (the sendfile path has the same).
                if not self.cond.wait(self.handler.stall_timeout):
                    self.handler.pool.call_on_loop(self._abort_stalled)
                    raise ClientDisconnected(
                        f"client read nothing for {self.handler.stall_timeout:g}s")

    def _abort_stalled(self) -> None:
        # abort, not close: close() would wait to flush to the client that is not reading.
        self.handler.log.info("dropping a client that stopped reading its response: %s",
                              self.protocol.peername)
        self.lost = True
        self.protocol.transport.abort()

    def outbox_reset(self) -> None:
        with self.cond:
            self.outbox.clear()
            self.queued = 0

    def _flush(self) -> None:
        """Loop thread: move queued output to the transport, then wake a waiting app thread."""
        if self.cond is NO_THREAD:
            # No app thread can be waiting (none made a lock): skip the locking.
            chunks, self.outbox = self.outbox, []
            self._write_now(chunks)
            return
        with self.cond:
            chunks, self.outbox = self.outbox, []
            self.queued = 0
            self.flush_scheduled = False
        self._write_now(chunks)
        with self.cond:
            self.cond.notify_all()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        with self.cond:
            self.cond.notify_all()

    def connection_lost(self) -> None:
        self.lost = True
        with self.cond:
            self.cond.notify_all()

    def abandon(self) -> list[bytes]:
        """Loop thread: the watchdog gave up on this request's app thread and answers for it.
        From now on what the thread sends is discarded (it may never return, or much later);
        returns the response bytes it queued that are not written yet."""
        self.abandoned = True
        with self.cond:  # a waiting _emit wakes to find lost, and raises
            queued, self.outbox = self.outbox, []
            self.queued = 0
            self.lost = True
            self.cond.notify_all()
        return queued
