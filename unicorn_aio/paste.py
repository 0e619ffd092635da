"""PasteDeploy's server side, as gunicorn's paste runner (``--paste``, the app side, is in
apploader).

``[server:main] use = egg:unicorn_aio``: ``pserve development.ini`` (or anything calling
``paste.deploy.loadserver``) hands us the already-loaded app; ``serve_paste`` turns the
section's keys into settings (``host``/``port`` into ``bind``) and runs the master with that app.
Like gunicorn's paste server, a HUP then re-reads the section but cannot re-import the code.
"""

from __future__ import annotations

import sys
from typing import Any

from unicorn_aio.apploader import App, has_logging_config
from unicorn_aio.config.config import Config
from unicorn_aio.errors import ConfigError


def paste_config(global_conf: dict[str, Any], local_conf: dict[str, Any]) -> Config:
    """Settings from a ``[server:*]`` section: its keys are setting names, as in gunicorn."""
    local_conf = dict(local_conf)
    cfg = Config()
    config_file = local_conf.pop("config", None)
    if config_file:
        from unicorn_aio.config.config import apply_config_file
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


def serve_paste(app: App, global_conf: dict[str, Any], **local_conf: Any) -> int:
    """The ``paste.server_runner`` entry point: ``[server:main] use = egg:unicorn_aio``."""
    from unicorn_aio.prefork.arbiter import Arbiter

    try:
        cfg = paste_config(global_conf, local_conf)
    except ConfigError as exc:
        sys.stderr.write(f"unicorn_aio: error: {exc}\n")
        raise SystemExit(exc.exit_code) from None

    class PasteArbiter(Arbiter):
        def load_config(self) -> Config:
            return paste_config(global_conf, local_conf)

    arbiter = PasteArbiter(cfg)
    arbiter.app = app  # loaded by PasteDeploy in this process: every worker inherits it
    code = arbiter.run()
    if code:
        raise SystemExit(code)
    return code
