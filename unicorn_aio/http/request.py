"""One request as a connection parsed it, for HTTP/1.1 (http/protocol.py) and HTTP/2 streams
alike: what the app handlers are given (contract.AppHandler.start)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from unicorn_aio.http.body import NO_BODY, RequestBody

if TYPE_CHECKING:
    from unicorn_aio.http.contract import RequestCycle
    from unicorn_aio.http.forwarded import Verdict
    from unicorn_aio.http.rules import Framing

# A Final name: the compiled build reads it from a C static (body.py is not compiled).
_NO_BODY: Final = NO_BODY


class Request:
    """One request as the parser saw it: the head, its framing, and its body stream."""

    __slots__ = ("method", "url", "version", "headers", "framing", "keep_alive", "body",
                 "dispatched", "cycle", "start", "upgrade", "proxied", "received")
    # Set once the head is parsed (on_headers_complete), before any handler sees the request.
    method: bytes
    version: str
    framing: Framing
    keep_alive: bool

    def __init__(self, start: float, body: RequestBody = NO_BODY) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        # Most requests have no body: they share NO_BODY, and the protocol gives one that
        # has its own RequestBody once the head says so.
        self.body = body
        self.dispatched = False
        # the handler's per-request object, for flow control and disconnects
        self.cycle: RequestCycle | None = None
        self.start = start
        self.upgrade: bytes | None = None  # after a protocol upgrade: the bytes that followed
        self.proxied: Verdict | None = None  # what a trusted proxy said of it (forwarded.py)
        self.received = 0  # body bytes, for the worker's stats (prefork/stats.py)

    def body_complete(self) -> bool:
        """Every byte of the body is in.  Most requests have none, and are answered without
        reaching into body.py, which is not compiled."""
        body = self.body
        return body is _NO_BODY or body.complete
