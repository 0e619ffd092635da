"""Import the app named on the command line, as gunicorn does, with one-line errors.

Accepted forms: ``module`` (meaning ``module:application``), ``module:name``, ``module:a.b``,
``module:factory()`` and ``module:factory('arg', key=1)`` with literal arguments.
"""

from __future__ import annotations

import ast
import importlib
import sys
import traceback


class AppImportError(Exception):
    """The app could not be loaded; the message is one line for the user."""


class AppBootError(AppImportError):
    """The app's own code failed as it loaded: its module (or one it imports) raised or is
    missing, or its factory raised.  gunicorn tells these apart from a wrong app name by the
    exit code: 3 (worker failed to boot) rather than 4 (app failed to load)."""


def load_app(app_uri: str):
    module_name, _, expr = app_uri.partition(":")
    if not module_name:
        raise AppImportError(f"invalid app {app_uri!r}: expected module:callable")
    expr = expr or "application"
    name, args, kwargs = _parse_expression(app_uri, expr)
    module = _import(module_name, app_uri)
    obj = module
    for part in name.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppImportError(
                f"app {app_uri!r}: module {module_name!r} has no attribute {name!r}") from None
    if args is not None:
        try:
            obj = obj(*args, **kwargs)
        except Exception as exc:
            raise AppBootError(
                f"app {app_uri!r}: factory {name}() failed: {_one_line(exc)}") from exc
    if not callable(obj):
        kind = type(obj).__name__
        what = f"{name}() returned" if args is not None else f"{name!r} is"
        raise AppImportError(f"app {app_uri!r}: {what} {'an' if kind[0] in 'aeiou' else 'a'} "
                             f"{kind}, not a callable app")
    return obj


def _parse_expression(app_uri: str, expr: str):
    try:
        node = ast.parse(expr.strip(), mode="eval").body
    except SyntaxError:
        raise AppImportError(f"app {app_uri!r}: cannot parse {expr!r}") from None
    args = kwargs = None
    if isinstance(node, ast.Call):
        try:
            args = [ast.literal_eval(a) for a in node.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        except ValueError:
            raise AppImportError(
                f"app {app_uri!r}: factory arguments must be literals") from None
        node = node.func
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise AppImportError(f"app {app_uri!r}: {expr!r} is not a name or a factory call")
    parts.append(node.id)
    return ".".join(reversed(parts)), args, kwargs


def _import(module_name: str, app_uri: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AppBootError(f"app {app_uri!r}: no module named {exc.name!r} "
                               f"(looked in {sys.path[0] or '.'} and the Python path)") from None
        raise AppBootError(f"app {app_uri!r}: importing {module_name} failed: "
                           f"{_one_line(exc)}") from exc
    except Exception as exc:
        raise AppBootError(f"app {app_uri!r}: importing {module_name} failed: "
                           f"{_one_line(exc)}") from exc


def user_frames(exc: BaseException) -> list[traceback.FrameSummary]:
    """The frames of ``exc``'s traceback in the user's code, not the import machinery's
    ("<frozen importlib._bootstrap>"): what an error message should point at."""
    return [f for f in traceback.extract_tb(exc.__traceback__)
            if not f.filename.startswith("<") and "importlib" not in f.filename]


def _one_line(exc: BaseException) -> str:
    """The exception and where in the user's code it was raised, in one line."""
    frames = user_frames(exc)
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    if isinstance(exc, SyntaxError):
        where = f" ({exc.filename}:{exc.lineno})"
        return f"SyntaxError: {exc.msg}{where}"
    return f"{type(exc).__name__}: {exc}{where}"
