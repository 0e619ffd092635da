"""The WSGI environ (PEP 3333): what each request's dict holds, and where it comes from.

Two halves, mixed into the WSGI adapter's classes so the per-request path pays no extra call:
``ServerEnviron`` into ``WSGIHandler`` (one per server: the keys every request shares, the proxy
settings) and ``RequestEnviron`` into ``WSGICycle`` (one per request: the keys from its line and
headers, and what a trusted proxy may change).
"""

from __future__ import annotations

import sys
from urllib.parse import unquote_to_bytes

from unicorn_aio.http.proxy_protocol import AddressList
from unicorn_aio.http.rules import PERCENT, Reject

# Header name -> environ key, shared across requests: real traffic repeats a few dozen names.
_ENVIRON_KEYS: dict[bytes, str] = {b"Content-Type": "CONTENT_TYPE", b"Content-Length": "CONTENT_LENGTH"}
_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}
_PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}


def environ_key(name: bytes) -> str:
    key = _ENVIRON_KEYS.get(name)
    if key is None:
        upper = name.decode("latin-1").upper().replace("-", "_")
        key = upper if upper in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + upper
        if len(_ENVIRON_KEYS) < 4096:
            _ENVIRON_KEYS[name] = key
    return key


class FileWrapper:
    """``wsgi.file_wrapper``: a file the server may send with sendfile(2) (PEP 3333)."""

    def __init__(self, filelike, blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
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


class ServerEnviron:
    """The server's half: the keys shared by every request, and gunicorn's proxy settings."""

    def __init__(self, server) -> None:
        cfg = server.cfg
        # environ key -> the value meaning https, honoured from forwarded_allow_ips only
        self.secure_headers = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in
                               (cfg.secure_scheme_headers or {}).items()}
        self.trusted = AddressList(cfg.forwarded_allow_ips)
        # forwarder_headers: environ key as a header ("HTTP_SCRIPT_NAME") -> its own key
        self.forwarders = {"HTTP_" + name.replace("-", "_"): name
                           for name in cfg.forwarder_headers or ()}
        # The keys that need a look after the headers are in: most requests carry none.
        self.proxy_keys = frozenset(self.secure_headers) | frozenset(self.forwarders)
        self.header_map = cfg.header_map
        self.base_environ = {
            "wsgi.version": (1, 0),
            "wsgi.multithread": cfg.dispatch != "inline" and server.pool.size > 1,
            "wsgi.multiprocess": cfg.workers > 1,
            "wsgi.run_once": False,
            "wsgi.errors": sys.stderr,
            "wsgi.file_wrapper": FileWrapper,
            "wsgi.input_terminated": True,
            "SERVER_SOFTWARE": server.software,
            "SCRIPT_NAME": cfg.mount_point,
            "wsgi.url_scheme": "https" if server.is_ssl else "http",
        }
        self._server_environs: dict = {}  # local address -> base environ with its server keys

    def connection_environ(self, protocol) -> tuple[dict, str, str]:
        """What a connection keeps for its requests: (base environ, REMOTE_ADDR, REMOTE_PORT).

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
            if len(self._server_environs) < 64:  # a wildcard bind sees a few local addresses
                self._server_environs[sock] = base
        return base, remote_addr, remote_port


class RequestEnviron:
    """The request's half, for ``WSGICycle``: needs its ``handler``, ``protocol`` and ``req``."""

    environ: dict | None = None

    def build_environ(self) -> dict:
        req, protocol = self.req, self.protocol
        conn = protocol.app_state
        if conn is None:
            conn = protocol.app_state = self.handler.connection_environ(protocol)
        base, remote_addr, remote_port = conn
        env = base.copy()
        env["REMOTE_ADDR"] = remote_addr
        env["REMOTE_PORT"] = remote_port
        keys = _ENVIRON_KEYS
        proxy_keys = self.handler.proxy_keys
        proxied = False
        for name, value in req.headers:
            key = keys.get(name) or environ_key(name)
            if key in proxy_keys:
                proxied = True
            value = value.decode("latin-1")
            if key in env:
                value = env[key] + "," + value  # RFC 9110 5.3: a repeated field is one list
            env[key] = value
        forwarded_path = proxied and self.handler.forwarders and self._forwarded_keys(env)
        url = req.url
        path, _, query = url.partition(b"?")
        if not forwarded_path:
            if path[:1] != b"/" and path != b"*":  # absolute-form: keep only the path
                scheme_end = path.find(b"//")
                slash = path.find(b"/", scheme_end + 2)
                path = path[slash:] if slash >= 0 else b"/"
            path = unquote_to_bytes(path) if PERCENT in path else path
            path_info = path.decode("latin-1")
            script_name = env["SCRIPT_NAME"]
            if script_name:  # --root-path: the mount point, taken off PATH_INFO at a "/" only
                if path_info.startswith(script_name) and \
                        path_info[len(script_name):len(script_name) + 1] in ("", "/"):
                    path_info = path_info[len(script_name):]
                else:  # outside it ("/application" for "/app"): the whole path is PATH_INFO
                    env["SCRIPT_NAME"] = ""
            env["PATH_INFO"] = path_info
        env["REQUEST_METHOD"] = _METHODS.get(req.method) or req.method.decode("ascii")
        env["RAW_URI"] = url.decode("latin-1")
        env["QUERY_STRING"] = query.decode("latin-1")
        env["SERVER_PROTOCOL"] = _PROTOCOLS.get(req.version) or "HTTP/" + req.version
        env["wsgi.input"] = req.body
        self.environ = env
        if proxied and self.handler.secure_headers:
            self._forwarded_scheme(env)
        return env

    def _forwarded_keys(self, env: dict) -> bool:
        """gunicorn's forwarder_headers: a trusted proxy's ``SCRIPT_NAME: /app`` header becomes
        environ["SCRIPT_NAME"] (and PATH_INFO likewise); from anyone else such headers are
        dropped, as header_map drops underscore names.  True if PATH_INFO came this way.

        Only the name as listed counts: ``Script-Name`` shares the environ key HTTP_SCRIPT_NAME
        but is an ordinary header a client can send through the proxy, so it stays one.
        """
        forwarders = self.handler.forwarders
        present = [key for key in forwarders if key in env]
        if not present:
            return False
        trusted = env["REMOTE_ADDR"] in self.handler.trusted
        path_info = False
        for key in present:
            name = forwarders[key]
            listed, other = [], []
            for raw, value in self.req.headers:
                if (_ENVIRON_KEYS.get(raw) or environ_key(raw)) == key:
                    same = raw.upper() == name.upper().encode("latin-1")
                    (listed if same else other).append(value.decode("latin-1"))
            del env[key]
            if trusted and listed:
                env[name] = ",".join(listed)
                path_info = path_info or key == "HTTP_PATH_INFO"
            elif self.handler.header_map == "dangerous":
                other = listed + other  # what any other header would have been
            if other:
                env[key] = ",".join(other)
        return path_info

    def _forwarded_scheme(self, env: dict) -> None:
        """wsgi.url_scheme from secure_scheme_headers sent by a trusted proxy, as gunicorn does.

        Each header present says https (its value matches exactly) or http (any other value);
        headers that disagree are refused (400).  Trust goes by REMOTE_ADDR, which is the client
        a PROXY protocol header named, if any: a client behind a TCP proxy cannot vouch for
        itself, where trusting the proxy's socket address (gunicorn's choice) would let it.
        """
        scheme = None
        for key, secure_value in self.handler.secure_headers.items():
            value = env.get(key)
            if value is None:
                continue
            if env["REMOTE_ADDR"] not in self.handler.trusted:
                return
            # A repeated header arrives joined with "," - the same value twice is still one.
            secure = value == secure_value or all(
                part.strip() == secure_value for part in value.split(","))
            this = "https" if secure else "http"
            if scheme is not None and this != scheme:
                raise Reject(400, "secure scheme headers disagree ("
                             + ", ".join(k[5:] for k in self.handler.secure_headers if k in env)
                             + ")")
            scheme = this
        if scheme is not None:
            env["wsgi.url_scheme"] = scheme
