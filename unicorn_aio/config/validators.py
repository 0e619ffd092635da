"""Validators for the settings table: each turns a raw value (a command-line string, a
config-file object, an embedding keyword) into the value stored, or raises ValueError that says
what is wrong in the user's terms; config.py puts the setting's name in front of it.
"""

from __future__ import annotations

import glob
import grp
import inspect
import ipaddress
import os
import pwd
import re
import ssl
from typing import Any, Callable


def boolean(val: Any) -> bool | None:
    if val is None or isinstance(val, bool):
        return val
    if isinstance(val, str):
        word = val.strip().lower()
        if word in ("true", "yes", "on", "1"):
            return True
        if word in ("false", "no", "off", "0"):
            return False
    raise ValueError(f"must be true or false, got {repr(val)}")


def integer(minimum: int = 0) -> Callable[[Any], int]:
    def validate(val: Any) -> int:
        if isinstance(val, str):
            text = val.strip()
            try:
                val = int(text, 0)
            except ValueError:
                try:
                    val = int(text, 10)  # int("08", 0) refuses leading zeros
                except ValueError:
                    raise ValueError(f"must be an integer >= {minimum}, got {repr(text)}") from None
        if isinstance(val, bool) or not isinstance(val, int) or val < minimum:
            raise ValueError(f"must be an integer >= {minimum}, got {repr(val)}")
        return val

    return validate


def number(val: Any) -> int | float:
    """Seconds: a non-negative int or float (gunicorn takes ints only; fractions help tests)."""
    try:
        if isinstance(val, bool):
            raise TypeError
        num = float(val.strip() if isinstance(val, str) else val)
    except (TypeError, ValueError):
        raise ValueError(f"must be a number of seconds >= 0, got {repr(val)}") from None
    if not num >= 0 or num == float("inf"):
        raise ValueError(f"must be a number of seconds >= 0, got {repr(val)}")
    return int(num) if num.is_integer() else num


def number_or_none(val: Any) -> int | float | None:
    """Seconds, or None: unset, for a default worked out from other settings."""
    return None if val is None else number(val)


def octal(val: Any) -> int:
    # gunicorn reads "0022" as octal, like the shell's umask does.
    if isinstance(val, str) and re.match(r"0\d", val.strip()):
        val = "0o" + val.strip()[1:]
    return integer(0)(val)


def permission_mode(val: Any) -> int:
    """A file mode read as gunicorn reads it ("0660", "0o660": octal; "660": decimal), refused
    when it has bits beyond 0o777: "660" is 0o1224, never what was meant."""
    mode = octal(val)
    if mode > 0o777:
        raise ValueError(f"{val!r} is {oct(mode)}, not a permission mode: write it in octal "
                         "with a leading 0 (0660 or 0o660)")
    return mode


def string(val: Any) -> str | None:
    return None if val is None else _text(val)


def _text(val: Any) -> str:
    """A string setting's value; None is refused here, for when it stands for nothing."""
    if not isinstance(val, str):
        raise ValueError(f"must be a string, got {repr(val)}")
    return val.strip()


def string_list(val: Any) -> list[str]:
    if not val:
        return []
    if isinstance(val, str):
        val = [val]
    if not isinstance(val, (list, tuple)):
        raise ValueError(f"must be a string or a list of strings, got {repr(val)}")
    return [_text(v) for v in val]


def comma_list(val: Any) -> list[str]:
    if isinstance(val, (list, tuple)):
        items = [string(v) or "" for v in val]
    else:
        items = (string(val) or "").split(",")
    return [item.strip() for item in items if item.strip()]


def upper_comma_list(val: Any) -> list[str]:
    return [item.upper() for item in comma_list(val)]


def address_list(val: Any) -> list[str]:
    items = comma_list(val)
    for item in items:
        if item == "*":
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network (or '*' for any)") from None
    return items


def watched_files(val: Any) -> list[str]:
    """Files that must exist, or glob patterns (gunicorn 26.1: ``*``, ``?``, ``[``; ``**``
    recurses) expanded to the files they match when the configuration is read."""
    paths = []
    for entry in string_list(val):
        if any(c in entry for c in "*?["):
            paths += sorted(p for p in glob.glob(entry, recursive=True) if os.path.isfile(p))
        elif not os.path.exists(entry):
            raise ValueError(f"file {entry!r} does not exist")
        else:
            paths.append(entry)
    return paths


def mapping(val: Any) -> dict:
    if not isinstance(val, dict):
        raise ValueError(f"must be a dict, got {repr(val)}")
    return val


def scheme_headers(val: Any) -> dict[str, str]:
    headers = mapping(val)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise ValueError("must map header names to header values, both strings")
    return {k.upper(): v for k, v in headers.items()}


