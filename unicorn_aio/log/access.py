"""Access-log lines: gunicorn's atoms, computed lazily from a request's WSGI environ.

Every atom gunicorn documents (h l u t r s m U q H b B f a T M D L p, {header}i, {header}o,
{var}e) gives the same text as gunicorn's `SafeAtoms` for the same request; `logger.Logger.access`
formats them into a line or a JSON object.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from typing import Any, Callable, Mapping, Protocol, Sequence


class Clock(Protocol):
    """What the atoms need of the logger: %t, formatted by it (`logger.Logger.now` caches it)."""

    def now(self) -> str: ...


def basic_auth_user(authorization: str | None) -> str | None:
    """The user name of an HTTP Basic `Authorization` header, or None (gunicorn's `_get_user`)."""
    if not authorization or authorization[:5].lower() != "basic":
        return None
    parts = authorization.split(" ", 1)
    if len(parts) != 2:
        return None
    try:
        decoded = base64.b64decode(parts[1].strip().encode("utf-8")).decode("utf-8")
    except (TypeError, ValueError, binascii.Error):  # UnicodeError is a ValueError
        return None
    user, sep, _ = decoded.partition(":")
    return user if sep else None


def split_time(seconds: float) -> tuple[int, int]:
    """(whole seconds, microseconds) of a duration: what gunicorn reads off its timedelta."""
    return divmod(round(seconds * 1_000_000), 1_000_000)


def _milliseconds(seconds: float) -> int:
    whole, micro = split_time(seconds)
    return whole * 1000 + micro // 1000


def _raw_uri(environ: Mapping[str, Any]) -> str:
    uri = environ.get("RAW_URI")
    if uri is None:
        uri = environ.get("PATH_INFO", "")
        if environ.get("QUERY_STRING"):
            uri = f"{uri}?{environ['QUERY_STRING']}"
    return uri


def status_code(status: str | int) -> str | int:
    return status.split(None, 1)[0] if isinstance(status, str) else status


def refused_environ(line: tuple[bytes, bytes, str], peer: Any) -> dict[str, str]:
    """The environ of the access line for a request the parser refused: gunicorn's
    default_environ for it, its request line and the client's address, no header."""
    method, target, version = line
    uri = target.decode("latin-1")
    return {"REMOTE_ADDR": peer[0] if isinstance(peer, tuple) else "",
            "REQUEST_METHOD": method.decode("latin-1"), "RAW_URI": uri,
            "QUERY_STRING": uri.partition("?")[2], "SERVER_PROTOCOL": "HTTP/2.0" if version == "2" else "HTTP/" + version}  # as environ.py


def default_line(logger: Clock, environ: Mapping[str, Any], status: str | int, sent: int | None) -> str:
    """gunicorn's default access_log_format, ``%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s
    "%(f)s" "%(a)s"``, formatted directly: the same text as through AccessAtoms (the tests
    hold both to gunicorn's lines) at a third of the cost, and nearly every deployment uses it."""
    get = environ.get
    host = get("REMOTE_ADDR", "-")
    auth = get("HTTP_AUTHORIZATION")
    user = (basic_auth_user(auth) or "-") if auth else "-"
    uri = get("RAW_URI")
    request = f'{get("REQUEST_METHOD", "-")} {_raw_uri(environ) if uri is None else uri} ' \
              f'{get("SERVER_PROTOCOL", "-")}'
    referer = get("HTTP_REFERER", "-")
    agent = get("HTTP_USER_AGENT", "-")
    if '"' in request or '"' in agent or '"' in referer or '"' in user or '"' in host:
        host, user, request, referer, agent = (
            field.replace('"', '\\"') for field in (host, user, request, referer, agent))
    return f'{host} - {user} {logger.now()} "{request}" {status_code(status)} ' \
           f'{"-" if sent is None else sent} "{referer}" "{agent}"'


# One entry per gunicorn atom; each reads the request off an AccessAtoms. None and ints are kept
# as gunicorn keeps them, so `%(D)d` works and an absent QUERY_STRING prints "None" as there.
_ATOMS: dict[str, Callable[[AccessAtoms], Any]] = {
    "h": lambda a: a.environ.get("REMOTE_ADDR", "-"),
    "l": lambda a: "-",
    "u": lambda a: basic_auth_user(a.environ.get("HTTP_AUTHORIZATION")) or "-",
    "t": lambda a: a.logger.now(),
    "r": lambda a: "%s %s %s" % (
        a.environ.get("REQUEST_METHOD", "-"), _raw_uri(a.environ), a.environ.get("SERVER_PROTOCOL", "-")
    ),
    "s": lambda a: status_code(a.status),
    "m": lambda a: a.environ.get("REQUEST_METHOD"),
    "U": lambda a: a.environ.get("PATH_INFO"),
    "q": lambda a: a.environ.get("QUERY_STRING"),
    "H": lambda a: a.environ.get("SERVER_PROTOCOL"),
    # gunicorn (since 19.x) prints "0" for an empty body, not Apache's "-".
    "b": lambda a: "-" if a.sent is None else str(a.sent),
    "B": lambda a: a.sent,
    "f": lambda a: a.environ.get("HTTP_REFERER", "-"),
    "a": lambda a: a.environ.get("HTTP_USER_AGENT", "-"),
    "T": lambda a: split_time(a.request_time)[0],
    "D": lambda a: round(a.request_time * 1_000_000),
    "M": lambda a: _milliseconds(a.request_time),
    "L": lambda a: "%d.%06d" % split_time(a.request_time),
    "p": lambda a: "<%d>" % os.getpid(),
}

# Readable names for access_log_json; headers and environ variables are named below.
_JSON_NAMES = {
    "h": "remote_addr", "l": "ident", "u": "user", "t": "time", "r": "request", "s": "status",
    "m": "method", "U": "path", "q": "query", "H": "protocol", "b": "response_length",
    "B": "bytes_sent", "f": "referer", "a": "user_agent", "T": "request_time_s",
    "M": "request_time_ms", "D": "request_time_us", "L": "request_time", "p": "pid",
}
_JSON_BRACE_PREFIX = {"i": "request_header.", "o": "response_header.", "e": "environ."}

# Request headers not under HTTP_ in a PEP 3333 environ.
_ENVIRON_HEADER_KEYS = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}


