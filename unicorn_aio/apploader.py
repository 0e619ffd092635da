"""Load the app the settings name, as gunicorn does, with one-line errors.

- ``APP``: ``module:name``, imported (``load_app``), and told apart as WSGI or ASGI
  (``is_asgi_app``, ``interface_mismatch``);
- ``--paste development.ini[#name]``: the ini file's ``[app:name]`` through PasteDeploy
  (``load_paste_app``); the server's settings still come from the command line and config file,
  never from ``[server:*]`` (gunicorn >= 20 reads only the app, and the ini's logging sections
  when it has a ``[loggers]`` section);
- ``prepare_process``: raw_env, chdir and the import path, set before either.

APP forms: ``module`` (meaning ``module:application``), ``module:name``, ``module:a.b``,
``module:factory()`` and ``module:factory('arg', key=1)`` with literal arguments.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import os
import sys
import traceback
import types
from typing import TYPE_CHECKING, Any, Callable, TypeAlias

from unicorn_aio.errors import AppBootError, AppImportError, ConfigError

if TYPE_CHECKING:
    from unicorn_aio.config.config import Config

# A WSGI or ASGI application: which one, and its arguments, are told apart at run time.
App: TypeAlias = Callable[..., Any]


def load_app(app_uri: str) -> App:
    module_name, colon, expr = app_uri.partition(":")
    if not module_name:
        raise AppImportError(f"invalid app {app_uri!r}: expected module:callable")
    if colon and not expr.strip():  # gunicorn: "Failed to parse ''", not its default name
        raise AppImportError(f"app {app_uri!r}: cannot parse '' (nothing after ':'); expected "
                             f"module:callable, e.g. {module_name}:app")
    expr = expr or "application"
    name, call = _parse_expression(app_uri, expr)
    obj: Any = _import(module_name, app_uri)
    for part in name.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppImportError(
                f"app {app_uri!r}: module {module_name!r} has no attribute {name!r}") from None
    if call is not None:
        args, kwargs = call
        try:
            obj = obj(*args, **kwargs)
        except Exception as exc:
            raise AppBootError(
                f"app {app_uri!r}: factory {name}() failed: {one_line(exc)}") from exc
    if not callable(obj):
        kind = type(obj).__name__
        what = f"{name}() returned" if call is not None else f"{name!r} is"
        raise AppImportError(f"app {app_uri!r}: {what} {'an' if kind[0] in 'aeiou' else 'a'} "
                             f"{kind}, not a callable app")
    return obj


def _parse_expression(app_uri: str, expr: str
                      ) -> tuple[str, tuple[list[Any], dict[str, Any]] | None]:
    """The dotted name in ``expr``, and the factory call's (args, kwargs) if it is one."""
    try:
        node = ast.parse(expr.strip(), mode="eval").body
    except SyntaxError:
        raise AppImportError(f"app {app_uri!r}: cannot parse {expr!r}") from None
    call = None
    if isinstance(node, ast.Call):
        try:
            args = [ast.literal_eval(a) for a in node.args]
            kwargs: dict[str, Any] = {}
            for keyword in node.keywords:
                if keyword.arg is None:  # **mapping: no more a literal than *args is
                    raise ValueError(keyword)
                kwargs[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:
            raise AppImportError(
                f"app {app_uri!r}: factory arguments must be literals") from None
        call = (args, kwargs)
        node = node.func
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise AppImportError(f"app {app_uri!r}: {expr!r} is not a name or a factory call")
    parts.append(node.id)
    return ".".join(reversed(parts)), call


def _import(module_name: str, app_uri: str) -> types.ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            hint = ""
            if module_name.endswith(".py") and os.path.exists(module_name):  # gunicorn's hint
                attr = app_uri.partition(":")[2] or "application"
                hint = f"; did you mean '{module_name[:-3]}:{attr}'?"
            raise AppBootError(f"app {app_uri!r}: no module named {exc.name!r} "
                               f"(looked in {sys.path[0] or '.'} and the Python path){hint}") \
                from None
        raise AppBootError(f"app {app_uri!r}: importing {module_name} failed: "
                           f"{one_line(exc)}") from exc
    except Exception as exc:
        raise AppBootError(f"app {app_uri!r}: importing {module_name} failed: "
                           f"{one_line(exc)}") from exc


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_frames(exc: BaseException) -> list[traceback.FrameSummary]:
    """The frames of ``exc``'s traceback in the user's code, not the import machinery's
    ("<frozen importlib._bootstrap>") nor ours (the line that imported a missing module):
    what an error message should point at."""
    return [f for f in traceback.extract_tb(exc.__traceback__)
            if not f.filename.startswith(("<", _PACKAGE_DIR)) and "importlib" not in f.filename]


def one_line(exc: BaseException) -> str:
    """The exception and where in the user's code it was raised, in one line."""
    frames = user_frames(exc)
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    if isinstance(exc, SyntaxError):
        where = f" ({exc.filename}:{exc.lineno})"
        return f"SyntaxError: {exc.msg}{where}"
    return f"{type(exc).__name__}: {exc}{where}"


def is_asgi_app(app: App) -> bool:
    """Interface auto-detection: a coroutine function, or an object with an async __call__.

    A class is never taken for ASGI: calling it builds an instance (a WSGI app may be a class
    whose instances are the response iterable; ASGI 2's double callables are not supported).
    """
    while isinstance(app, functools.partial):
        app = app.func
    if inspect.isclass(app):
        return False
    if inspect.iscoroutinefunction(app):
        return True
    return inspect.iscoroutinefunction(getattr(app, "__call__", None))


def _takes_two_positionals(app: App) -> bool:
    """A plain sync callable of exactly two positional arguments: app(environ, start_response)."""
    if inspect.isclass(app) or isinstance(app, functools.partial) or is_asgi_app(app):
        return False
    try:
        params = inspect.signature(app).parameters.values()
    except (TypeError, ValueError):  # builtins and C callables: nothing to go by
        return False
    kinds = [p.kind for p in params]
    if inspect.Parameter.VAR_POSITIONAL in kinds:
        return False
    return sum(k in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
               for k in kinds) == 2


def interface_mismatch(app: App, interface: str) -> str | None:
    """Why ``app`` cannot be served as ``interface`` ("wsgi" or "asgi"), or None.

    Only the plain cases are refused, so the mistake surfaces at boot and not as a 500 per
    request: a coroutine function (or async __call__) served as WSGI, and a sync callable
    taking (environ, start_response) served as ASGI. Anything else is taken at its word.
    """
    if interface == "wsgi" and is_asgi_app(app):
        return "it is an ASGI app (async), but the interface is WSGI"
    if interface == "asgi" and _takes_two_positionals(app):
        return "it is a WSGI app (app(environ, start_response)), but the interface is ASGI"
    return None


def prepare_process(cfg: Config) -> None:
    """What gunicorn does before loading the app: raw_env, chdir, and the import path."""
    os.environ.update(cfg.env)
    if os.getcwd() != cfg.chdir:
        os.chdir(cfg.chdir)
    # The app's directory first, as `python -m` would have it; pythonpath entries before that.
    for path in [cfg.chdir] + cfg.pythonpath_list[::-1]:
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)


