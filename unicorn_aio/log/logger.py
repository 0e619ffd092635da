"""The error log and the access log.

Behaves like gunicorn's `glogging.py` so that existing settings, formats and log configs keep
working: the same access-log atoms with the same output, the same error-log line, the same
`--log-config` / `--log-config-dict` / `--log-config-json` handling, reopen on USR1.

What differs:
- An access line costs what its format uses. `AccessAtoms` computes an atom on first lookup, and
  `%t` is formatted once per second, not once per request.
- Logging never takes the server down: an unwritable log path falls back to stderr/stdout, a bad
  access format falls back to the default, a failing write warns once; each with one warning.
- A log config written for gunicorn (loggers "gunicorn.error", "gunicorn.access") applies to our
  loggers ("unicorn_aio.error", "unicorn_aio.access") when it does not name those itself; and
  apps that borrow the server's log by gunicorn's names find our handlers and level there.
- `access_log_json` writes each access line as one JSON object with readable keys.

The settings object is anything with gunicorn's attribute names (listed on `Logger`); missing
optional attributes take gunicorn's defaults.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import threading
import time
from typing import IO, TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "AccessAtoms",
    "CONFIG_DEFAULTS",
    "DEFAULT_ACCESS_FORMAT",
    "Logger",
    "basic_auth_user",
    "parse_syslog_address",
]

ERROR_LOGGER = "unicorn_aio.error"
ACCESS_LOGGER = "unicorn_aio.access"

SYSLOG_FORMAT = "[%(process)d] %(message)s"
DEFAULT_ACCESS_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
CLF_TIME = "[%d/%b/%Y:%H:%M:%S %z]"

from unicorn_aio.log.access import (
    SAMPLE_ENVIRON,
    AccessAtoms,
    basic_auth_user,
    default_line,
    format_keys,
    json_name,
)
from unicorn_aio.log.logconfig import (
    CONFIG_DEFAULTS,
    ERROR_DATEFMT,
    ERROR_FORMAT,
    apply_log_config,
    lend_gunicorn_names,
)
from unicorn_aio.log.outputs import (
    SYSLOG_FACILITIES,
    AccessWriter,
    OwnFileHandler,
    OwnHandler,
    OwnStream,
    OwnStreamHandler,
    parse_syslog_address,
    syslog_handler,
)

LOG_LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}

def _all_loggers() -> list[logging.Logger]:
    manager = logging.Logger.manager
    return [logging.root] + [lg for lg in list(manager.loggerDict.values()) if isinstance(lg, logging.Logger)]


def _all_handlers() -> list[logging.Handler]:
    seen: dict[int, logging.Handler] = {}
    for lg in _all_loggers():
        for handler in lg.handlers:
            seen[id(handler)] = handler
    return list(seen.values())


# --------------------------------------------------------------------------------------------
# Logger
# --------------------------------------------------------------------------------------------

class Logger:
    """The server's error log and access log, set up from the settings.

    `error_log` and `access_log` are ordinary `logging.Logger`s, so a log config can route them
    anywhere. `access_enabled` is False when nothing would record an access line (no
    --access-logfile, and no log config or syslog that routes "unicorn_aio.access"); callers then
    skip `access()` and the work of preparing its arguments.

    Settings read (gunicorn's names): loglevel, errorlog, accesslog, access_log_format,
    access_log_json, capture_output, logconfig, logconfig_dict, logconfig_json, syslog,
    syslog_addr, syslog_prefix, syslog_facility, disable_redirect_access_to_syslog, proc_name,
    and uid/gid (or user/group) to hand log files to the workers' user.
    """

    LOG_LEVELS = LOG_LEVELS
    error_fmt = ERROR_FORMAT
    datefmt = ERROR_DATEFMT
    access_fmt = "%(message)s"

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.error_log = logging.getLogger(ERROR_LOGGER)
        self.access_log = logging.getLogger(ACCESS_LOGGER)
        self.error_log.propagate = False
        self.access_log.propagate = False
        self.access_enabled = False
        self._default_line = False  # the default access format: formatted without AccessAtoms
        self.clock = time.time  # tests replace it to pin %t
        self._now_cache: tuple[int | None, str] = (None, "")
        self._capture_file: IO[str] | None = None
        self._lock = threading.Lock()
        self._access_warned = False
        self._access_handler: OwnStream | None = None
        self._writer = AccessWriter()
        self.setup(cfg)

    # ---- setup -------------------------------------------------------------------------------

    def setup(self, cfg: Any) -> None:
        self.flush_access()  # through the handler they were logged for

        def opt(name: str, default: Any = None) -> Any:
            value = getattr(cfg, name, default)
            return default if value is None else value

        self.loglevel = LOG_LEVELS.get(str(opt("loglevel", "info")).lower(), logging.INFO)
        self.error_log.setLevel(self.loglevel)
        self.access_log.setLevel(logging.INFO)

        errorlog = opt("errorlog", "-")
        error_handler = self._install(self.error_log, errorlog, logging.Formatter(self.error_fmt, self.datefmt), "error")
        if opt("capture_output", False) and isinstance(error_handler, logging.FileHandler):
            self._capture_output(errorlog)
        accesslog = getattr(cfg, "accesslog", None)
        self._access_formatter = logging.Formatter(self.access_fmt)
        self._access_handler = self._install(self.access_log, accesslog, self._access_formatter, "access")

        syslog_access = False
        if opt("syslog", False):
            self._install_syslog(self.error_log, "error")
            if not opt("disable_redirect_access_to_syslog", False):
                syslog_access = self._install_syslog(self.access_log, "access")

        log_configured = apply_log_config(cfg, self.error_log, self.access_log)
        lend_gunicorn_names(self.error_log, self.access_log)

        fmt = opt("access_log_format", DEFAULT_ACCESS_FORMAT)
        self.access_format = self._checked_access_format(fmt)
        self.access_json_fields: list[tuple[str, str]] | None = None
        if opt("access_log_json", False):
            keys = format_keys(self.access_format) or format_keys(DEFAULT_ACCESS_FORMAT)
            self.access_json_fields = [(json_name(k), k) for k in keys]
        self._default_line = (self.access_format == DEFAULT_ACCESS_FORMAT
                              and self.access_json_fields is None)

        self.access_enabled = bool(
            (accesslog or log_configured or syslog_access)
            and self.access_log.isEnabledFor(logging.INFO)
            and self.access_log.hasHandlers()
        )

    def _install(self, log: logging.Logger, output: str | None, formatter: logging.Formatter,
                 which: str) -> OwnStream | None:
        """Replace the handler we gave `log` before with one writing to `output`:
        None → none, "-" → stdout (access) / stderr (error), else a file, appended to."""
        for old in [h for h in log.handlers if getattr(h, "unicorn_aio", False)]:
            log.removeHandler(old)
            old.close()
        if not output:
            return None
        stream = sys.stdout if which == "access" else sys.stderr
        problem = None
        handler: OwnStream
        if output == "-":
            handler = OwnStreamHandler(stream)
        else:
            try:
                handler = OwnFileHandler(output)
            except OSError as exc:
                problem = exc
                handler = OwnStreamHandler(stream)
            else:
                self._chown(handler.baseFilename)
        handler.setFormatter(formatter)
        handler.on_error = self._on_access_handler_error if which == "access" else _on_error_handler_error
        log.addHandler(handler)
        if problem is not None:
            self.warning(
                "cannot open %s log %r (%s); writing it to %s instead",
                which, output, problem.strerror or problem, stream.name if hasattr(stream, "name") else stream,
            )
        return handler

    def _chown(self, path: str) -> None:
        # The workers run as cfg.user/cfg.group and must be able to reopen the file on USR1.
        cfg = self.cfg
        uid = getattr(cfg, "uid", getattr(cfg, "user", None))
        gid = getattr(cfg, "gid", getattr(cfg, "group", None))
        uid = uid if isinstance(uid, int) and uid != os.geteuid() else -1  # -1: leave as is
        gid = gid if isinstance(gid, int) and gid != os.getegid() else -1
        if uid != -1 or gid != -1:
            try:
                os.chown(path, uid, gid)
            except OSError:
                pass  # e.g. /dev/null, or not root: the file is still usable by this process

    def _capture_output(self, path: str) -> None:
        """--capture-output: fds 1 and 2 point at the error log file, so print() and writes
        from C extensions and subprocesses land there too."""
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        try:
            logfile = open(path, "a")
        except OSError as exc:
            self.warning("cannot capture stdout/stderr into %r (%s)", path, exc.strerror or exc)
            return
        with self._lock:
            os.dup2(logfile.fileno(), 1)
            os.dup2(logfile.fileno(), 2)
            if self._capture_file is not None:
                self._capture_file.close()
            self._capture_file = logfile

    def _install_syslog(self, log: logging.Logger, which: str) -> bool:
        cfg = self.cfg
        prefix = getattr(cfg, "syslog_prefix", None) or str(getattr(cfg, "proc_name", None) or "unicorn_aio")
        prefix = "unicorn_aio.%s.%s" % (prefix.replace(":", "."), which)
        facility_name = str(getattr(cfg, "syslog_facility", None) or "user").lower()
        address = getattr(cfg, "syslog_addr", None) or "udp://localhost:514"
        try:
            facility = SYSLOG_FACILITIES[facility_name]
            socktype, addr = parse_syslog_address(address)
            handler = syslog_handler(address=addr, facility=facility, socktype=socktype)
        except KeyError:
            self.warning("unknown syslog facility %r; not logging to syslog", facility_name)
            return False
        except (ValueError, OSError) as exc:
            self.warning("cannot log to syslog at %r (%s); not logging to syslog", address, exc)
            return False
        # "%" in a proc_name must not become a format directive.
        handler.setFormatter(logging.Formatter(prefix.replace("%", "%%") + ": " + SYSLOG_FORMAT))
        handler.on_error = self._on_access_handler_error if which == "access" else _on_error_handler_error
        log.addHandler(handler)
        return True

    def _checked_access_format(self, fmt: str) -> str:
        """`fmt` if it formats a sample request, else the default with one warning: a format
        that cannot work must not cost a traceback per request."""
        try:
            line = fmt % AccessAtoms(self, SAMPLE_ENVIRON, "200 OK", [("Content-Type", "text/plain")], 2, 0.001)
            if not isinstance(line, str):
                raise TypeError("not a string format")
        except Exception as exc:
            self.warning(
                "access_log_format %r is not a valid format (%s: %s); using the default %r",
                fmt, type(exc).__name__, exc, DEFAULT_ACCESS_FORMAT,
            )
            return DEFAULT_ACCESS_FORMAT
        return fmt

    # ---- error log ---------------------------------------------------------------------------

    def critical(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.error_log.critical(msg, *args, **kwargs)

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.error_log.error(msg, *args, **kwargs)

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.error_log.warning(msg, *args, **kwargs)

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.error_log.info(msg, *args, **kwargs)

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.error_log.debug(msg, *args, **kwargs)

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.error_log.exception(msg, *args, **kwargs)

    def log(self, lvl: int | str, msg: object, *args: object, **kwargs: Any) -> None:
        if isinstance(lvl, str):
            lvl = LOG_LEVELS.get(lvl.lower(), logging.INFO)
        self.error_log.log(lvl, msg, *args, **kwargs)

    # ---- access log --------------------------------------------------------------------------

    def now(self) -> str:
        """The current time as Apache's %t, `[10/Oct/2000:13:55:36 -0700]`, local time.
        Formatted once per second: strftime per request is a measurable share of a hello-world."""
        second = int(self.clock())
        cached = self._now_cache
        if cached[0] != second:
            cached = (second, time.strftime(CLF_TIME, time.localtime(second)))
            self._now_cache = cached  # one tuple store: threads never see a mismatched pair
        return cached[1]

    def atoms(self, environ: dict[str, Any], status: str, response_headers: Sequence[tuple[str, str]],
              sent: int | None, request_time: float) -> AccessAtoms:
        return AccessAtoms(self, environ, status, response_headers, sent, request_time)

    def access(self, environ: dict[str, Any], status: str, response_headers: Sequence[tuple[str, str]],
               sent: int | None, request_time: float) -> None:
        """Record one request (see http://httpd.apache.org/docs/2.4/logs.html#accesslog).
        Never raises: a failure is reported once on the error log and the line is dropped."""
        if not self.access_enabled:
            return
        log = self.access_log
        try:
            if not log.isEnabledFor(logging.INFO):
                return
            handler = self._direct_handler()
            if handler is not None and self._default_line:
                self._writer.write(handler, default_line(self, environ, status, sent))
                return
            atoms = AccessAtoms(self, environ, status, response_headers, sent, request_time)
            args: tuple[AccessAtoms, ...]
            if self.access_json_fields is None:
                # The atoms go in as the record's args, as gunicorn's do: formatters of a log
                # config may read record.args["h"].
                msg, args = self.access_format, (atoms,)
            else:
                # No args: the line is final and is not %-formatted again.
                raw = atoms.raw
                msg = _json_dumps({name: raw(key) for name, key in self.access_json_fields},
                                  default=str)
                args = ()
            if handler is not None:
                self._writer.write(handler, msg % atoms if args else msg)
            else:
                # makeRecord + handle is info() without findCaller's stack walk.
                log.handle(log.makeRecord(log.name, logging.INFO, "(access)", 0, msg, args, None))
        except Exception as exc:
            self._access_failed(exc)

    def _direct_handler(self) -> OwnStream | None:
        """Our own access handler when it is all the access logger does, else None.

        Then a line can go straight to the stream: building a LogRecord and passing it through
        logging's filter and handler chain costs about as much as formatting the line itself,
        and the access log runs once per request. Anything added to the logger or handler since setup takes the normal path.
        """
        handler = self._access_handler
        log = self.access_log
        handlers = log.handlers
        if (
            handler is None or len(handlers) != 1 or handlers[0] is not handler
            or log.filters or handler.filters or handler.level > logging.INFO
            or handler.formatter is not self._access_formatter
            or handler.stream is None or log.disabled
        ):
            return None
        return handler

    def batch_access_lines(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Write the access lines of each turn of ``loop`` together (None: one write per line);
        see log_outputs.AccessWriter."""
        self._writer.batch(loop)

    def flush_access(self) -> None:
        """Write the access lines still waiting for the loop to turn."""
        self._writer.flush()

    def _access_failed(self, exc: BaseException) -> None:
        if self._access_warned:
            return
        self._access_warned = True
        try:
            self.warning("access log line dropped (%s: %s); further failures are not reported", type(exc).__name__, exc)
        except Exception:
            pass

    def _on_access_handler_error(self, handler: logging.Handler, exc: BaseException | None) -> None:
        self.warning(
            "access log line to %s failed (%s: %s); further failures there are not reported",
            _describe(handler), type(exc).__name__, exc,
        )

    # ---- files -------------------------------------------------------------------------------

    def reopen_files(self) -> None:
        """USR1: reopen every log file at its path, so after logrotate renames a file the next
        lines go to a fresh file under the configured name."""
        self.flush_access()  # into the file they were logged for
        if self._capture_file is not None:
            errorlog = getattr(self.cfg, "errorlog", None)
            if errorlog and errorlog != "-":
                self._capture_output(errorlog)
        for handler in _all_handlers():
            if not isinstance(handler, logging.FileHandler):
                continue
            handler.acquire()
            try:
                stream, handler.stream = handler.stream, None
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass
                created = not os.path.exists(handler.baseFilename)
                try:
                    handler.stream = handler._open()
                except OSError as exc:
                    # Left at None, FileHandler retries the open on the next record.
                    self._reopen_failed(handler, exc)
                    continue
            finally:
                handler.release()
            if isinstance(handler, OwnHandler):
                handler.failed = False  # a new file deserves a new warning
            if created or isinstance(handler, OwnHandler):
                # The master reopens first, as root under --user: a file it creates is root's
                # 0644, and the workers (told to reopen next) could not write it.  Ours are
                # handed over as at setup, whoever created them (logrotate's `create`).
                self._chown(handler.baseFilename)

    def _reopen_failed(self, handler: logging.FileHandler, exc: OSError) -> None:
        if handler in self.error_log.handlers:
            _on_error_handler_error(handler, exc)
        else:
            self.warning("cannot reopen log file %r: %s", handler.baseFilename, exc.strerror or exc)

    def close_on_exec(self) -> None:
        """Keep log file descriptors out of exec'd programs (Python opens them so already; this
        covers streams handed in by a log config)."""
        for handler in _all_handlers():
            stream = getattr(handler, "stream", None) if isinstance(handler, logging.FileHandler) else None
            if stream is None:
                continue
            handler.acquire()
            try:
                fd = stream.fileno()
                fcntl.fcntl(fd, fcntl.F_SETFD, fcntl.fcntl(fd, fcntl.F_GETFD) | fcntl.FD_CLOEXEC)
            except (OSError, ValueError):
                pass
            finally:
                handler.release()


def _describe(handler: logging.Handler) -> str:
    if isinstance(handler, logging.FileHandler):
        return repr(handler.baseFilename)
    stream = getattr(handler, "stream", None)
    return getattr(stream, "name", None) or type(handler).__name__


def _on_error_handler_error(handler: logging.Handler, exc: BaseException | None) -> None:
    # The error log itself is what failed: say so on the process's stderr, once.
    stderr = sys.__stderr__
    if stderr is None:  # no stderr to say it on (pythonw, a closed fd 2)
        return
    try:
        stderr.write(
            f"unicorn_aio: cannot write the error log to {_describe(handler)} "
            f"({type(exc).__name__}: {exc}); further failures are not reported\n"
        )
        stderr.flush()
    except Exception:
        pass


def _json_dumps(obj: Any, **kwargs: Any) -> str:
    # json costs every process 300 KB of RSS; only JSON access lines and log configs need it.
    import json

    return json.dumps(obj, **kwargs)
