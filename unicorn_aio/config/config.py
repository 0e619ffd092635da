"""The resolved settings of one server: ``Config``, and ``load_config`` that builds it.

Sources, lowest precedence first, as in gunicorn:

    defaults (some read from the environment: PORT, WEB_CONCURRENCY, FORWARDED_ALLOW_IPS)
    < the config file (-c PATH, else ./gunicorn.conf.py when it exists)
    < GUNICORN_CMD_ARGS < UNICORN_AIO_CMD_ARGS (both split with shlex)
    < the command line.

Every value, whatever its source, goes through the validator of its row in settings.py, so a bad value
is reported the same way from a flag, a config file or ``Config(workers=...)``.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import shlex
import sys
import traceback
import types
from typing import Any, Iterable, Mapping, NoReturn

from unicorn_aio import __version__
from unicorn_aio.apploader import one_line, user_frames
from unicorn_aio.config.settings import ALIASES, BY_NAME, SECTIONS, SETTINGS, Setting
from unicorn_aio.errors import ConfigError, ConfigFileError, UsageError

ENV_ARGS = ("GUNICORN_CMD_ARGS", "UNICORN_AIO_CMD_ARGS")  # later ones win
DEFAULT_CONFIG_FILE = "gunicorn.conf.py"


# gunicorn worker classes and what they mean for us. Values are the interface they imply.
_WSGI_WORKERS = ("sync", "gthread", "gunicorn.workers.sync.SyncWorker",
                 "gunicorn.workers.gthread.ThreadWorker")
_ASGI_WORKERS = ("asgi", "uvicorn", "gunicorn.workers.gasgi.ASGIWorker",
                 "uvicorn.workers.UvicornWorker",
                 "uvicorn.workers.UvicornH11Worker", "uvicorn_worker.UvicornWorker",
                 "uvicorn_worker.UvicornH11Worker")
_GREEN_WORKERS = ("eventlet", "gevent", "gevent_wsgi", "gevent_pywsgi", "tornado",
                  "gunicorn.workers.geventlet.EventletWorker",
                  "gunicorn.workers.ggevent.GeventWorker",
                  "gunicorn.workers.ggevent.GeventPyWSGIWorker",
                  "gunicorn.workers.gtornado.TornadoWorker")


def _worker_class_name(worker_class: Any) -> str:
    if inspect.isclass(worker_class):
        return f"{worker_class.__module__}.{worker_class.__qualname__}"
    # gunicorn's other spellings of its own classes: "#gthread", "egg:gunicorn#gthread"
    return str(worker_class).removeprefix("egg:gunicorn").lstrip("#")


def check_worker_class(worker_class: Any) -> None:
    """gunicorn refuses to start on a worker class it cannot load, and so do we: a name that is
    none of gunicorn's (a typo: -k gthraed), or a dotted path that does not import.  Its own
    classes, and custom ones that import (run as our worker, with a warning), pass."""
    name = _worker_class_name(worker_class)
    known = _WSGI_WORKERS + _ASGI_WORKERS + _GREEN_WORKERS
    if inspect.isclass(worker_class) or name in known or name.startswith("egg:"):
        return
    import difflib  # only for a worker class that is wrong anyway

    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    if "." not in name:
        raise ConfigError(f"worker_class {name!r} is not a gunicorn worker class{hint}; use sync, "
                          "gthread, asgi, gevent, eventlet, tornado or a dotted path to a class")
    module, _, attr = name.rpartition(".")
    try:
        getattr(importlib.import_module(module), attr)
    except Exception as exc:
        raise ConfigError(f"worker_class {name!r} cannot be loaded{hint}: {one_line(exc)}") \
            from None


def worker_class_interface(worker_class: Any) -> tuple[str | None, str | None]:
    """The interface a gunicorn worker class implies, and a warning when it cannot be honoured."""
    name = _worker_class_name(worker_class)
    if name in _WSGI_WORKERS:
        return "wsgi", None
    if name in _ASGI_WORKERS:
        return "asgi", None
    if name in _GREEN_WORKERS:
        return None, None  # honoured by threads: see Config.max_threads
    return None, (f"worker_class {name!r} is not supported: custom gunicorn workers cannot run "
                  "here; unicorn_aio's own worker is used")


def is_green_worker_class(worker_class: Any) -> bool:
    """gunicorn's async worker classes (gevent, eventlet, tornado): a greenlet per connection,
    which unicorn_aio gives WSGI apps as a thread per request in flight (no monkey-patching)."""
    return _worker_class_name(worker_class) in _GREEN_WORKERS


class Config:
    """Every setting by name: ``cfg.workers``, ``cfg.bind``, ``cfg.post_fork``...

    ``Config()`` holds the defaults; ``Config(workers=4, bind="0.0.0.0:80")`` validates each value
    through the settings table and raises ConfigError for unknown names or bad values.
    ``Config(environ, ...)`` reads the environment defaults (PORT...) from ``environ`` rather than
    os.environ.
    """

    def __init__(self, environ: Mapping[str, str] | None = None, /, **settings: Any) -> None:
        object.__setattr__(self, "_environ", dict(os.environ if environ is None else environ))
        object.__setattr__(self, "_values", {})
        self.explicit: set[str] = set()  # names set by a source other than the defaults
        self.warnings: list[str] = []
        self.misspelt: list[str] = []  # config-file names one slip from a setting's
        self.argv: list[str] | None = None  # for reloading the same way on SIGHUP
        self._app_uri: str | None = None
        for setting in SETTINGS:
            self._values[setting.name] = self._default(setting)
        for name, value in settings.items():
            self.set(name, value)

    def _default(self, setting: Setting) -> Any:
        raw = self._environ.get(setting.env) if setting.env else None
        if raw is None:
            return setting.validate(setting.default)
        try:
            return setting.validate(setting.env_format.format(raw))
        except ValueError as exc:
            raise ConfigError(f"environment variable {setting.env}={raw!r} "
                              f"(default of {setting.name}): {exc}") from None

    # -- access --------------------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("_values", {})
        name = ALIASES.get(name, name)
        if name in values:
            return values[name]
        raise AttributeError(f"no setting named {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in BY_NAME or name in ALIASES:
            self.set(name, value)
        else:
            object.__setattr__(self, name, value)

    def set(self, name: str, value: Any, *, source: str | None = None) -> None:
        """Validate and store one setting. ``source`` prefixes error messages (a flag, a file)."""
        setting = BY_NAME.get(ALIASES.get(name, name))
        if setting is None:
            raise ConfigError(f"{source + ': ' if source else ''}{unknown_setting_message(name)}")
        try:
            stored = setting.validate(value)
        except ValueError as exc:
            where = source or f"invalid value for setting {setting.name!r}"
            raise ConfigError(f"{where}: {exc}") from None
        self._values[setting.name] = stored
        self.explicit.add(setting.name)
        if (setting.ignored and stored != setting.validate(setting.default)
                and stored not in setting.honoured):
            self._warn(setting.ignored)
        if setting.name == "worker_class":
            self._warn(worker_class_interface(stored)[1])

    def _warn(self, message: str | None) -> None:
        if message and message not in self.warnings:
            self.warnings.append(message)

    def items(self) -> Iterable[tuple[str, Any]]:
        """(name, effective value) for every setting, in table order."""
        return ((s.name, getattr(self, s.name)) for s in SETTINGS)

    def __str__(self) -> str:
        width = max(len(s.name) for s in SETTINGS)
        lines = []
        for name, value in sorted(self.items()):
            if callable(value) and not inspect.isclass(value):
                value = f"<{getattr(value, '__qualname__', repr(value))}()>"
            lines.append(f"{name:{width}} = {value}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Config explicit={sorted(self.explicit)}>"

    # -- values derived from several settings ---------------------------------------------------

    @property
    def app_uri(self) -> str | None:
        """The APP argument, else the wsgi_app setting."""
        return self._app_uri or self._values["wsgi_app"]

    @app_uri.setter
    def app_uri(self, value: str | None) -> None:
        object.__setattr__(self, "_app_uri", value)

    @property
    def interface(self) -> str:
        """auto, wsgi or asgi; an explicit gunicorn worker class decides when interface is auto."""
        value = self._values["interface"]
        if value == "auto" and "worker_class" in self.explicit:
            return worker_class_interface(self._values["worker_class"])[0] or "auto"
        return value

    @property
    def max_threads(self) -> int:
        """The most app threads a worker runs: --threads; for gunicorn's async worker classes
        (-k gevent, eventlet...) as many as --worker-connections, started as requests find
        every thread busy and back to --threads once unneeded (wsgi/threadpool.py)."""
        threads = self._values["threads"]
        if is_green_worker_class(self._values["worker_class"]):
            return max(threads, self._values["worker_connections"])
        return threads

    @property
    def worker_class_note(self) -> str | None:
        """What an async worker class of gunicorn's maps to here, for the start log."""
        worker_class = self._values["worker_class"]
        if not is_green_worker_class(worker_class):
            return None
        return (f"worker_class {_worker_class_name(worker_class)!r}: no monkey-patching; WSGI "
                f"app calls run in threads started as requests need them, {self.threads} to "
                f"{self.max_threads} per worker (--threads to --worker-connections), the extra "
                "ones stopping once idle")

    def start_lines(self, app: Any = None) -> list[str]:
        """The master's start lines about its workers: how many, the interface (--interface or
        -k, else ``app``'s when the master loaded it: --preload), for WSGI where app calls run,
        and what a gunicorn worker class maps to. Without either, the first worker names the
        interface once it has imported the app (prefork/worker.py)."""
        from unicorn_aio.apploader import is_asgi_app

        interface = self.interface
        if interface == "auto" and app is not None:
            interface = "asgi" if is_asgi_app(app) else "wsgi"
        if interface == "asgi":
            lines = [f"Workers: {self.workers} (ASGI)"]
        else:
            threads = self.threads if self.max_threads == self.threads \
                else f"{self.threads} to {self.max_threads}"
            label = "WSGI" if interface == "wsgi" else "WSGI or ASGI, detected from the app"
            lines = [f"Workers: {self.workers} ({label}); WSGI dispatch: {self.dispatch}, "
                     f"{threads} thread(s) per worker"]
        return lines + [note for note in (self.worker_class_note, self.http2_note) if note]

    @property
    def http2_note(self) -> str | None:
        """One start line when --http2-cleartext is set but cannot apply (as gunicorn warns)."""
        mode = self.http2_cleartext
        if mode == "off":
            return None
        if "h2" not in self.http_protocols:
            return (f"--http2-cleartext {mode} is off: h2 is not in --http-protocols "
                    f"({','.join(self.http_protocols)}); add it, e.g. --http-protocols h1,h2")
        if self.is_ssl:
            return f"--http2-cleartext {mode} is ignored with TLS: HTTP/2 is negotiated by ALPN"
        return None

    @property
    def mount_point(self) -> str:
        """Where the app is mounted: ASGI's root_path, WSGI's SCRIPT_NAME.  --root-path, else
        the SCRIPT_NAME environment variable (gunicorn's way: raw_env's, else the environment
        this Config was given); "/app/" mounts at "/app"."""
        return (self._values["root_path"] or self.env.get("SCRIPT_NAME")
                or self._environ.get("SCRIPT_NAME", "")).rstrip("/")

    @property
    def proc_name(self) -> str:
        return self._values["proc_name"] or self._values["default_proc_name"]

    @property
    def uid(self) -> int:
        return self._values["user"]

    @property
    def gid(self) -> int:
        return self._values["group"]

    @property
    def env(self) -> dict[str, str]:
        """raw_env as a dict."""
        env = {}
        for item in self._values["raw_env"]:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ConfigError(f"raw_env: {item!r} is not KEY=VALUE")
            env[key] = value
        return env

    @property
    def sendfile(self) -> bool:
        if self._values["sendfile"] is not None:
            return self._values["sendfile"]
        if "SENDFILE" in self._environ:
            return self._environ["SENDFILE"].strip().lower() in ("y", "1", "yes", "true")
        return True

    @property
    def is_ssl(self) -> bool:
        return bool(self._values["certfile"] or self._values["keyfile"])

    @property
    def ssl_options(self) -> dict[str, Any]:
        return {s.name: self._values[s.name] for s in SETTINGS if s.section == "SSL"}

    @property
    def pythonpath_list(self) -> list[str]:
        return [p.strip() for p in (self._values["pythonpath"] or "").split(",") if p.strip()]


