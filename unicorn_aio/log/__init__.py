"""Logging: gunicorn's error and access loggers, their outputs, access-log atoms, statsd."""

from __future__ import annotations

from typing import Any

from unicorn_aio.log.logger import Logger


def logger_for(cfg: Any) -> Logger:
    """The logger --logger-class asks for (settings.logger_class checked it), set up for cfg.
    With statsd_host set, the default logger is the statsd one, as in gunicorn."""
    cls = getattr(cfg, "logger_class", None)
    if not isinstance(cls, type):
        cls = Logger
        if getattr(cfg, "statsd_host", None):
            from unicorn_aio.log.statsd import Statsd  # only processes that send metrics import it

            cls = Statsd
    return cls(cfg)
