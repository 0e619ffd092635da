"""``unicorn_aio`` / ``python -m unicorn_aio``: resolve settings, report user errors, start the master.

User errors end in one line on stderr, ``unicorn_aio: error: ...``: exit 2 for bad settings and
command lines (as argparse does), 1 for a config file or app that fails to load (as gunicorn does).
"""

from __future__ import annotations

import sys
from typing import NoReturn

from unicorn_aio.apploader import prepare_process
from unicorn_aio.config.config import Config, build_parser, check_worker_class, load_config
from unicorn_aio.errors import ConfigError, UsageError
from unicorn_aio.tls import check_tls

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
    if not cfg.app_uri and not cfg.paste:
        fail("no application given: pass APP as module:callable, e.g. myproject.wsgi:application",
             2, usage=True)
    try:
        prepare_reload(cfg)
        if cfg.paste:
            from unicorn_aio.apploader import prepare_paste
            prepare_paste(cfg)
    except ConfigError as exc:
        fail(str(exc), exc.exit_code)
    try:
        prepare_process(cfg)
        check_tls(cfg)
    except (ConfigError, OSError) as exc:
        fail(str(exc), 2)
    try:
        check_log_files(cfg)
        check_worker_class(cfg.worker_class)  # after prepare_process: --pythonpath, --chdir
    except ConfigError as exc:
        fail(str(exc), 1)

    if cfg.check_config:
        report_warnings(cfg)
        # A setting's name misspelt in the config file is what --check-config is run to catch.
        for message in cfg.misspelt:
            sys.stderr.write(f"{PROG}: error: {message}\n")
        sys.exit(check_app(cfg) or (1 if cfg.misspelt else 0))

    # Imported late: the master pulls in the whole server, which --help and config errors never need.
    from unicorn_aio.errors import LogConfigError
    from unicorn_aio.prefork.arbiter import Arbiter

    try:
        arbiter = Arbiter(cfg)
    except LogConfigError as exc:  # --log-config / --log-config-json / --log-config-dict
        fail(str(exc), 1)
    sys.exit(arbiter.run())


def fail(message: str, code: int, *, usage: bool = False) -> NoReturn:
    if usage:
        sys.stderr.write(build_parser().format_usage())
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.exit(code)


def report_warnings(cfg: Config) -> None:
    """The warnings of the settings; with --check-config, misspelt names are errors instead."""
    errors = {f"{m}; it is ignored" for m in cfg.misspelt} if cfg.check_config else set()
    for message in cfg.warnings:
        if message not in errors:
            sys.stderr.write(f"{PROG}: warning: {message}\n")


def check_log_files(cfg: Config) -> None:
    """The log files must open now, as gunicorn checks: falling back to stdout (what a log that
    breaks while serving does) would lose them unseen under --daemon or systemd."""
    for which, path in (("access", cfg.accesslog), ("error", cfg.errorlog)):
        if path and path != "-":
            try:
                open(path, "a").close()
            except OSError as exc:
                raise ConfigError(f"cannot open {which} log {path!r}: {exc.strerror or exc}") \
                    from None


def prepare_reload(cfg: Config) -> None:
    """--reload watches files from each worker (a master must not have threads when it forks),
    and each reload imports the code afresh, so the master must not hold the app."""
    if not cfg.reload:
        return
    try:
        import watchfiles  # noqa: F401  (imports no threads; they start in the workers)
    except ImportError:
        raise ConfigError("--reload needs the watchfiles package: "
                          "pip install 'unicorn_aio[reload]'") from None
    if cfg.preload_app:
        cfg.warnings.append("--preload is ignored with --reload: workers import the code themselves")
        cfg.preload_app = False


def check_app(cfg: Config) -> int:
    """--check-config: import the app the way a worker would. 0 if it loads, else 1."""
    from unicorn_aio.apploader import load_wsgi_app
    from unicorn_aio.errors import AppImportError, LogConfigError
    from unicorn_aio.log import logger_for

    try:
        logger_for(cfg)
    except LogConfigError as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return 1
    try:
        load_wsgi_app(cfg)
    except AppImportError as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return 1
    except Exception as exc:  # apploader should have said it in one line; never a traceback wall
        sys.stderr.write(f"{PROG}: error: loading {cfg.app_uri or cfg.paste}: "
                         f"{type(exc).__name__}: {exc}\n")
        return 1
    return 0
