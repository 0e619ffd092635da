"""PasteDeploy with the real package: --paste ini, --paste ini#name, --paste-global, and
``[server:main] use = egg:unicorn_aio`` through paste.deploy.loadserver (what pserve calls)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest
from procs import ROOT, ServerProcess, children, free_port, get, wait_for

pytestmark = pytest.mark.timeout(60)
pytest.importorskip("paste.deploy",
                    reason="pastedeploy is in the test extra: pip install -e '.[test]'")

EXAMPLE = os.path.join(ROOT, "examples", "paste")


@pytest.fixture
def project(tmp_path):
    for name in ("development.ini", "paste_app.py"):
        shutil.copy(os.path.join(EXAMPLE, name), tmp_path / name)
    return tmp_path


@pytest.fixture
def serve(project):
    started = []

    def start(*args, ready=True):
        proc = ServerProcess(*args, cwd=str(project),
                             log_path=str(project / f"server{len(started)}.log"))
        started.append(proc)
        return proc.wait_ready() if ready else proc

    yield start
    for proc in started:
        proc.stop()


def test_paste_loads_app_main(serve):
    proc = serve("--paste=development.ini")  # relative to the cwd, like gunicorn
    assert get(proc.url + "/") == (200, b"Hello from Paste (vanilla)\n")


def test_paste_named_app(serve):
    proc = serve("--paste=development.ini#admin")
    assert get(proc.url + "/")[1] == b"Hello from the admin app (vanilla)\n"


def test_paste_global_conf(serve):
    proc = serve("--paste=development.ini", "--paste-global", "flavour=mint")
    assert get(proc.url + "/")[1] == b"Hello from Paste (mint)\n"


def test_paste_with_chdir_resolves_the_ini_first(serve, project, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    proc = serve("--paste=development.ini", "--chdir", str(elsewhere))
    assert get(proc.url + "/")[1] == b"Hello from Paste (vanilla)\n"


def test_paste_hup_reloads_workers(serve, project):
    proc = serve("--paste=development.ini")
    before = set(proc.workers())
    proc.signal(signal.SIGHUP)
    wait_for(lambda: proc.workers() and not set(proc.workers()) & before, 15, what="new workers")
    assert get(proc.url + "/")[1] == b"Hello from Paste (vanilla)\n"


@pytest.mark.parametrize("arg, code, message", [
    ("--paste=missing.ini", 2, "no such file"),
    ("--paste=development.ini#nope", 1, "nope"),
])
def test_paste_errors_are_one_line(project, arg, code, message):
    out = subprocess.run([sys.executable, "-m", "unicorn_aio", arg, "--check-config"],
                         cwd=project, capture_output=True, text=True, timeout=30,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == code, out.stderr
    errors = [line for line in out.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and message in errors[0], out.stderr
    assert "Traceback" not in out.stderr


def test_no_app_and_no_paste_is_a_usage_error(project):
    out = subprocess.run([sys.executable, "-m", "unicorn_aio"], cwd=project, capture_output=True,
                         text=True, timeout=30, env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 2 and "no application given" in out.stderr


RUN_SERVER = """
import sys
from paste.deploy import loadapp, loadserver
uri = "config:" + sys.argv[1]
app = loadapp(uri)
server = loadserver(uri)   # [server:main] use = egg:unicorn_aio -> unicorn_aio.paste:serve_paste
server(app)
"""


def test_server_runner_entry_point(project):
    """What ``pserve development.ini`` does: loadapp, loadserver, then call the server."""
    port = free_port()
    ini = project / "development.ini"
    ini.write_text(ini.read_text().replace("port = 8000", f"port = {port}"))
    log = open(project / "pserve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-c", RUN_SERVER, str(ini)], cwd=project,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env=dict(os.environ, PYTHONPATH=f"{project}:{ROOT}"))
    try:
        def serving():
            assert proc.poll() is None, (project / "pserve.log").read_text()
            try:
                return len(children(proc.pid)) == 2 and get(f"http://127.0.0.1:{port}/")
            except OSError:
                return False
        served = wait_for(serving, 15, what="pserve-style server")
        assert served[1] == b"Hello from Paste (vanilla)\n"
        # HUP re-reads the [server:main] section (the app itself stays: it was loaded by Paste).
        before = set(children(proc.pid))
        os.kill(proc.pid, signal.SIGHUP)
        wait_for(lambda: len(children(proc.pid)) == 2 and not set(children(proc.pid)) & before,
                 15, what="two new workers after HUP")
        assert get(f"http://127.0.0.1:{port}/")[0] == 200
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(15) == 0
        assert "unicorn_aio" in (project / "pserve.log").read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        log.close()