def _environ_header_key(name: str) -> str:
    key = _ENVIRON_HEADER_KEYS.get(name)
    if key is None:
        key = _ENVIRON_HEADER_KEYS[name] = "HTTP_" + name.upper().replace("-", "_")
    return key


class AccessAtoms(dict[str, Any]):
    """The atoms of one request, each computed on its first lookup; gunicorn's SafeAtoms, lazily.

    `format % atoms` and logging's `record.args` look keys up through dict.__getitem__, which
    calls `__missing__` only for atoms not computed yet, so a line pays for the atoms its format
    names and no others. As in SafeAtoms: an unknown atom reads "-", `{...}` atoms are
    case-insensitive, and '"' inside string values is escaped as '\\"'.
    """

    __slots__ = ("logger", "environ", "status", "headers", "sent", "request_time")
    logger: Clock
    environ: Mapping[str, Any]
    status: str | int
    headers: Sequence[tuple[str, str]]
    sent: int | None
    request_time: float

    def __init__(self, logger: Clock, environ: Mapping[str, Any], status: str | int,
                 headers: Sequence[tuple[str, str]], sent: int | None, request_time: float) -> None:
        # Seeded non-empty: logging treats a lone mapping argument as named args only if truthy.
        self["l"] = "-"
        self.logger = logger
        self.environ = environ
        self.status = status
        self.headers = headers
        self.sent = sent
        self.request_time = request_time

    def __missing__(self, key: str) -> Any:
        compute = _ATOMS.get(key)  # raw() inlined for the common atoms: this runs per atom per request
        value = compute(self) if compute is not None else self.raw(key)
        if value.__class__ is str and '"' in value:
            value = value.replace('"', '\\"')
        self[key] = value
        return value

    def get(self, key: str, default: Any = None) -> Any:
        # dict.get skips __missing__; answer like SafeAtoms, whose dict held every atom.
        if key in _ATOMS:
            return self[key]
        value = self[key] if isinstance(key, str) and key[:1] == "{" else "-"
        return default if value == "-" else value

    def raw(self, key: str) -> Any:
        """The unescaped value of atom `key` (what JSON lines carry); "-" when there is none."""
        compute = _ATOMS.get(key)
        if compute is not None:
            return compute(self)
        if not isinstance(key, str) or len(key) < 3 or key[0] != "{" or key[-2] != "}":
            return "-"
        kind, name = key[-1].lower(), key[1:-2].lower()
        if kind == "i":
            return self.environ.get(_environ_header_key(name), "-")
        if kind == "o":
            value = "-"
            for header, header_value in self.headers:  # the last one wins, as in gunicorn
                if header.lower() == name:
                    value = header_value
            return value
        if kind == "e":
            value = "-"
            for var, var_value in self.environ.items():
                if var.lower() == name:
                    value = var_value
            return value
        return "-"


_FORMAT_KEYS = re.compile(r"%(?:%|\(([^)]*)\))")


def format_keys(fmt: str) -> list[str]:
    """The atom names a %-format uses, in order, without repeats."""
    keys = [m.group(1) for m in _FORMAT_KEYS.finditer(fmt) if m.group(1) is not None]
    return list(dict.fromkeys(keys))


def json_name(key: str) -> str:
    if key in _JSON_NAMES:
        return _JSON_NAMES[key]
    if len(key) >= 3 and key[0] == "{" and key[-2] == "}" and key[-1].lower() in _JSON_BRACE_PREFIX:
        return _JSON_BRACE_PREFIX[key[-1].lower()] + key[1:-2]
    return key


# A plausible request, to try the configured access format on once at startup.
SAMPLE_ENVIRON = {
    "REQUEST_METHOD": "GET", "RAW_URI": "/?q=1", "PATH_INFO": "/", "QUERY_STRING": "q=1",
    "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "HTTP_USER_AGENT": "probe",
}
