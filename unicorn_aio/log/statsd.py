"""StatsD metrics, the ones gunicorn sends for `--statsd-host`.

`Statsd` is a `logger.Logger` that also measures: with statsd_host set it replaces the default
logger (as gunicorn's `instrument.statsd.Statsd` does), so the metrics ride on calls the server
makes anyway:

- `access()`, once per request: `gunicorn.request.duration` (histogram, ms),
  `gunicorn.requests` and `gunicorn.request.status.<code>` (counters). It runs even with no
  access log: the logger reports `access_enabled`, and writes a line only when there is a log;
- the level methods: `gunicorn.log.critical`, `.error`, `.warning`, `.exception` (counters);
- any log call whose `extra` holds "metric", "value" and "mtype" (gauge, counter or histogram)
  sends that metric; the master reports `gunicorn.workers` (gauge) and, with
  `enable_backlog_metric`, `gunicorn.backlog` (histogram) this way, as gunicorn's does.

Names, types and the wire format (`name:value|type`, `|@1.0` on counters, `|#tags` for
dogstatsd) are gunicorn's, so dashboards built on gunicorn keep working. What differs:
- a request's three metrics travel in one datagram, one per line (the statsd protocol's
  multi-metric packet): one system call per request instead of three;
- the socket is non-blocking and not connected: a statsd server that is down, slow or restarted
  costs a dropped datagram, never a request, and a unix socket that a restarted agent recreates is
  found again. The first failed send is reported once on the error log; gunicorn logs every one.
- a value of 0 is sent (gunicorn drops falsy values, so its workers gauge never reads 0).
"""

from __future__ import annotations

import logging
import re
import socket
from typing import Any, Sequence, TypeAlias

from unicorn_aio.log.access import split_time, status_code
from unicorn_aio.log.logger import Logger

__all__ = ["DEFAULT_PORT", "Statsd", "parse_address"]

DEFAULT_PORT = 8125
ADDRESS_FORMS = "expected HOST:PORT, HOST (port 8125), [IPv6]:PORT or unix:PATH"

# mtype of a log record's extra -> what follows the value on the wire.
_TYPES = {"gauge": "|g", "counter": "|c|@1.0", "histogram": "|ms"}

# statsd_host as gunicorn stores it: (host, port), or the path of a unix socket.
Address: TypeAlias = "tuple[str, int] | str"
# Where the datagrams go: a unix socket path, or the sockaddr getaddrinfo gave for (host, port).
Destination: TypeAlias = "str | tuple[Any, ...]"


def parse_address(val: str | None) -> Address | None:
    """statsd_host as gunicorn stores it: None, (host, port), or the path of a unix socket.
    Raises ValueError naming the value and the accepted forms."""
    if not val:
        return None
    if re.fullmatch(r"unix:\d+", val):
        return ("unix", int(val[5:]))  # gunicorn reads unix:8125 as a host named unix
    if val.startswith("unix:"):
        path = val[5:].removeprefix("//")
        if not path:
            raise ValueError(f"{val!r} has no socket path ({ADDRESS_FORMS})")
        return path
    netloc = re.sub(r"^(udp|tcp)://", "", val)
    if netloc.startswith("["):
        host, sep, port = netloc[1:].partition("]")
        if not sep or (port and not port.startswith(":")):
            raise ValueError(f"{val!r} is not a valid address ({ADDRESS_FORMS})")
        port = port[1:]
    else:
        host, _, port = netloc.partition(":")
    port = port or str(DEFAULT_PORT)
    if not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"{val!r} has an invalid port {port!r} ({ADDRESS_FORMS})")
    if not host or any(c.isspace() or c in "/[]" for c in host):
        raise ValueError(f"{val!r} has an invalid host {host!r} ({ADDRESS_FORMS})")
    return host.lower(), int(port)


def _open(address: Address) -> tuple[socket.socket, Destination]:
    """A non-blocking datagram socket and where its datagrams go; OSError if neither can be had."""
    dest: Destination
    if isinstance(address, str):
        family, dest = socket.AF_UNIX, address
    else:
        host, port = address
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        # IPv4 first: gunicorn only speaks IPv4, so "localhost" must reach a statsd on 127.0.0.1.
        family, _, _, _, dest = min(infos, key=lambda info: info[0] != socket.AF_INET)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    return sock, dest


