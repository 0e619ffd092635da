"""--reload: workers are replaced when the app's source (or an extra file) changes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from procs import ROOT, ServerProcess, get, wait_for

pytestmark = pytest.mark.timeout(60)
pytest.importorskip("watchfiles",
                    reason="watchfiles is in the test extra: pip install -e '.[test]'")

APP = '''
import os
GREETING = open(os.path.join(os.path.dirname(__file__), "greeting.txt")).read().strip()

def app(environ, start_response):
    body = ("%s %s" % (VERSION, GREETING)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]

VERSION = "v1"
'''


@pytest.fixture
def project(tmp_path):
    (tmp_path / "reload_app.py").write_text(APP)
    (tmp_path / "greeting.txt").write_text("hello\n")
    return tmp_path


@pytest.fixture
def server(project):
    procs = []

    def start(*args):
        proc = ServerProcess("reload_app:app", "--reload", *args, cwd=str(project),
                             log_path=str(project / "server.log"), env={"PYTHONPATH": ROOT})
        procs.append(proc)
        return proc.wait_ready()

    yield start
    for proc in procs:
        proc.stop()


def body(proc) -> bytes:
    try:
        return get(proc.url + "/", timeout=2)[1]
    except OSError:
        return b""


def settled_on(proc, expected: bytes) -> bool:
    # The old worker serves until its replacement does; then every answer is the new one.
    return all(body(proc) == expected for _ in range(5))


def edit(path, old: str, new: str) -> None:
    time.sleep(0.05)
    path.write_text(path.read_text().replace(old, new))


def test_source_change_restarts_workers_with_new_code(server, project):
    proc = server("--workers", "2")
    assert body(proc) == b"v1 hello"
    before = set(proc.workers())
    edit(project / "reload_app.py", '"v1"', '"v2"')
    wait_for(lambda: settled_on(proc, b"v2 hello"), 15, what="v2 served")
    wait_for(lambda: not set(proc.workers()) & before, 10, what="old workers gone")
    assert "Worker reloading: " + str(project / "reload_app.py") + " modified" in proc.log()


def test_extra_file_change_restarts_workers(server, project):
    proc = server("--reload-extra-file", str(project / "greeting.txt"))
    assert body(proc) == b"v1 hello"
    edit(project / "greeting.txt", "hello", "bonjour")
    wait_for(lambda: settled_on(proc, b"v1 bonjour"), 15, what="new greeting served")


def test_broken_code_keeps_the_old_worker_serving(server, project):
    proc = server()
    edit(project / "reload_app.py", 'VERSION = "v1"', 'VERSION = "v1" +')
    proc.wait_log("SyntaxError", timeout=15)
    assert body(proc) == b"v1 hello"  # the working worker was never stopped
    edit(project / "reload_app.py", 'VERSION = "v1" +', 'VERSION = "v3"')
    wait_for(lambda: settled_on(proc, b"v3 hello"), 20, what="fixed code served")


def test_reload_without_watchfiles_is_one_line(tmp_path):
    shadow = tmp_path / "shadow" / "watchfiles"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'watchfiles'\")\n")
    out = subprocess.run([sys.executable, "-m", "unicorn_aio", "examples.hello:app", "--reload"],
                         capture_output=True, text=True, timeout=30, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=f"{tmp_path / 'shadow'}:{ROOT}"))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "unicorn_aio: error: --reload needs the watchfiles package: "
        "pip install 'unicorn_aio[reload]'"]
