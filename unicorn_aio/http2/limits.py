"""What one HTTP/2 connection may cost us, in counts: the same whatever the engine.

The engine bounds what it parses (frame sizes, a header block, PING and SETTINGS answered:
engine.FLOOD_BUDGET); the protocol bounds what reaches the app and what it buffers:

* app calls: a stream is dispatched only while fewer than SETTINGS_MAX_CONCURRENT_STREAMS of
  the connection's streams are in the app; a stream over it is refused (REFUSED_STREAM, which
  a client may retry).  That is what the peer was told it may open, so a well-behaved client
  never sees it.
* rapid reset (CVE-2023-44487): a peer that resets a stream whose app call started frees a
  place for a new one while the app may still run (a WSGI thread cannot be interrupted).  Such
  resets are counted; past RESET_BUDGET (refilled by one for every two streams answered in
  full) the connection ends with GOAWAY ENHANCE_YOUR_CALM.  So at most
  max_concurrent_streams + RESET_BUDGET app calls run for one connection, whatever the peer
  does, and a client that cancels now and then (a browser, gRPC) never meets the limit.
* bytes buffered for the peer: a stream's response past STREAM_HIGH unsent bytes pauses its app
  (the WSGI thread blocks, the ASGI send() awaits) until they drop under STREAM_LOW; past
  CONNECTION_HIGH for the whole connection, or while the socket's buffer is full, every app of
  the connection pauses.  A peer that holds a window at zero (slow read) therefore costs at
  most about CONNECTION_HIGH plus one write per stream, and --body-timeout later, a reset.
* bytes buffered from the peer: a request body is credited back (WINDOW_UPDATE) as the app
  reads it, after the first --inline-body-max bytes taken before the app starts.
* streams per connection: after H2Settings.max_streams_per_connection the connection ends
  gracefully (like nginx's keepalive_requests: protocol.py) and clients go on on a new one.
"""

from __future__ import annotations

RESET_BUDGET = 200
STREAM_HIGH = 256 * 1024
STREAM_LOW = 64 * 1024
CONNECTION_HIGH = 1024 * 1024


class ResetCounter:
    """Rapid-reset accounting for one connection (see the module docstring)."""

    __slots__ = ("resets", "answered")

    def __init__(self) -> None:
        self.resets = 0  # peer resets of streams whose app call had started
        self.answered = 0  # streams answered in full

    def reset(self) -> bool:
        """Count one; True when the peer is over its budget."""
        self.resets += 1
        return self.resets > RESET_BUDGET + self.answered // 2
