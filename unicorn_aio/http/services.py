"""What a server does for its connections on every request: count it, record it in the worker's
stats, and flush the connections' held output once per loop iteration (http/output.py).

``Server`` stays plain Python (embedders and tests give it attributes of their own), and a
compiled connection pays a generic call each time it calls into plain Python.  These calls come
once or twice a request, so they live here instead, compiled with the connections (setup.py),
which call them directly: ``ConnectionHost.services``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from unicorn_aio.http.contract import RequestCycle
    from unicorn_aio.http.output import Output
    from unicorn_aio.http.request import Request
    from unicorn_aio.log.logger import Logger
    from unicorn_aio.prefork.stats import RequestStats


class HostServices:
    """One per server, shared by its connections."""

    def __init__(self, log: Logger) -> None:
        self.log = log
        self.loop: asyncio.AbstractEventLoop | None = None  # the server's, from its start()
        self.requests_total = 0
        self.stats: RequestStats | None = None  # a worker's, for its master (prefork/stats.py)
        self.on_request_finished: Callable[[int], None] | None = None  # the worker's max-requests
        self.unflushed: list[Output] = []  # connections holding output (flush_soon)

    def request_finished(self, req: Request | None = None,
                         cycle: RequestCycle | None = None) -> None:
        """``req`` is answered, by ``cycle`` (its status and bytes count in the worker's
        stats); neither is given for the request an upgrade took over."""
        self.requests_total += 1
        stats = self.stats
        if stats is not None and cycle is not None and req is not None:
            status = cycle.status
            if status is not None:
                assert self.loop is not None
                stats.record(status, self.loop.time() - req.start, req.received, cycle.sent)
        if self.on_request_finished is not None:
            self.on_request_finished(self.requests_total)

    def flush_soon(self, conn: Output) -> None:
        """Call ``conn.flush()`` after the callbacks of this loop iteration: one callback for
        every connection that wrote meanwhile."""
        unflushed = self.unflushed
        if not unflushed:
            assert self.loop is not None
            self.loop.call_soon(self.flush_all)
        unflushed.append(conn)

    def flush_all(self) -> None:
        """Every connection's output of the last loop iteration, written together: the loop
        calls it once per iteration in which one wrote."""
        conns, self.unflushed = self.unflushed, []
        for conn in conns:
            try:
                conn.flush()
            except Exception:  # one connection's failure must not strand the others' bytes
                self.log.exception("Error writing a response")