def choice(*options: str) -> Callable[[Any], str]:
    def validate(val: Any) -> str:
        word = val.strip().lower() if isinstance(val, str) else val
        if word not in options:
            raise ValueError(f"must be one of {', '.join(options)}; got {repr(val)}")
        return word

    return validate


def dotted_or_class(val: Any) -> Any:
    if inspect.isclass(val):
        return val
    text = string(val)
    if not text:
        raise ValueError("must be a name such as 'sync' or a dotted path to a class")
    return text


# The built-in logger under gunicorn's name, ours (and its pre-0.2 path), and "simple".
_DEFAULT_LOGGERS = ("gunicorn.glogging.Logger", "unicorn_aio.log.Logger", "unicorn_aio.log.logger.Logger",
                    "unicorn_aio.logs.Logger", "simple")
_STATSD_LOGGERS = ("gunicorn.instrument.statsd.Statsd", "unicorn_aio.statsd.Statsd")


def logger_class(val: Any) -> Any:
    """gunicorn's default name stays a name (the built-in logger); anything else must be a
    subclass of unicorn_aio.log.Logger, imported now so a typo fails at startup."""
    if isinstance(val, str) and val.strip() in _DEFAULT_LOGGERS:
        return val.strip()
    if isinstance(val, str) and val.strip() in _STATSD_LOGGERS:
        val = "unicorn_aio.log.statsd.Statsd"
    cls = _import_dotted(_text(val)) if isinstance(val, str) else val
    from unicorn_aio.log.logger import Logger

    if not (inspect.isclass(cls) and issubclass(cls, Logger)):
        raise ValueError(f"{val!r} is not a subclass of unicorn_aio.log.Logger (gunicorn's "
                         "glogging.Logger subclasses need porting: access() takes the environ)")
    return cls


def _import_dotted(path: str) -> Any:
    mod_name, _, attr = path.rpartition(".")
    if not mod_name:
        raise ValueError(f"{path!r} is not an import path; expected module.function")
    try:
        module = __import__(mod_name, fromlist=[attr])
        return getattr(module, attr)
    except ImportError as exc:
        raise ValueError(f"cannot import {mod_name!r}: {exc}") from None
    except AttributeError:
        raise ValueError(f"module {mod_name!r} has no attribute {attr!r}") from None


def _accepts(func: Callable, nargs: int) -> bool:
    try:
        inspect.signature(func).bind(*([None] * nargs))
    except TypeError:
        return False
    except ValueError:  # builtins without a signature: trust them
        return True
    return True


def hook(*params: str) -> Callable[[Any], Callable]:
    def validate(val: Any) -> Callable:
        func = _import_dotted(val) if isinstance(val, str) else val
        if not callable(func):
            raise ValueError(f"must be a function, got {repr(func)}")
        if not _accepts(func, len(params)):
            raise ValueError(f"must accept {len(params)} argument(s) ({', '.join(params)})")
        return func

    return validate


def post_request_hook(val: Any) -> Callable:
    # gunicorn lets post_request take 2, 3 or 4 arguments; callers always pass 4.
    func = _import_dotted(val) if isinstance(val, str) else val
    if not callable(func):
        raise ValueError(f"must be a function, got {repr(func)}")
    if _accepts(func, 4):
        return func
    if _accepts(func, 3):
        return lambda worker, req, environ, _resp: func(worker, req, environ)
    if _accepts(func, 2):
        return lambda worker, req, _environ, _resp: func(worker, req)
    raise ValueError("must accept (worker, req, environ, resp), or the first 2 or 3 of those")


def _system_id(val: Any, current: Callable[[], int], lookup: Callable[[str], int],
               what: str) -> int:
    """A uid or gid from a number or a name; None means the one we run as."""
    if val is None:
        return current()
    if isinstance(val, int) and not isinstance(val, bool):
        return val
    text = _text(val)
    if text.isdigit():
        return int(text)
    try:
        return lookup(text)
    except KeyError:
        raise ValueError(f"no such {what} {text!r}") from None


def user(val: Any) -> int:
    return _system_id(val, os.geteuid, lambda name: pwd.getpwnam(name).pw_uid, "user")


def group(val: Any) -> int:
    return _system_id(val, os.getegid, lambda name: grp.getgrnam(name).gr_gid, "group")


def directory(val: Any) -> str:
    path = os.path.abspath(string(val) or ".") if val is not None else os.getcwd()
    if not os.path.isdir(path):
        raise ValueError(f"can't chdir to {val!r}: no such directory")
    return path


_BIND_FORMS = "expected HOST, HOST:PORT, [IPv6]:PORT, unix:PATH or fd://FD"


def listen_address(val: Any) -> str | None:
    """None, or one address as --bind takes it (for a listener of the master's own)."""
    if val is None:
        return None
    addr = _text(val)
    if not addr:
        return None
    _check_bind(addr)
    return addr