def unknown_setting_message(name: str) -> str:
    import difflib  # only to suggest a name for a typo

    close = difflib.get_close_matches(name, list(BY_NAME) + list(ALIASES), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown setting {name!r}{hint}"


# -- command line ----------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    # Errors become exceptions so each source can name itself and main() can choose the exit code.
    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments: "):
            message += _flag_hint(message.split(": ", 1)[1].split())
        raise UsageError(message)


def _flag_hint(args: list[str]) -> str:
    """" (did you mean --workers?)" for the first unknown flag that is close to one of ours."""
    import difflib  # only for a command line that is wrong anyway

    flags = [f for s in SETTINGS for f in s.flags if f.startswith("--")] + ["--version", "--help"]
    for arg in args:
        if arg.startswith("--"):
            close = difflib.get_close_matches(arg.split("=", 1)[0], flags, n=1)
            if close:
                return f" (did you mean {close[0]}?)"
    return ""


class _HelpFormatter(argparse.HelpFormatter):
    # argparse sizes help with shutil.get_terminal_size, and shutil drags bz2 and lzma into
    # every process (about 0.5 MB of RSS per worker) just to build the parser.
    def __init__(self, prog: str, width: int | None = None, **kwargs: Any) -> None:
        if width is None:
            try:
                width = os.get_terminal_size().columns - 2
            except OSError:
                width = 78
        super().__init__(prog, width=width, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="unicorn_aio",
        formatter_class=_HelpFormatter,
        usage="%(prog)s [OPTIONS] APP",
        description="Serve a WSGI or ASGI app (APP is module:callable) with pre-forked workers.",
    )
    parser.add_argument("app", nargs="?", metavar="APP", default=argparse.SUPPRESS,
                        help="the application, as module:callable (module:factory() for a factory)")
    parser.add_argument("-v", "--version", action="version", version=f"unicorn_aio {__version__}")
    groups = {section: parser.add_argument_group(section) for section in SECTIONS}
    for setting in SETTINGS:
        if setting.flags:
            _add_flag(groups[setting.section], setting)
    return parser


def _add_flag(group: argparse._ArgumentGroup, setting: Setting) -> None:
    default = setting.default_doc or setting.default
    if setting.env:
        default = f"{default}, or from ${setting.env}"
    kwargs: dict[str, Any] = {
        "dest": setting.name,
        "action": setting.action,
        "default": argparse.SUPPRESS,  # absent flags must not override lower-precedence sources
        "help": f"{setting.short} [{default}]".replace("%", "%%"),
    }
    if setting.action == "store_const":
        kwargs["const"] = setting.const
    if setting.action in ("store", "append") and setting.metavar:
        kwargs["metavar"] = setting.metavar
    if setting.nargs == "?":
        kwargs.update(action=_OptionalValue, nargs="?", const=setting.const)
    group.add_argument(*setting.flags, **kwargs)


class _OptionalValue(argparse.Action):
    """A flag whose value may be left out (gunicorn's ``--proxy-protocol [MODE]``). argparse would
    take the APP after a bare flag for its value; a word the setting refuses, with no APP given
    yet, is handed back as the APP, so ``--proxy-protocol myapp:app`` keeps its old meaning."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 value: Any, option_string: str | None = None) -> None:
        if value is not None and "app" not in vars(namespace):
            try:
                BY_NAME[self.dest].validate(value)
            except ValueError:
                namespace.app, value = value, self.const
        setattr(namespace, self.dest, self.const if value is None else value)


def _parse(parser: argparse.ArgumentParser, args: list[str], source: str | None) -> dict[str, Any]:
    try:
        return vars(parser.parse_args(args))
    except UsageError as exc:
        message = str(exc)
        # -workers 3 is -w "orkers", then a stray 3: name the flag that was meant
        flags = {f for s in SETTINGS for f in s.flags if f.startswith("--")}
        slip = next((a for a in args if a[:1] == "-" and "-" + a.split("=", 1)[0] in flags), None)
        if slip and "did you mean" not in message:
            message += f" (did you mean -{slip}? long flags take two dashes)"
        if source:
            raise UsageError(f"{source}: {message}") from None
        raise UsageError(message) from None


def _flag_label(name: str) -> str:
    return "argument " + "/".join(BY_NAME[name].flags)


# -- config file -----------------------------------------------------------------------------------


def read_config_file(location: str) -> tuple[dict[str, Any], str]:
    """The module-level names of a config file (PATH, file:PATH or python:MODULE) and its label."""
    if location.startswith("python:"):
        module_name = location[len("python:"):]
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())  # gunicorn chdirs and puts cwd on the path first
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise ConfigFileError(f"config module {module_name!r} failed to import: "
                                  f"{_describe(exc, None)}") from None
        return vars(module), location
    path = location.removeprefix("file:")
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as exc:
        raise ConfigFileError(f"config file {path!r} cannot be read: {exc.strerror}") from None
    module = types.ModuleType("__config__")
    module.__file__ = path
    try:
        exec(compile(source, path, "exec"), module.__dict__)
    except SyntaxError as exc:
        raise ConfigFileError(f"config file {path}, line {exc.lineno}: {exc.msg}") from None
    except Exception as exc:
        raise ConfigFileError(f"config file {_describe(exc, path)}") from None
    return vars(module), path


def _describe(exc: BaseException, path: str | None) -> str:
    """One line for an exception raised while running a file: where, type and message."""
    where = path or ""
    if path is not None:
        mine = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == path]
    else:
        mine = user_frames(exc)
    if mine:
        where = f"{mine[-1].filename}, line {mine[-1].lineno}"
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return f"{where}: {message}" if where else message


def _split(value: str, var: str) -> list[str]:
    try:
        return shlex.split(value)
    except ValueError as exc:  # an unbalanced quote
        raise UsageError(f"{var}: {exc}") from None


def apply_config_file(cfg: Config, location: str) -> None:
    names, label = read_config_file(location)
    for name, value in names.items():
        if name in BY_NAME or name in ALIASES:
            cfg.set(name, value, source=f"config file {label}: {name}")
        elif _plain(value) or inspect.isfunction(value):
            # Like gunicorn, other module-level names (imports, helpers) are not settings; but
            # one that can only be a slip for a setting's name would go unnoticed: a warning,
            # and --check-config fails on it.
            meant = near_miss(name)
            if meant:
                message = f"config file {label}: unknown setting {name!r} (did you mean {meant!r}?)"
                cfg.misspelt.append(message)
                cfg.warnings.append(f"{message}; it is ignored")


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str, list, tuple, dict))


def near_miss(name: str) -> str | None:
    """The setting a config-file name can only have been meant as, or None.

    Stricter than a fuzzy match, because config files hold helper names (port, host, env,
    cpu_count, workers_per_core, WORKERS) that must stay allowed: a lower-case name of five
    letters or more that is one slip from a setting (a letter added, dropped, changed, or two
    swapped: workres, max_request), the same but for underscores (keep_alive, log_level), or a
    setting's flag spelt as a name (preload for --preload, error_logfile for --error-logfile)."""
    if len(name) < 5 or name != name.lower() or name.startswith("_"):
        return None
    for setting in SETTINGS:
        spellings = [f[2:].replace("-", "_") for f in setting.flags if f.startswith("--")]
        if name in spellings or name.replace("_", "") == setting.name.replace("_", ""):
            return setting.name
    for candidate in list(BY_NAME) + list(ALIASES):
        if len(candidate) >= 5 and _one_slip(name, candidate):
            return ALIASES.get(candidate, candidate)
    return None


def _one_slip(a: str, b: str) -> bool:
    """a and b differ by one inserted, deleted or changed letter, or two adjacent swapped."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1:] == b[i + 1:] or (a[i + 2:] == b[i + 2:] and a[i:i + 2] == b[i:i + 2][::-1])
    return a[i + 1:] == b[i:] if len(a) > len(b) else a[i:] == b[i + 1:]


# -- all sources -----------------------------------------------------------------------------------


def load_config(argv: list[str], environ: Mapping[str, str] | None = None) -> Config:
    """The Config for a command line (without the program name), with every source applied."""
    environ = os.environ if environ is None else environ
    parser = build_parser()
    cli = _parse(parser, list(argv), None)
    env_layers = [(var, _parse(parser, _split(environ[var], var), var))
                  for var in ENV_ARGS if environ.get(var, "").strip()]

    cfg = Config(environ)
    cfg.argv = list(argv)
    config_file = cli.get("config")
    for _var, layer in reversed(env_layers):
        config_file = config_file or layer.get("config")
    if config_file is None and os.path.exists(DEFAULT_CONFIG_FILE):
        config_file = DEFAULT_CONFIG_FILE
    if config_file:
        apply_config_file(cfg, config_file)
        cfg.set("config", config_file)

    app_uri = None
    for var, layer in env_layers + [(None, cli)]:
        for name, value in layer.items():
            if name == "app":
                app_uri = value
            elif name != "config":
                label = _flag_label(name)
                cfg.set(name, value, source=f"{var}: {label}" if var else label)
    cfg.app_uri = app_uri
    _warn_combinations(cfg)
    return cfg


def _warn_combinations(cfg: Config) -> None:
    """Settings that cannot work together; each alone is valid."""
    if "h2" in cfg.http_protocols and not cfg.is_ssl and cfg.http2_cleartext == "off":
        cfg._warn("http_protocols includes h2 but there is no TLS and http2_cleartext is off, so "
                  "HTTP/2 will never be negotiated (h2c needs --http2-cleartext)")  # gunicorn's
    if cfg.enable_backlog_metric and cfg.statsd_host is None:
        cfg._warn("enable_backlog_metric does nothing without statsd_host: the backlog is sent as "
                  "a statsd metric only")
    elif cfg.enable_backlog_metric and cfg.reuse_port:
        cfg._warn("enable_backlog_metric with reuse_port: each worker accepts from a queue of its "
                  "own, which the master cannot read; no backlog metric is sent")