class Statsd(Logger):
    """A statsd client that passes as the logger. `gauge`, `increment`, `decrement` and
    `histogram` are gunicorn's, for hooks that send metrics of their own (`worker.log`)."""

    sock: socket.socket | None = None
    dest: Destination | None = None
    prefix = ""
    tags = ""
    access_lines = False  # what access_enabled would be without statsd: is there an access log?
    _send_warned = False

    def setup(self, cfg: Any) -> None:
        problem = self._open_socket(cfg)
        super().setup(cfg)
        if problem:
            self.warning("%s; no statsd metrics will be sent", problem)
        self.access_lines = self.access_enabled
        self.access_enabled = True  # every request is measured, logged or not

    def _open_socket(self, cfg: Any) -> str | None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        prefix = (getattr(cfg, "statsd_prefix", None) or "").rstrip(".")
        self.prefix = prefix + "." if prefix else ""
        tags = getattr(cfg, "dogstatsd_tags", None)
        self.tags = "|#" + tags if tags else ""
        address = getattr(cfg, "statsd_host", None)
        if address is None:
            return None
        try:
            self.sock, self.dest = _open(address)
        except (OSError, TypeError, ValueError) as exc:
            return f"cannot reach the statsd server at {_describe(address)} ({exc})"
        self._send_warned = False
        return None

    # ---- sending -----------------------------------------------------------------------------

    def _send(self, text: str) -> None:
        sock, dest = self.sock, self.dest
        if sock is None or dest is None:  # set together by _open_socket
            return
        try:
            sock.sendto(text.encode("utf-8"), dest)
        except Exception as exc:  # down, full, gone: the metric is lost, the request is not
            if not self._send_warned:
                self._send_warned = True
                # Logger.warning: this line must not count itself as gunicorn.log.warning.
                Logger.warning(self, "statsd: cannot send to %s (%s: %s); metrics are dropped "
                               "while it fails, further failures are not reported",
                               _describe(dest), type(exc).__name__, exc)

    def _line(self, name: str, value: object, kind: str) -> str:
        return f"{self.prefix}{name}:{value}{kind}{self.tags}"

    def gauge(self, name: str, value: object) -> None:
        self._send(self._line(name, value, "|g"))

    def increment(self, name: str, value: object, sampling_rate: float = 1.0) -> None:
        self._send(self._line(name, value, f"|c|@{sampling_rate}"))

    def decrement(self, name: str, value: object, sampling_rate: float = 1.0) -> None:
        self._send(self._line(name, f"-{value}", f"|c|@{sampling_rate}"))

    def histogram(self, name: str, value: object) -> None:
        self._send(self._line(name, value, "|ms"))

    def _extra_metric(self, kwargs: dict[str, Any]) -> None:
        extra = kwargs.get("extra")
        if not extra:
            return
        try:
            metric, value, kind = extra.get("metric"), extra.get("value"), _TYPES.get(extra.get("mtype"))
            if metric and value is not None and kind:
                self._send(self._line(metric, value, kind))
        except Exception:
            pass  # an odd extra is the caller's business; the line itself still goes out

    # ---- the logger's calls ------------------------------------------------------------------

    def access(self, environ: dict[str, Any], status: str, response_headers: Sequence[tuple[str, str]],
               sent: int | None, request_time: float) -> None:
        if self.access_lines:
            Logger.access(self, environ, status, response_headers, sent, request_time)
        if self.sock is None:
            return
        try:
            whole, micro = split_time(request_time)
            ms = whole * 1000 + micro / 1000  # gunicorn's arithmetic on its timedelta: "12.345"
            p, t = self.prefix, self.tags
            self._send(f"{p}gunicorn.request.duration:{ms}|ms{t}\n"
                       f"{p}gunicorn.requests:1|c|@1.0{t}\n"
                       f"{p}gunicorn.request.status.{status_code(status)}:1|c|@1.0{t}")
        except Exception:
            pass

    def critical(self, msg: object, *args: object, **kwargs: Any) -> None:
        Logger.critical(self, msg, *args, **kwargs)
        self._counted("gunicorn.log.critical", kwargs)

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        Logger.error(self, msg, *args, **kwargs)
        self._counted("gunicorn.log.error", kwargs)

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        Logger.warning(self, msg, *args, **kwargs)
        self._counted("gunicorn.log.warning", kwargs)

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        Logger.exception(self, msg, *args, **kwargs)
        self._counted("gunicorn.log.exception", kwargs)

    def _counted(self, name: str, kwargs: dict[str, Any]) -> None:
        self.increment(name, 1)
        self._extra_metric(kwargs)

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.log(logging.INFO, msg, *args, **kwargs)

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.log(logging.DEBUG, msg, *args, **kwargs)

    def log(self, lvl: int | str, msg: object, *args: object, **kwargs: Any) -> None:
        self._extra_metric(kwargs)
        if msg:  # as in gunicorn, a call that only carries a metric writes no line
            Logger.log(self, lvl, msg, *args, **kwargs)


def _describe(dest: Destination) -> str:
    if isinstance(dest, str):
        return f"unix:{dest}"
    host, port = dest[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