def bind_list(val: Any) -> list[str]:
    addresses = string_list(val)
    if not addresses:
        raise ValueError(f"needs at least one address ({_BIND_FORMS})")
    for addr in addresses:
        _check_bind(addr)
    return addresses


def _check_bind(addr: str) -> None:
    # Only the syntax is checked here; sockets.py resolves and binds.
    if addr.startswith("unix:"):
        if not addr[5:]:
            raise ValueError(f"{addr!r} has no socket path ({_BIND_FORMS})")
        return
    if addr.startswith("fd://"):
        if not addr[5:].isdigit():
            raise ValueError(f"{addr!r} is not a file descriptor number ({_BIND_FORMS})")
        return
    netloc = addr.removeprefix("tcp://")
    port = None
    if netloc.startswith("["):
        host, sep, rest = netloc[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{addr!r} is not a valid address ({_BIND_FORMS})")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{addr!r} has an invalid IPv6 address {host!r}") from None
        port = rest[1:] if rest else None
    elif ":" in netloc:
        host, port = netloc.split(":", 1)
    else:
        host = netloc
    if not host and port is None:
        raise ValueError(f"empty address ({_BIND_FORMS})")
    if port is not None and not (port.isdigit() and 0 <= int(port) <= 65535):
        raise ValueError(f"{addr!r} has an invalid port {port!r} ({_BIND_FORMS})")


def statsd_address(val: Any) -> Any:
    """None, (host, port) or a unix socket path, as gunicorn stores statsd_host."""
    if val is None:
        return None
    from unicorn_aio.log.statsd import parse_address  # only when statsd is asked for

    return parse_address(string(val))


def url_path(val: Any) -> str:
    path = string(val) or ""
    if path and not path.startswith("/"):
        raise ValueError(f"must be a path starting with / (e.g. /api), got {val!r}")
    return path


def http_protocols(val: Any) -> list[str]:
    """gunicorn 27's validator, word for word: h1 and h2 in order of preference; none is h1."""
    protocols = [p.lower() for p in comma_list(val)] or ["h1"]
    for proto in protocols:
        if proto not in ("h1", "h2"):
            raise ValueError(f"Invalid protocol '{proto}'. Valid protocols: h1, h2")
    if len(set(protocols)) != len(protocols):
        raise ValueError("Duplicate protocols specified")
    return protocols


def http2_cleartext(val: Any) -> str:
    """gunicorn 26.2's off, prior-knowledge, upgrade or both (True: prior-knowledge, as a
    gunicorn config file may say)."""
    if val is None:
        return "off"
    if isinstance(val, bool):
        val = "prior-knowledge" if val else "off"
    return choice("off", "prior-knowledge", "upgrade", "both")(val)


def http2_window(val: Any) -> int:
    """RFC 9113 6.9.1: a flow-control window is at most 2**31 - 1."""
    size = integer(0)(val)
    if size > 2 ** 31 - 1:
        raise ValueError(f"must be at most 2147483647 (RFC 9113 6.9.1), got {size}")
    return size


def http2_frame_size(val: Any) -> int:
    """RFC 9113 6.5.2: SETTINGS_MAX_FRAME_SIZE is 16384 to 16777215."""
    size = integer(0)(val)
    if not 16384 <= size <= 16777215:
        raise ValueError(f"must be between 16384 and 16777215 (RFC 9113 6.5.2), got {size}")
    return size


def proxy_protocol_mode(val: Any) -> str | bool:
    """gunicorn 24.1's off, v1, v2 or auto, or the older true/false: False or the mode."""
    if isinstance(val, str) and val.strip().lower() in ("off", "v1", "v2", "auto"):
        mode = val.strip().lower()
        return False if mode == "off" else mode
    try:
        return "auto" if boolean(val) else False
    except ValueError:
        raise ValueError(f"must be off, v1, v2 or auto (or true/false), got {val!r}") from None


def http_only(val: Any) -> str:
    if choice("http", "uwsgi")(val) == "uwsgi":
        raise ValueError("the uwsgi protocol is not supported, unicorn_aio speaks HTTP only: in "
                         "nginx use proxy_pass (see docs/nginx.conf) instead of uwsgi_pass")
    return "http"


def loglevel(val: Any) -> str:
    if isinstance(val, str) and val.strip().lower() == "warn":
        return "warning"  # Python's logging and gunicorn accept it
    return choice("debug", "info", "warning", "error", "critical")(val)


def ssl_version(val: Any) -> Any:
    if isinstance(val, str) and not val.strip().isdigit():
        name = val.strip()
        if not hasattr(ssl, "PROTOCOL_" + name):
            raise ValueError(f"unknown SSL protocol {name!r} (e.g. TLS, TLS_SERVER)")
        return name
    return integer(0)(val)


def refuse_true(reason: str) -> Callable[[Any], bool]:
    def validate(val: Any) -> bool:
        if boolean(val):
            raise ValueError(reason)
        return False

    return validate
