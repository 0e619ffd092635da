"""Connection shedding: at ``--worker-connections`` the server makes room for a new client by
closing the connection that costs least to lose, instead of leaving the newcomer in the kernel's
backlog while idle or trickling connections hold every slot (issue #18: 1000 slow clients made a
worker unavailable for seconds).

The order (``evict_rank``; nginx drops idle keep-alive connections the same way when it runs out):

0. connections the server is done with but for response bytes their client does not read
   (slow read), the oldest first: closing one waits for the client, however long it takes, so
   it holds its slot until it is aborted.
1. idle keep-alive connections, the one idle longest first.  A connection between messages may
   be closed at any time (RFC 9112 9.6); a client reusing it retries on a fresh one.
2. connections sending a request - its head, or a body the app has not started on - below
   ``--body-min-rate``, slowest first: slowloris and slow-POST clients.  A connection that has
   sent nothing yet is a sender at 0 bytes/s, once EVICT_GRACE old.

A shed connection with unsent bytes is aborted (its client loses the rest of a response it was
not reading); others are closed.  Never shed: a connection whose request is in the app,
including one whose response the app is still writing (bounded by ``--body-timeout``, which
drops a response left unread that long); one lingering or closing with nothing left to send
(gone in a moment); a WebSocket.  With none to shed the server stops accepting, as before,
until a connection closes or becomes sheddable.

Per connection this costs two loop times, stored when it opens and when a response leaves it
idle.  The candidates are ranked by one pass over the connections (0.7 ms for 1000), made for a
newcomer at the limit unless the last pass is under RANK_TTL old and has candidates left (and
once a sweep while at the limit): a flood of newcomers costs at most 1/RANK_TTL passes a second,
not one each, at the price of an order up to RANK_TTL stale.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Iterable

from unicorn_aio.http.contract import NEVER, TrackedConnection
from unicorn_aio.http.protocol import HttpProtocol
from unicorn_aio.http.response import error_response

# A connection that has sent no byte yet is not shed until it is this old: its request may be on
# the wire still (with TLS, a round trip behind the handshake).  A rate is taken over this long at
# least, so that the first bytes of a request are not a burst that hides a trickle.
EVICT_GRACE = 1.0
RANK_TTL = 0.1  # seconds a ranking of the candidates is reused for

Rank = tuple[float, ...]


def receive_rate(conn: HttpProtocol, now: float) -> float | None:
    """Bytes per second the client has sent of the request it is sending - its head, or a body
    the app has not started on - since the request began, over EVICT_GRACE at least; 0.0 for a
    new connection that has sent nothing.  None when it sends nothing the server waits on: idle
    after a response, or its request is in the app."""
    requests = conn.requests
    req = requests[0] if requests else conn.current
    if req is not None:
        if req.dispatched:
            return None
        # head_bytes counts the head's packets but the last; close enough for a rate.
        received, since = conn.head_bytes + req.body.buffered, req.start
    elif conn.idle_since == NEVER:
        received, since = 0, conn.opened
    else:
        return None
    return received / max(now - since, EVICT_GRACE)


def evict_rank(conn: HttpProtocol, now: float) -> Rank | None:
    """Where ``conn`` stands in the order above (the lowest is shed first); None if it is never
    shed.  With --body-min-rate 0 no sender is below the minimum, and only idle connections
    (and unread responses) are shed."""
    if conn.lingering or conn.transport.is_closing():
        if conn.transport.get_write_buffer_size() and not in_app(conn):
            return (0.0, conn.opened)
        return None
    if conn.idle:
        if conn.idle_since != NEVER:
            return (1.0, conn.idle_since)
        if now - conn.opened < EVICT_GRACE:
            return None
    rate = receive_rate(conn, now)
    if rate is None or rate >= conn.options.body_min_rate:
        return None
    return (2.0, rate, conn.opened)


def in_app(conn: HttpProtocol) -> bool:
    return any(req.dispatched for req in conn.requests)


class Candidates:
    """The connections that may be shed, ranked by the last pass over them (see above)."""

    __slots__ = ("order", "ranked_at")

    def __init__(self) -> None:
        self.order: list[HttpProtocol] = []  # the first to shed last
        self.ranked_at = -NEVER

    def rank(self, connections: Iterable[TrackedConnection], now: float) -> None:
        ranked = []
        for conn in connections:
            if isinstance(conn, HttpProtocol):  # a WebSocket that took a connection over: never
                rank = evict_rank(conn, now)
                if rank is not None:
                    ranked.append((rank, conn))
        ranked.sort(key=itemgetter(0), reverse=True)
        self.order = [conn for _, conn in ranked]
        self.ranked_at = now

    def first(self, connections: set[TrackedConnection], now: float,
              rank_again: bool = False) -> HttpProtocol | None:
        """The connection to shed first, or None if none may be: the next of the last pass's
        candidates still open and sheddable, with a new pass if ``rank_again``, if the last
        is RANK_TTL old or if none is left.  It stays first until it is shed."""
        if rank_again or now - self.ranked_at >= RANK_TTL:
            self.rank(connections, now)
        order = self.order
        while True:
            while order:
                conn = order[-1]
                if conn in connections and evict_rank(conn, now) is not None:
                    return conn
                order.pop()
            if self.ranked_at == now:
                return None
            self.rank(connections, now)
            order = self.order


def evict(conn: HttpProtocol) -> None:
    """Close ``conn`` to make room.  Between messages silently, as any idle keep-alive connection
    may be closed; mid-request with a 503, which tells the client the server is overloaded, not
    that its request is bad.  Not a lingering close: the point is to free the socket now, and a
    client trickling its request is not owed its answer's safe delivery (unread bytes may make
    the close a reset that the 503 does not survive).  With response bytes unsent, an abort:
    a close would wait for a client that is not reading."""
    conn.deadline = NEVER
    conn.flush()  # a response just finished is the client's, and goes before the close
    transport = conn.transport
    if transport.get_write_buffer_size():
        transport.abort()
        return
    if conn.current is not None or conn.requests:
        transport.write(error_response(503, "the server is at its connection limit"))
    transport.close()
