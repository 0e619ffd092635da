"""The errors a user sees: each message is one line, meant to be shown as is."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting's value, name or source is wrong; the message is meant for the user as is."""

    exit_code = 2


class UsageError(ConfigError):
    """The command line itself is malformed (unknown flag, missing APP)."""


class ConfigFileError(ConfigError):
    """The config file could not be read or executed. gunicorn exits 1 here, so do we."""

    exit_code = 1


class AppImportError(Exception):
    """The app could not be loaded; the message is one line for the user."""


class AppBootError(AppImportError):
    """The app's own code failed as it loaded: its module (or one it imports) raised or is
    missing, or its factory raised.  gunicorn tells these apart from a wrong app name by the
    exit code: 3 (worker failed to boot) rather than 4 (app failed to load)."""


class LogConfigError(RuntimeError):
    """A --log-config* file or dict that cannot be loaded; the message names it and says why."""
