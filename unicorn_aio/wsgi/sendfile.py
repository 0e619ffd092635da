"""wsgi.file_wrapper over sendfile(2): the file goes from the app thread straight to the socket.

A base class of ``WSGICycle`` (wsgi/handler.py), whose state it uses: the response head goes out
through the cycle's ``_emit``, and the loop flushes the connection before the socket is lent.
"""

from __future__ import annotations

import os
import select
import threading
from typing import TYPE_CHECKING, Sequence

from unicorn_aio.http.body import ClientDisconnected
from unicorn_aio.wsgi.outbox import Outbox

if TYPE_CHECKING:
    from unicorn_aio.wsgi.environ import FileWrapper


class FileSender(Outbox):
    """``WSGICycle``'s sendfile path (its base class: the state is the cycle's)."""

    # WSGICycle's
    sent: int
    status: str | None
    head_sent: bool
    content_length: int | None
    headers: Sequence[tuple[str, str]]

    def _head(self, status: str) -> bytes:
        raise NotImplementedError  # WSGICycle's

    def _try_sendfile(self, wrapper: FileWrapper) -> bool:
        """Send a file with sendfile(2) from this app thread, on a dup of the socket.

        The dup keeps the socket object alive even if the loop closes the transport meanwhile,
        so a recycled fd number can never receive this file.  Only on plain TCP/unix sockets,
        with the head flushed and nothing else queued: the loop writes nothing for this
        connection while its head request is ours.  Not with --no-sendfile (or SENDFILE=0).
        """
        fileno = wrapper.fileno()
        sock = self.protocol.transport.get_extra_info("socket")
        if fileno is None or sock is None or not self.handler.sendfile or self.on_loop:
            return False
        try:
            offset = os.lseek(fileno, 0, os.SEEK_CUR)
            size = os.fstat(fileno).st_size - offset
        except OSError:
            return False
        if self.content_length is None:
            self.content_length = size
            self.headers = [*self.headers, ("Content-Length", str(size))]
        size = min(size, self.content_length)
        self._send_body_head_only()
        done = threading.Event()
        holder: list[int | None] = []

        def dup_when_written() -> None:
            self.protocol.flush()  # the head, which must reach the socket before the file
            if self.lost or self.protocol.transport.is_closing():
                holder.append(None)
            elif self.protocol.transport.get_write_buffer_size():
                self.handler.loop.call_later(0.005, dup_when_written)
                return
            else:
                holder.append(os.dup(sock.fileno()))
            done.set()

        self.handler.pool.call_on_loop(dup_when_written)
        done.wait()
        fd = holder[0]
        if fd is None:
            raise ClientDisconnected("client disconnected")
        stall = self.handler.stall_timeout  # None: --body-timeout 0, wait as long as it takes
        try:
            poller = select.poll()
            poller.register(fd, select.POLLOUT)
            while size > 0:
                try:
                    n = os.sendfile(fd, fileno, offset, min(size, 1 << 20))
                except BlockingIOError:
                    if not poller.poll(None if stall is None else stall * 1000):
                        raise ClientDisconnected("client stopped reading") from None
                    continue
                except (BrokenPipeError, ConnectionResetError) as exc:
                    raise ClientDisconnected("client disconnected") from exc
                if n == 0:
                    break  # the file shrank under us
                offset += n
                size -= n
                self.sent += n
        finally:
            os.close(fd)
        return True

    def _send_body_head_only(self) -> None:
        # The callback that dups the socket is queued after this flush, so it sees the head
        # already handed to the transport.
        status = self.status
        if not self.head_sent and status is not None:  # set: sendfile follows start_response
            self.head_sent = True
            self._emit(self._head(status))
