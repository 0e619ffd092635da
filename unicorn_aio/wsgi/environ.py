"""The WSGI environ (PEP 3333): what each request's dict holds, and where it comes from.

Two halves, base classes of the WSGI adapter's, so the per-request path pays no extra call:
``ServerEnviron`` into ``WSGIHandler`` (one per server: the keys every request shares) and
``RequestEnviron`` into ``WSGICycle`` (one per request: the keys from its line and headers, and
what a trusted proxy said of it, decided in http/forwarded.py as for ASGI).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote_to_bytes

from unicorn_aio.http.forwarded import url_scheme
from unicorn_aio.http.response import early_hints_head
from unicorn_aio.http.rules import PERCENT, request_path
from unicorn_aio.wsgi.sendfile import FileSender

if TYPE_CHECKING:
    from unicorn_aio.config.config import Config
    from unicorn_aio.http.contract import Connection
    from unicorn_aio.http.protocol import Request
    from unicorn_aio.wsgi.threadpool import ThreadPool

# Header name -> environ key, shared across requests: real traffic repeats a few dozen names.
_ENVIRON_KEYS: Final[dict[bytes, str]] = {b"Content-Type": "CONTENT_TYPE", b"Content-Length": "CONTENT_LENGTH"}
_METHODS: Final = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}
_PROTOCOLS: Final = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0", "2": "HTTP/2.0"}  # 2.0: as gunicorn 27


# request target -> (RAW_URI, PATH_INFO before SCRIPT_NAME, QUERY_STRING): clients ask for the
# same few targets again and again (an API's endpoints, a health check), and a repeat costs a
# lookup.  Emptied when full rather than closed to newcomers, so targets in use replace those
# no longer asked for (as asgi/scope.py's).
_TARGETS: Final[dict[bytes, tuple[str, str, str]]] = {}
_TARGETS_MAX: Final = 1024
_TARGET_KEPT: Final = 256  # longer targets are rare, and would hold a lot


def split_target(url: bytes) -> tuple[str, str, str]:
    """A request target as RAW_URI, PATH_INFO (before SCRIPT_NAME is taken off) and
    QUERY_STRING."""
    raw_uri = url.decode("latin-1")
    path, query = request_path(url)
    if path is url and url[:1] == b"/" and PERCENT not in url:  # "/path": RAW_URI as it is
        path_info = raw_uri
    else:
        path = unquote_to_bytes(path) if PERCENT in path else path
        path_info = path.decode("latin-1")
    target = (raw_uri, path_info, query.decode("latin-1") if query else "")
    if len(url) <= _TARGET_KEPT:
        if len(_TARGETS) >= _TARGETS_MAX:
            _TARGETS.clear()
        _TARGETS[url] = target
    return target


def environ_key(name: bytes) -> str:
    key = _ENVIRON_KEYS.get(name)
    if key is None:
        upper = name.decode("latin-1").upper()
        # Only the real fields: "Content_Length" (kept by --header-map dangerous) is
        # HTTP_CONTENT_LENGTH, as in gunicorn, never merged into the framing's CONTENT_LENGTH.
        key = upper.replace("-", "_")
        if upper not in ("CONTENT-TYPE", "CONTENT-LENGTH"):
            key = "HTTP_" + key
        if len(_ENVIRON_KEYS) < 4096:
            _ENVIRON_KEYS[name] = key
    return key


class FileWrapper:
    """``wsgi.file_wrapper``: a file the server may send with sendfile(2) (PEP 3333)."""

    def __init__(self, filelike: Any, blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while True:
            data = read(self.blksize)
            if not data:
                return
            yield data

    def fileno(self) -> int | None:
        try:
            return self.filelike.fileno()
        except (AttributeError, OSError, ValueError):
            return None


# What build_environ sets for every request (connection_environ makes room for them).
_PER_REQUEST_KEYS: Final = ("REMOTE_ADDR", "REMOTE_PORT", "gunicorn.socket", "PATH_INFO",
                     "REQUEST_METHOD", "RAW_URI", "QUERY_STRING", "SERVER_PROTOCOL", "wsgi.input",
                     "wsgi.early_hints")


class ServerEnviron:
    """The server's half: the keys shared by every request."""

    pool: ThreadPool  # WSGIHandler's

    def __init__(self, cfg: Config, *, software: str, is_ssl: bool) -> None:
        self.base_environ = {
            "wsgi.version": (1, 0),
            "wsgi.multithread": cfg.dispatch != "inline" and cfg.threads > 1,
            "wsgi.multiprocess": cfg.workers > 1,
            "wsgi.run_once": False,
            "wsgi.errors": sys.stderr,
            "wsgi.file_wrapper": FileWrapper,
            "wsgi.input_terminated": True,
            "SERVER_SOFTWARE": software,
            "SCRIPT_NAME": cfg.mount_point,
            "wsgi.url_scheme": "https" if is_ssl else "http",
        }
        # local address -> base environ with its server keys
        self._server_environs: dict[Any, dict[str, Any]] = {}

    def connection_environ(self, protocol: Connection) -> tuple[dict[str, Any], str, str, Any]:
        """What a connection keeps for its requests: (base environ, REMOTE_ADDR, REMOTE_PORT,
        gunicorn.socket).

        The base environ (base_environ with SERVER_NAME and SERVER_PORT) is
        shared by every connection to the same local address, so an idle keep-alive connection
        holds a tuple and one short string, not a dict of its own."""
        peer, sock = protocol.peername, protocol.sockname
        if isinstance(peer, tuple):
            remote_addr, remote_port = peer[0], str(peer[1])
        else:  # AF_UNIX: nginx in front; the client address comes in its headers
            remote_addr = remote_port = ""
        base = self._server_environs.get(sock)
        if base is None:
            base = self.base_environ.copy()
            if isinstance(sock, tuple):
                base["SERVER_NAME"], base["SERVER_PORT"] = sock[0], str(sock[1])
            else:
                base["SERVER_NAME"], base["SERVER_PORT"] = str(sock or ""), ""
            # The keys build_environ sets for every request, here already: its copy then has
            # room for them, where adding them to a copy of 12 keys resized it mid-request.
            base.update(dict.fromkeys(_PER_REQUEST_KEYS))
            if len(self._server_environs) < 64:  # a wildcard bind sees a few local addresses
                self._server_environs[sock] = base
        # gunicorn.socket: gunicorn's environ holds the client's socket. Ours is the event
        # loop's, as the transport lends it: addresses, options and fileno() work; send() and
        # recv() are refused, as the loop owns the connection (docs/gunicorn-differences.md).
        return base, remote_addr, remote_port, protocol.transport.get_extra_info("socket")


