"""A connection's response bytes, held until the end of the loop iteration that produced them.

Handlers write a finished response (or a streamed chunk) with the connection's ``write``, not
the transport's: the bytes wait in the connection, and the host's services (http/services.py)
flush every connection that has some with one ``call_soon`` per batch.  Written at once, each
response was a ``send`` in the middle of the loop's reads (uvloop tries the socket on every
``transport.write``): on loopback that send runs the receiving side's TCP processing too, and
wakes the client between our reads of the same iteration.  py-spy put 36% of inline dispatch's
samples there; deferred to one callback per iteration, inline hello went from 23.6k to 32k rps.
The thread pool had the same shape already, by accident (``ThreadPool.call_on_loop`` runs many
finished responses in one callback): now both dispatch modes and ASGI share it.

Order: everything the connection writes goes through ``write``, and whatever closes, half-closes
or hands the transport over calls ``flush`` first, so bytes never overtake each other nor are
lost to a close.  Backpressure: past ``FLUSH_AT`` held bytes the connection flushes at once, so
the transport's ``pause_writing`` still comes while the writer (a streaming app) is writing.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from unicorn_aio.http.contract import ConnectionHost
    from unicorn_aio.http.services import HostServices

# Bytes a connection holds before it writes them without waiting for the end of the iteration:
# small responses batch, a large body or a fast stream reaches the transport (and its flow
# control) at once.
FLUSH_AT: Final = 64 * 1024


class Output(asyncio.Protocol):
    """HttpProtocol's held output, the root of its class chain (``Output``, ``RawHead``,
    ``HttpProtocol``): a chain, not mixins, so the compiled build (setup.py) lays the three out
    as one native class."""

    __slots__ = ("out", "out_size", "services")
    # Held bytes, in order: one bytes object for the one write most responses are, a list once
    # there is a second; None when there are none (most of the time).
    out: bytes | list[bytes] | None
    out_size: int
    services: HostServices  # the host's (set by HttpProtocol)
    # HttpProtocol's
    transport: asyncio.Transport
    host: ConnectionHost

    def write(self, data: bytes) -> None:
        """Send ``data`` after what was written before, by the end of this loop iteration."""
        out = self.out
        if out is None:
            if not data:
                return
            self.out = data
            self.out_size = len(data)
            self.services.flush_soon(self)
        else:
            if isinstance(out, bytes):
                out = self.out = [out]
            out.append(data)
            self.out_size += len(data)
        if self.out_size > FLUSH_AT:
            self.flush()

    def writelines(self, chunks: list[bytes] | tuple[bytes, ...]) -> None:
        out = self.out
        if out is None:
            out = self.out = []
            self.out_size = 0
            self.services.flush_soon(self)
        elif isinstance(out, bytes):
            out = self.out = [out]
        out += chunks
        self.out_size += sum(map(len, chunks))
        if self.out_size > FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        """Hand the held bytes to the transport now (before a close, a half-close or a
        hand-over, and once per loop iteration from the host)."""
        out = self.out
        if out is None:
            return
        self.out = None
        transport = self.transport
        if transport.is_closing():
            return  # closed under us (aborted, the client gone): nobody to send them to
        if isinstance(out, bytes):
            transport.write(out)
        elif self.out_size < 16384:  # one buffer takes uvloop's fast path; a copy this small is cheap
            transport.write(b"".join(out))
        else:
            transport.writelines(out)