def config_path(paste: str) -> tuple[str, str | None]:
    """'dir/app.ini#name' -> (absolute path of the ini file, app name or None)."""
    path, _, name = paste.partition("#")
    return os.path.abspath(path), name or None


def has_logging_config(path: str) -> bool:
    import configparser  # only with --paste: keep it out of every worker

    parser = configparser.ConfigParser()
    try:
        parser.read([path])
    except configparser.Error:
        return False
    return parser.has_section("loggers")


def global_conf(cfg: Config) -> dict[str, str]:
    """--paste-global KEY=VALUE pairs, the ini's %(KEY)s defaults."""
    conf = {}
    for item in cfg.raw_paste_global_conf or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--paste-global: {item!r} is not KEY=VALUE")
        conf[key.strip()] = value
    return conf


def prepare_paste(cfg: Config) -> None:
    """What --paste sets before the app loads: an absolute ini path, proc name, logging."""
    path, name = config_path(cfg.paste)
    if not os.path.isfile(path):
        raise ConfigError(f"--paste {cfg.paste}: no such file {path}")
    cfg.set("paste", path + (f"#{name}" if name else ""))
    if "default_proc_name" not in cfg.explicit:
        cfg.set("default_proc_name", path)
    if has_logging_config(path) and not (cfg.logconfig or cfg.logconfig_dict or cfg.logconfig_json):
        cfg.set("logconfig", path)


def load_paste_app(cfg: Config) -> App:
    """The WSGI app of cfg.paste, with a one-line AppImportError for anything that goes wrong."""
    path, name = config_path(cfg.paste)
    try:
        from paste.deploy import loadapp
    except ImportError:
        raise AppImportError(f"--paste {cfg.paste}: PasteDeploy is not installed "
                             "(pip install pastedeploy)") from None
    if not os.path.isfile(path):
        raise AppImportError(f"--paste {cfg.paste}: no such file {path}")
    # The ini's directory is where its egg:/call: references are usually found.
    here = os.path.dirname(path)
    if here not in sys.path:
        sys.path.insert(0, here)
    try:
        return loadapp("config:" + path, name=name, relative_to=here,
                       global_conf=global_conf(cfg) or None)
    except LookupError as exc:  # no [app:name] section, unknown egg entry point
        raise AppImportError(f"--paste {cfg.paste}: {exc}") from None
    except Exception as exc:
        raise AppBootError(f"--paste {cfg.paste}: loading the app failed: "
                           f"{one_line(exc)}") from exc


def load_wsgi_app(cfg: Config) -> App:
    """The app the settings name: --paste when given, else APP (module:callable); refused when
    it plainly cannot be served as the interface asked for (--interface, or -k)."""
    app_uri = cfg.app_uri
    if cfg.paste:
        app, name = load_paste_app(cfg), f"--paste {cfg.paste}"
    elif app_uri:
        app, name = load_app(app_uri), f"app {app_uri!r}"
    else:  # main() refuses this before; said here too for a Config built in code
        raise AppImportError("no application given: set APP (wsgi_app) as module:callable")
    if cfg.interface != "auto":
        problem = interface_mismatch(app, cfg.interface)
        if problem:
            other = "asgi" if cfg.interface == "wsgi" else "wsgi"
            if "interface" in cfg.explicit:
                where = f"--interface {cfg.interface}; give --interface {other} or auto"
            else:
                where = (f"implied by worker_class {cfg.worker_class!r}; drop it or give "
                         f"--interface {other}")
            raise AppImportError(f"{name}: {problem} ({where})")
    return app
