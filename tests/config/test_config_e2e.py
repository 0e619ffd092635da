"""A gunicorn config file run unchanged, and the precedence of every source, seen from a real server:
config file < GUNICORN_CMD_ARGS < UNICORN_AIO_CMD_ARGS < the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from procs import ROOT, children, free_port, get, stop_session, wait_for

pytestmark = pytest.mark.timeout(90)

CONF = '''\
# A gunicorn.conf.py as people write them: settings, imports, helpers and hooks.
import json
import multiprocessing
import os

bind = "127.0.0.1:{port}"
workers = 2
threads = 3
timeout = 40
keepalive = 5
accesslog = None
loglevel = "info"
proc_name = "conf-e2e"


def _dump(server, name):
    cfg = server.cfg
    with open(os.path.join({out!r}, name), "w") as f:
        json.dump({{"bind": cfg.bind, "workers": cfg.workers, "threads": cfg.threads,
                   "timeout": cfg.timeout, "keepalive": cfg.keepalive}}, f)


def on_starting(server):
    server.log.info("conf on_starting hook ran")


def when_ready(server):
    _dump(server, "ready.json")


def post_fork(server, worker):
    server.log.info("conf post_fork hook ran for %s", worker.pid)
'''


@pytest.fixture
def run(tmp_path):
    """run(argv, env) -> (effective settings from when_ready, port, worker pids, log)."""
    started = []
    conf_port = free_port()
    conf = tmp_path / "conf.py"
    conf.write_text(CONF.format(port=conf_port, out=str(tmp_path)))

    def start(extra_args=(), env=None, expect_workers=2, expect_port=conf_port):
        ready = tmp_path / "ready.json"
        if ready.exists():
            ready.unlink()
        log = open(tmp_path / f"log{len(started)}", "wb+")
        full_env = {k: v for k, v in os.environ.items()
                    if k not in ("GUNICORN_CMD_ARGS", "UNICORN_AIO_CMD_ARGS", "WEB_CONCURRENCY",
                                 "PORT")}
        full_env.update(PYTHONPATH=os.path.join(ROOT, "tests", "support") + os.pathsep + ROOT, **(env or {}))
        proc = subprocess.Popen([sys.executable, "-m", "unicorn_aio", "-c", str(conf),
                                 "access_app:app", *extra_args], cwd=str(tmp_path), env=full_env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        started.append((proc, log))

        def log_text():
            log.seek(0)
            return log.read().decode("utf-8", "replace")

        def up():
            if proc.poll() is not None:
                raise AssertionError(f"server exited {proc.returncode}:\n{log_text()}")
            return ready.exists() and len(children(proc.pid)) == expect_workers
        wait_for(up, 20, what=f"{expect_workers} workers")
        assert wait_for(lambda: _serves(expect_port), 10, what=f"port {expect_port}")
        effective = json.loads(ready.read_text())
        wait_for(lambda: log_text().count("conf post_fork hook ran") >= expect_workers, 10,
                 what="post_fork hooks")
        return effective, children(proc.pid), log_text()

    start.conf_port = conf_port
    yield start
    for proc, log in started:
        stop_session(proc)
        log.close()


def _serves(port: int) -> bool:
    try:
        return get(f"http://127.0.0.1:{port}/hello")[0] == 200
    except OSError:
        return False


def test_conf_file_runs_unchanged(run):
    effective, workers, log = run()
    assert effective == {"bind": [f"127.0.0.1:{run.conf_port}"], "workers": 2, "threads": 3,
                         "timeout": 40, "keepalive": 5}
    assert len(workers) == 2
    assert "conf on_starting hook ran" in log
    assert "error" not in log.lower()


def test_gunicorn_cmd_args_override_the_file(run):
    port = free_port()
    effective, workers, _ = run(env={"GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{port} -w 3"},
                                expect_workers=3, expect_port=port)
    assert effective["bind"] == [f"127.0.0.1:{port}"] and effective["workers"] == 3
    assert effective["threads"] == 3 and len(workers) == 3
    assert not _serves(run.conf_port)


def test_unicorn_aio_cmd_args_override_gunicorn_cmd_args(run):
    port = free_port()
    effective, workers, _ = run(env={"GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{port} -w 3",
                                     "UNICORN_AIO_CMD_ARGS": "--workers 1 --threads 5"},
                                expect_workers=1, expect_port=port)
    assert effective == {"bind": [f"127.0.0.1:{port}"], "workers": 1, "threads": 5,
                         "timeout": 40, "keepalive": 5}
    assert len(workers) == 1


def test_command_line_overrides_everything(run):
    env_port, cli_port = free_port(), free_port()
    effective, workers, _ = run(
        ["--bind", f"127.0.0.1:{cli_port}", "--workers", "2", "--timeout", "7"],
        env={"GUNICORN_CMD_ARGS": f"--bind 127.0.0.1:{env_port} -w 3 --timeout 9",
             "UNICORN_AIO_CMD_ARGS": "--workers 1 --threads 5"},
        expect_workers=2, expect_port=cli_port)
    assert effective == {"bind": [f"127.0.0.1:{cli_port}"], "workers": 2, "threads": 5,
                         "timeout": 7, "keepalive": 5}
    assert len(workers) == 2
    assert not _serves(env_port)
