"""Where log lines go: the handlers `logger.Logger` installs, syslog addresses, and the writer
that puts a loop iteration's access lines into one write.

Our handlers differ from logging's in one way: a failing write (disk full, a path gone) warns
once through `on_error` instead of printing a traceback per record.
"""

from __future__ import annotations

import collections
import logging
import socket
import sys
import threading
from typing import TYPE_CHECKING, Any, Callable, TypeAlias

if TYPE_CHECKING:
    import asyncio

SYSLOG_FACILITIES = {
    "auth": 4, "authpriv": 10, "cron": 9, "daemon": 3, "ftp": 11, "kern": 0, "lpr": 6,
    "mail": 2, "news": 7, "security": 4, "syslog": 5, "user": 1, "uucp": 8,
    "local0": 16, "local1": 17, "local2": 18, "local3": 19,
    "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}


class OwnHandler(logging.Handler):
    """Base of the handlers logger.Logger installs: marked so a new setup replaces them, and a
    failing write (disk full, a path gone) warns once through `on_error` instead of printing a
    traceback per record. Listed first among the bases, before the logging handler it adapts."""

    unicorn_aio = True
    failed = False
    on_error: Callable[[logging.Handler, BaseException | None], None] | None = None

    def handleError(self, record: logging.LogRecord | None) -> None:
        if self.failed:
            return
        self.failed = True
        exc = sys.exc_info()[1]
        try:
            if self.on_error is not None:
                self.on_error(self, exc)
        except Exception:
            pass


class OwnStreamHandler(OwnHandler, logging.StreamHandler):
    pass


class OwnFileHandler(OwnHandler, logging.FileHandler):
    pass


# The handlers AccessWriter writes to: a stream, and a handleError that takes no record.
OwnStream: TypeAlias = "OwnStreamHandler | OwnFileHandler"


def syslog_handler(**kwargs: Any) -> OwnHandler:
    # logging.handlers pulls in pickle and queue: only pay for them when syslog is on.
    import logging.handlers

    class _SysLogHandler(OwnHandler, logging.handlers.SysLogHandler):
        pass

    return _SysLogHandler(**kwargs)


def parse_syslog_address(addr: str) -> tuple[int | None, str | tuple[str, int]]:
    """(socket type, address) for SysLogHandler from `unix://path[#dgram|#stream]`,
    `udp://host[:port]` or `tcp://host[:port]` (port 514 by default)."""
    if addr.startswith("unix://"):
        path, _, kind = addr[len("unix://"):].partition("#")
        # None lets SysLogHandler try datagram then stream, as the local daemon decides.
        return {"dgram": socket.SOCK_DGRAM, "stream": socket.SOCK_STREAM}.get(kind), path
    for scheme, socktype in (("udp://", socket.SOCK_DGRAM), ("tcp://", socket.SOCK_STREAM)):
        if addr.startswith(scheme):
            rest = addr[len(scheme):]
            break
    else:
        raise ValueError(f"syslog address {addr!r} must start with unix://, udp:// or tcp://")
    if rest.startswith("["):  # [ipv6]:port
        host, _, port = rest[1:].partition("]")
        port = port[1:]
    else:
        host, _, port = rest.partition(":")
    if port and not port.isdigit():
        raise ValueError(f"syslog address {addr!r}: {port!r} is not a port number")
    return socktype, (host.lower() or "localhost", int(port) if port else 514)


class AccessWriter:
    """Access lines for a handler we own, written straight to its stream, skipping logging's
    record machinery (`logger.Logger._direct_handler` says when, and why that pays).

    With a loop (`batch`), the lines of one loop iteration go out in one ``write()`` and
    flush: a write per line is a large share of what a small request costs. A line waits at
    most until the loop turns (an app thread's line wakes it); a worker that exits or is
    stopped by the master (TERM, INT, QUIT, a timeout it can still answer) writes them first.
    Only SIGKILL, or a loop stuck in C code, loses the lines of the iteration it hit.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._pending: collections.deque[str] = collections.deque()
        self._handler: OwnStream | None = None  # the handler of the pending lines
        self._flush_scheduled = False

    def batch(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Batch per turn of ``loop`` from now on; None goes back to a write per line."""
        self.flush()
        self._loop = loop
        self._loop_thread = threading.get_ident() if loop is not None else None

    def write(self, handler: OwnStream, line: str) -> None:
        loop = self._loop
        if loop is None:
            _write(handler, line)
            return
        self._handler = handler
        self._pending.append(line)
        # Clear-before-drain, as in dispatch.ThreadPool: a line appended while a flush runs is
        # either written by it or finds the flag clear and schedules the next one.
        if self._flush_scheduled:
            return
        self._flush_scheduled = True
        try:
            if threading.get_ident() == self._loop_thread:
                loop.call_soon(self.flush)
            else:
                loop.call_soon_threadsafe(self.flush)
        except RuntimeError:  # the loop is closed: nobody is left to flush for us
            self.flush()

    def flush(self) -> None:
        self._flush_scheduled = False
        pending = self._pending
        handler = self._handler
        if not pending or handler is None:  # write() sets the handler before queueing a line
            return
        lines = []
        while pending:
            lines.append(pending.popleft())
        _write(handler, handler.terminator.join(lines))


def _write(handler: OwnStream, text: str) -> None:
    # What StreamHandler.emit does for records formatted as "%(message)s".
    handler.acquire()
    try:
        stream = handler.stream
        if stream is not None:
            try:
                stream.write(text + handler.terminator)
                stream.flush()
            except Exception:
                handler.handleError(None)
            return
    finally:
        handler.release()
    # A reopen failed and left no stream: as a record, FileHandler.emit tries to open it again.
    handler.handle(logging.makeLogRecord(
        {"name": "unicorn_aio.access", "msg": text, "levelno": logging.INFO, "levelname": "INFO"}))
