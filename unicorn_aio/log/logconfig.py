"""Log configs and gunicorn's logger names.

--log-config (fileConfig), --log-config-json and logconfig_dict (dictConfig) applied over the
server's two loggers, "unicorn_aio.error" and "unicorn_aio.access", and the two names of
gunicorn's that configs and apps use for them, "gunicorn.error" and "gunicorn.access": a config
that configures those applies to ours, and an app that borrows their handlers gets ours.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from unicorn_aio.errors import LogConfigError

ERROR_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
ERROR_DATEFMT = "%Y-%m-%d %H:%M:%S %z"

# The base of --log-config-dict / --log-config-json: each section of the user's dict is merged
# over these by name, so a config may name only the loggers it cares about and still use
# "console", "error_console" and "generic". Unlike gunicorn's, these do not configure our own
# loggers: they keep what --error-logfile / --access-logfile set unless the config names them.
CONFIG_DEFAULTS = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "INFO", "handlers": ["console"]},
    "loggers": {},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "generic",
            "stream": "ext://sys.stdout",
        },
        "error_console": {
            "class": "logging.StreamHandler",
            "formatter": "generic",
            "stream": "ext://sys.stderr",
        },
    },
    "formatters": {
        "generic": {"format": ERROR_FORMAT, "datefmt": ERROR_DATEFMT, "class": "logging.Formatter"},
    },
}
_MERGED_SECTIONS = ("formatters", "filters", "handlers", "loggers")


def apply_log_config(cfg: Any, error_log: logging.Logger, access_log: logging.Logger) -> bool:
    """Apply --log-config-dict, else --log-config-json, else --log-config (gunicorn's order)
    over our two loggers. True when one was applied."""
    own = {lg.name: list(lg.handlers) for lg in (error_log, access_log)}
    config_dict = getattr(cfg, "logconfig_dict", None)
    config_json = getattr(cfg, "logconfig_json", None)
    config_ini = getattr(cfg, "logconfig", None)
    if config_dict or config_json or config_ini:
        _take_back_gunicorn_names(error_log, access_log)
    if config_dict:
        dict_config(config_dict, "--log-config-dict")
    elif config_json:
        try:
            with open(config_json, encoding="utf-8") as f:
                import json

                loaded = json.load(f)
        except OSError as exc:
            raise LogConfigError(f"log config {config_json!r} cannot be read: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise LogConfigError(f"log config {config_json!r} is not valid JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise LogConfigError(f"log config {config_json!r} must hold a JSON object")
        dict_config(loaded, repr(config_json))
    elif config_ini:
        if not os.path.exists(config_ini):
            raise LogConfigError(f"log config {config_ini!r} not found")
        defaults = {"__file__": config_ini, "here": os.path.dirname(os.path.abspath(config_ini))}
        try:
            import logging.config  # 1 MB: only when a log config asks for it

            logging.config.fileConfig(config_ini, defaults=defaults, disable_existing_loggers=False)
        except Exception as exc:
            raise LogConfigError(f"log config {config_ini!r} cannot be applied: "
                                 f"{_config_failure(exc)}") from exc
    else:
        return False
    _adopt_gunicorn_loggers((error_log, access_log), own)
    return True


def dict_config(config: dict[str, Any], where: str) -> None:
    merged = dict(CONFIG_DEFAULTS)
    for key, value in config.items():
        default = merged.get(key)
        if key in _MERGED_SECTIONS and isinstance(value, dict) and isinstance(default, dict):
            value = {**default, **value}
        merged[key] = value
    try:
        import logging.config

        logging.config.dictConfig(merged)
    except (AttributeError, ImportError, ValueError, TypeError, KeyError, OSError) as exc:
        raise LogConfigError(f"log config {where} cannot be applied: {_config_failure(exc)}") from exc


def _adopt_gunicorn_loggers(loggers: tuple[logging.Logger, ...],
                            own_before: dict[str, list[logging.Handler]]) -> None:
    """A config written for gunicorn configures "gunicorn.error" / "gunicorn.access". When it
    left our logger alone and configured gunicorn's, ours takes its handlers, level and
    propagation, so the config works unchanged."""
    for ours in loggers:
        theirs = logging.getLogger(gunicorn_name(ours))
        if ours.handlers != own_before[ours.name] or not theirs.handlers:
            continue
        for handler in list(ours.handlers):
            ours.removeHandler(handler)
            if getattr(handler, "unicorn_aio", False):
                handler.close()
        for handler in theirs.handlers:
            ours.addHandler(handler)
        ours.setLevel(theirs.level)
        ours.propagate = theirs.propagate
        ours.disabled = theirs.disabled


def lend_gunicorn_names(error_log: logging.Logger, access_log: logging.Logger) -> None:
    """Apps borrow the server's log by gunicorn's names, as Flask's docs show:
    ``app.logger.handlers = logging.getLogger("gunicorn.error").handlers`` and
    ``app.logger.setLevel(gunicorn_logger.level)``. "gunicorn.error" and "gunicorn.access"
    hold our loggers' very handler lists (as under gunicorn, where they are the server's
    loggers, a later USR1 or HUP shows through) and their levels; unless a log config
    gave them handlers of their own."""
    for ours in (error_log, access_log):
        theirs = logging.getLogger(gunicorn_name(ours))
        if theirs.handlers is not ours.handlers and theirs.handlers \
                and set(theirs.handlers) != set(ours.handlers):
            continue
        theirs.handlers = ours.handlers
        theirs.setLevel(ours.level)
        theirs.propagate = ours.propagate
        theirs.disabled = ours.disabled


def _take_back_gunicorn_names(error_log: logging.Logger, access_log: logging.Logger) -> None:
    # A log config may configure gunicorn's names: it must not do so through our lists.
    for ours in (error_log, access_log):
        theirs = logging.getLogger(gunicorn_name(ours))
        if theirs.handlers is ours.handlers:
            theirs.handlers = []


def gunicorn_name(ours: logging.Logger) -> str:
    """gunicorn's name for one of our loggers: unicorn_aio.error -> gunicorn.error."""
    return "gunicorn." + ours.name.rsplit(".", 1)[1]


def _config_failure(exc: BaseException | None) -> str:
    """Why logging.config refused a config, in one line: dictConfig hides the cause behind
    "Unable to configure handler 'x'", configparser spreads its message over lines, and a
    section or key fileConfig looks for and does not find is a bare KeyError."""
    parts: list[str] = []
    while exc is not None and len(parts) < 3:
        if isinstance(exc, KeyError) and exc.args:
            text = f"no section or key named {exc.args[0]!r}"
        elif isinstance(exc, OSError) and exc.strerror:
            text = f"{exc.strerror}: {exc.filename!r}" if exc.filename else exc.strerror
        else:
            text = str(exc) or type(exc).__name__
        text = " ".join(text.split())
        if not parts or text not in parts[-1]:  # a wrapper often repeats its cause
            parts.append(text)
        exc = exc.__cause__
    return ": ".join(parts)
