"""An ASGI scope from a parsed request: its target as raw_path, query_string and path, its
root_path (--root-path or SCRIPT_NAME, or what a trusted proxy says), the connection's
addresses, and the keys every scope of a server shares.

A scope is made per request, on the loop; what repeats is worked out once: the keys a server's
scopes share (a template copied), a connection's addresses (its ``app_state``), and the targets
clients ask for again and again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, unquote_to_bytes

from unicorn_aio.http.contract import Connection
from unicorn_aio.http.forwarded import url_scheme
from unicorn_aio.http.rules import PERCENT, request_path

if TYPE_CHECKING:
    from unicorn_aio.http.request import Request

# spec_version 2.4: send() raises an OSError once the client is gone, so apps (Starlette) need
# not listen for http.disconnect while they stream.
ASGI_VERSION: Final = {"version": "3.0", "spec_version": "2.4"}
EXTENSIONS: Final[dict[str, dict[str, Any]]] = {"http.response.pathsend": {}}
# An HTTP/2 stream (http2/stream.py) sends trailers; HTTP/1.1 here frames no trailer section.
EXTENSIONS_H2: Final[dict[str, dict[str, Any]]] = {**EXTENSIONS, "http.response.trailers": {}}

METHODS: Final = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}


# request target -> (raw_path, query_string, path): clients ask for the same few targets again
# and again (an API's endpoints, a health check), and a repeat costs a lookup.  Emptied when
# full rather than closed to newcomers, so that targets in use replace those no longer asked.
_TARGETS: Final[dict[bytes, tuple[bytes, bytes, str]]] = {}
_TARGETS_MAX: Final = 1024
_TARGET_KEPT: Final = 256  # longer targets are rare, and would hold a lot


def split_target(url: bytes) -> tuple[bytes, bytes, str]:
    """A request target as a scope's raw_path, query_string and path (before root_path)."""
    if url[:1] == b"/" and 35 not in url:  # origin-form, no "#": request_path's usual case
        raw_path, _, query = url.partition(b"?")
        path = (unquote_to_bytes(raw_path) if PERCENT in raw_path else raw_path).decode(
            "utf-8", "replace")
    else:
        raw_path, query = request_path(url)
        path = decode_path(raw_path)
    target = (raw_path, query, path)
    if len(url) <= _TARGET_KEPT:
        if len(_TARGETS) >= _TARGETS_MAX:
            _TARGETS.clear()
        _TARGETS[url] = target
    return target


def decode_path(raw_path: bytes) -> str:
    path = unquote_to_bytes(raw_path) if PERCENT in raw_path else raw_path
    return path.decode("utf-8", "replace")


_PATH_SAFE: Final = "/:@!$&'()*+,;=~"  # RFC 3986 pchar and "/": left as they are in a raw_path


def encode_path(path: str) -> bytes:
    """A decoded path (a root_path) as raw_path bytes."""
    return quote(path, _PATH_SAFE).encode("ascii")


def mount_point(script_name: str) -> str:
    """root_path from a SCRIPT_NAME: "/app/" mounts at "/app", as "/" does at the root."""
    return script_name.rstrip("/")


class Scopes:
    """The scopes of one server's requests (HTTP, and a WebSocket's handshake)."""

    __slots__ = ("root_path", "raw_root", "state", "http", "http2")

    def __init__(self, http_scheme: str, root_path: str, state: dict[str, Any]) -> None:
        # root_path: --root-path or the SCRIPT_NAME variable, unless a trusted proxy sends one
        self.root_path = root_path
        self.raw_root = encode_path(root_path)
        self.state = state  # the app fills it at lifespan startup; each scope gets a copy
        # An HTTP scope's keys, in order, with what every request on this server shares: a
        # copy of a dict is cheaper to make than a literal of 14 keys, and the rest is set on it.
        self.http: dict[str, Any] = {
            "type": "http", "asgi": ASGI_VERSION, "http_version": "1.1", "method": "GET",
            "scheme": http_scheme, "path": "/", "raw_path": b"/", "query_string": b"",
            "root_path": root_path, "headers": [], "client": None, "server": None,
            "state": None, "extensions": EXTENSIONS}
        self.http2 = {**self.http, "extensions": EXTENSIONS_H2}

    def make(self, kind: str, protocol: Connection, req: Request, scheme: str) -> dict[str, Any]:
        """``req``'s scope of type ``kind`` ("http" or "websocket"), for ``scheme`` unless a
        trusted proxy said otherwise."""
        target = _TARGETS.get(req.url)
        raw_path, query, path = target if target is not None else split_target(req.url)
        conn = protocol.app_state
        if conn is None:  # what is the same for every request on this connection
            peer, sock = protocol.peername, protocol.sockname
            conn = protocol.app_state = (
                peer[:2] if isinstance(peer, tuple) else None,
                sock[:2] if isinstance(sock, tuple) else (str(sock or ""), None))
        version = req.version
        scope = (self.http2 if version == "2" else self.http).copy()
        root = self.root_path
        proxied = req.proxied
        if proxied is not None:
            scheme = url_scheme(proxied, scheme)
            if proxied.script_name is not None:  # a trusted proxy's SCRIPT_NAME: the mount point
                scope["root_path"] = root = mount_point(
                    proxied.script_name.decode("utf-8", "replace"))
        if kind != "http" or proxied is not None:
            scope["type"], scope["scheme"] = kind, scheme
            if kind != "http":
                del scope["extensions"]  # a WebSocket's are its own (websocket.py)
        if root and not (path.startswith(root) and path[len(root):len(root) + 1] in ("", "/")):
            # path includes root_path (ASGI; uvicorn --root-path): a proxy that stripped the
            # prefix has it put back
            raw_root = self.raw_root if root is self.root_path else encode_path(root)
            path, raw_path = root + path, raw_root + raw_path
        scope["http_version"] = version
        scope["method"] = METHODS.get(req.method) or req.method.decode("ascii")
        scope["path"] = path
        scope["raw_path"] = raw_path
        scope["query_string"] = query
        # A loop, not a comprehension: in 3.11 that is a function made and called, which costs
        # more than the one or two fields many requests have.
        scope["headers"] = headers = []
        for name, value in req.headers:
            headers.append((name.lower(), value))
        scope["client"], scope["server"] = conn
        scope["state"] = self.state.copy() if self.state else {}
        return scope