class RequestEnviron(FileSender):
    """The request's half, a base class of ``WSGICycle``: needs its ``handler``, ``protocol``
    and ``req``."""

    req: Request
    environ: dict[str, Any] | None = None

    def build_environ(self) -> dict[str, Any]:
        req, protocol = self.req, self.protocol
        conn: tuple[dict[str, Any], str, str, Any] | None = protocol.app_state
        if conn is None:
            conn = protocol.app_state = self.handler.connection_environ(protocol)
        base, remote_addr, remote_port, sock = conn
        env = base.copy()  # typed, a dict copy in C rather than a method call
        env["REMOTE_ADDR"] = remote_addr
        env["REMOTE_PORT"] = remote_port
        env["gunicorn.socket"] = sock
        keys = _ENVIRON_KEYS
        for name, raw in req.headers:
            key = keys.get(name) or environ_key(name)
            value = raw.decode("latin-1")
            if key in env:
                value = env[key] + "," + value  # RFC 9110 5.3: a repeated field is one list
            env[key] = value
        proxied = req.proxied
        script_name = env["SCRIPT_NAME"]
        if proxied is not None:
            env["wsgi.url_scheme"] = url_scheme(proxied, env["wsgi.url_scheme"])
            # A trusted proxy's "SCRIPT_NAME: /app" mounts the app there, as in gunicorn; its
            # other forwarder headers are HTTP_* keys above, and none replaces the path.
            if proxied.script_name is not None:
                script_name = env["SCRIPT_NAME"] = proxied.script_name.decode("latin-1")
        target = _TARGETS.get(req.url)
        raw_uri, path_info, query = target if target is not None else split_target(req.url)
        if script_name:  # the mount point, taken off PATH_INFO at a "/" only
            if path_info.startswith(script_name) and \
                    path_info[len(script_name):len(script_name) + 1] in ("", "/"):
                path_info = path_info[len(script_name):]
            else:  # outside it ("/application" for "/app"): the whole path is PATH_INFO
                env["SCRIPT_NAME"] = ""
        env["PATH_INFO"] = path_info
        env["REQUEST_METHOD"] = _METHODS.get(req.method) or req.method.decode("ascii")
        env["RAW_URI"] = raw_uri
        env["QUERY_STRING"] = query
        env["SERVER_PROTOCOL"] = _PROTOCOLS.get(req.version) or "HTTP/" + req.version
        env["wsgi.input"] = req.body
        env["wsgi.early_hints"] = EarlyHints(req)
        self.environ = env
        return env

    def write_hint(self, data: bytes) -> None:
        """Loop thread: a 103 head (early_hints) to the client."""
        protocol = self.protocol
        if not self.lost and not protocol.transport.is_closing():
            protocol.write(data)


class EarlyHints:
    """``wsgi.early_hints`` (gunicorn 27): a 103 Early Hints response ahead of the app's, each
    call one; nothing once the response head has gone or the request is answered, nor to an
    HTTP/1.0 client (as gunicorn).  Over HTTP/2 the stream sends it as an interim HEADERS frame.

    Bound to the request, not to its cycle: the environ holds no reference back to the cycle.
    A class rather than a bound function: the compiled build makes one without a generic call."""

    __slots__ = ("req",)

    def __init__(self, req: Request) -> None:
        self.req = req

    def __call__(self, headers: Iterable[Any]) -> None:
        req = self.req
        cycle = req.cycle
        if not isinstance(cycle, RequestEnviron) or cycle.head_sent or req.version == "1.0":
            return
        data = early_hints_head(headers)
        if cycle.on_loop:
            cycle.write_hint(data)
        else:  # before the head: the loop runs these callbacks in order, the head's after
            cycle.handler.pool.call_on_loop(cycle.write_hint, data)
