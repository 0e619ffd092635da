"""``unicorn_aio`` / ``python -m unicorn_aio``: resolve settings, report user errors, start the master.

User errors end in one line on stderr, ``unicorn_aio: error: ...``: exit 2 for bad settings and
command lines (as argparse does), 1 for a config file or app that fails to load (as gunicorn does).
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from .config import Config, ConfigError, UsageError, build_parser, load_config

PROG = "unicorn_aio"


def main(argv: list[str] | None = None) -> NoReturn:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        cfg = load_config(argv)
    except ConfigError as exc:
        fail(str(exc), exc.exit_code, usage=isinstance(exc, UsageError))

    if cfg.print_config:
        print(cfg, flush=True)
        if not cfg.check_config:
            report_warnings(cfg)
            sys.exit(0)
    if not cfg.app_uri:
        fail("no application given: pass APP as module:callable, e.g. myproject.wsgi:application",
             2, usage=True)
    try:
        prepare_process(cfg)
    except (ConfigError, OSError) as exc:
        fail(str(exc), 2)

    if cfg.check_config:
        report_warnings(cfg)
        sys.exit(check_app(cfg))

    # Imported late: the master pulls in the whole server, which --help and config errors never need.
    from .arbiter import Arbiter

    sys.exit(Arbiter(cfg).run())


def fail(message: str, code: int, *, usage: bool = False) -> NoReturn:
    if usage:
        sys.stderr.write(build_parser().format_usage())
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.exit(code)


def report_warnings(cfg: Config) -> None:
    for message in cfg.warnings:
        sys.stderr.write(f"{PROG}: warning: {message}\n")


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


def check_app(cfg: Config) -> int:
    """--check-config: import the app the way a worker would. 0 if it loads, else 1."""
    from .apploader import AppImportError, load_app

    try:
        load_app(cfg.app_uri)
    except AppImportError as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return 1
    except Exception as exc:  # apploader should have said it in one line; never a traceback wall
        sys.stderr.write(f"{PROG}: error: loading {cfg.app_uri}: {type(exc).__name__}: {exc}\n")
        return 1
    return 0
