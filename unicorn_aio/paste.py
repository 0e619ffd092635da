"""PasteDeploy, both ways round, as gunicorn does it.

``--paste development.ini[#name]``: the app comes from the ini file's ``[app:name]`` (``main``
by default) through ``paste.deploy.loadapp``; the server's settings still come from the command
line and config file, never from ``[server:*]`` (gunicorn >= 20 reads only the app, and the
ini's logging sections when it has a ``[loggers]`` section).

``[server:main] use = egg:unicorn_aio``: ``pserve development.ini`` (or anything calling
``paste.deploy.loadserver``) hands us the already-loaded app; ``serve_paste`` turns the
section's keys into settings (``host``/``port`` into ``bind``) and runs the master with that app.
Like gunicorn's paste server, a HUP then re-reads the section but cannot re-import the code.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from .apploader import AppBootError, AppImportError, _one_line
from .config import Config, ConfigError


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


def global_conf(cfg) -> dict[str, str]:
    """--paste-global KEY=VALUE pairs, the ini's %(KEY)s defaults."""
    conf = {}
    for item in cfg.raw_paste_global_conf or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--paste-global: {item!r} is not KEY=VALUE")
        conf[key.strip()] = value
    return conf


def prepare(cfg) -> None:
    """What --paste sets before the app loads: an absolute ini path, proc name, logging."""
    path, name = config_path(cfg.paste)
    if not os.path.isfile(path):
        raise ConfigError(f"--paste {cfg.paste}: no such file {path}")
    cfg.set("paste", path + (f"#{name}" if name else ""))
    if "default_proc_name" not in cfg.explicit:
        cfg.set("default_proc_name", path)
    if has_logging_config(path) and not (cfg.logconfig or cfg.logconfig_dict or cfg.logconfig_json):
        cfg.set("logconfig", path)


def load_paste_app(cfg):
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
                           f"{_one_line(exc)}") from exc


def load_wsgi_app(cfg):
    """The app the settings name: --paste when given, else APP (module:callable); refused when
    it plainly cannot be served as the interface asked for (--interface, or -k)."""
    if cfg.paste:
        app, name = load_paste_app(cfg), f"--paste {cfg.paste}"
    else:
        from .apploader import load_app
        app, name = load_app(cfg.app_uri), f"app {cfg.app_uri!r}"
    if cfg.interface != "auto":
        from .asgi import interface_mismatch
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


def paste_config(global_conf: dict[str, Any], local_conf: dict[str, Any]) -> Config:
    """Settings from a ``[server:*]`` section: its keys are setting names, as in gunicorn."""
    local_conf = dict(local_conf)
    cfg = Config()
    config_file = local_conf.pop("config", None)
    if config_file:
        from .config import apply_config_file
        apply_config_file(cfg, config_file)
        cfg.set("config", config_file)
    host, port = local_conf.pop("host", ""), local_conf.pop("port", "")
    if host and port:
        cfg.set("bind", f"{host}:{port}", source="[server] host/port")
    elif host:
        cfg.set("bind", host.split(","), source="[server] host")
    ini = global_conf.get("__file__")
    if ini:
        cfg.set("default_proc_name", ini)
        if has_logging_config(ini):
            cfg.set("logconfig", ini)
    for key, value in local_conf.items():
        if value is not None:
            cfg.set(key.lower(), value, source=f"[server] {key}")
    cfg.argv = []
    return cfg


def serve_paste(app, global_conf: dict[str, Any], **local_conf: Any) -> int:
    """The ``paste.server_runner`` entry point: ``[server:main] use = egg:unicorn_aio``."""
    from .arbiter import Arbiter

    try:
        cfg = paste_config(global_conf, local_conf)
    except ConfigError as exc:
        sys.stderr.write(f"unicorn_aio: error: {exc}\n")
        raise SystemExit(exc.exit_code) from None

    class PasteArbiter(Arbiter):
        def load_config(self):
            return paste_config(global_conf, local_conf)

    arbiter = PasteArbiter(cfg)
    arbiter.app = app  # loaded by PasteDeploy in this process: every worker inherits it
    code = arbiter.run()
    if code:
        raise SystemExit(code)
    return code
