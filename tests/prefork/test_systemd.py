"""systemd: the notify protocol on a real NOTIFY_SOCKET, and socket activation (LISTEN_FDS),
both with systemd-socket-activate and with a wrapper that passes fd 3 the same way."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap

import pytest
from procs import ROOT, ServerProcess, free_port, get, stop_session, wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(15)
    yield path, sock
    sock.close()


@pytest.fixture
def spawned():
    """Popen objects started in their own session; killed by process group after the test."""
    procs = []
    yield procs
    for proc in procs:
        stop_session(proc)


def test_ready_reloading_stopping_in_order(tmp_path, notify_socket):
    path, sock = notify_socket
    proc = ServerProcess("examples.hello:app", "--workers", "2", env={"NOTIFY_SOCKET": path},
                         log_path=str(tmp_path / "server.log"))
    try:
        assert sock.recv(4096) == b"READY=1"  # only once both workers serve
        assert len(proc.workers()) == 2 and get(proc.url + "/")[0] == 200
        proc.signal(signal.SIGHUP)
        assert sock.recv(4096) == b"RELOADING=1"
        assert sock.recv(4096) == b"READY=1\nSTATUS=reloaded"
        proc.signal(signal.SIGTERM)
        assert sock.recv(4096) == b"STOPPING=1"
        assert proc.proc.wait(15) == 0
    finally:
        proc.stop()


def test_abstract_notify_socket(tmp_path):
    name = f"unicorn_aio-test-{os.getpid()}-{free_port()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(15)
    proc = ServerProcess("examples.hello:app", env={"NOTIFY_SOCKET": "@" + name},
                         log_path=str(tmp_path / "server.log"))
    try:
        assert sock.recv(4096) == b"READY=1"
    finally:
        proc.stop()
        sock.close()


def _serves(proc, port: int, log_path):
    def check():
        assert proc.poll() is None, open(log_path).read()
        try:
            return get(f"http://127.0.0.1:{port}/", timeout=2)
        except OSError:
            return False
    return wait_for(check, 15, what=f"server on inherited socket :{port}")


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="systemd-socket-activate not installed (apt-get install systemd)")
def test_systemd_socket_activate(tmp_path, spawned):
    port = free_port()
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        # Non-accept mode: it listens, and on the first connection execs the server (same pid)
        # with LISTEN_FDS=1, LISTEN_PID=<that pid> and the socket as fd 3.
        proc = subprocess.Popen(
            ["systemd-socket-activate", "-l", f"127.0.0.1:{port}", "-E", f"PYTHONPATH={ROOT}",
             sys.executable, "-m", "unicorn_aio", "examples.hello:app", "--workers", "2"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    spawned.append(proc)
    wait_for(lambda: "Listening on" in log_path.read_text(), 10, what="systemd-socket-activate")
    # The first request is the one that activates the service, and it is answered.
    assert get(f"http://127.0.0.1:{port}/", timeout=15) == (200, b"Hello, World!\n")
    assert _serves(proc, port, log_path)[0] == 200
    log = log_path.read_text()
    assert f"Listening at: http://127.0.0.1:{port} ({proc.pid})" in log  # the inherited socket, not :8000
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0


WRAPPER = textwrap.dedent("""
    # What systemd does for a .socket unit: the listener as fd 3, then exec with LISTEN_PID
    # equal to the exec'd process, which is this one.
    import os, socket, sys
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(sys.argv[1])))
    listener.listen(128)
    if listener.fileno() != 3:
        os.dup2(listener.fileno(), 3)
    os.set_inheritable(3, True)
    env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES="http")
    os.execve(sys.executable, [sys.executable, "-m", "unicorn_aio", *sys.argv[2:]], env)
""")


ENV_APP = """
import os

def app(environ, start_response):
    body = b"ok"
    if environ["PATH_INFO"] == "/env":
        body = " ".join(f"{k}={os.environ.get(k)}" for k in ("LISTEN_FDS", "LISTEN_PID")).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
"""


def test_listen_fds_from_an_exec_wrapper(tmp_path, spawned):
    (tmp_path / "env_app.py").write_text(ENV_APP)
    port = free_port()
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", WRAPPER, str(port), "env_app:app", "--bind",
             "127.0.0.1:1", "--workers", "2"],  # --bind is ignored: systemd's socket wins
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env=dict(os.environ, PYTHONPATH=f"{tmp_path}:{ROOT}"))
    spawned.append(proc)
    assert _serves(proc, port, log_path)[0] == 200
    assert f"Listening at: http://127.0.0.1:{port} ({proc.pid})" in log_path.read_text()
    # The variables are the master's only: the app (and its subprocesses) must not see them.
    assert get(f"http://127.0.0.1:{port}/env")[1] == b"LISTEN_FDS=None LISTEN_PID=None"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0


def test_listen_pid_for_another_process_is_ignored(tmp_path, spawned):
    """A LISTEN_PID that is not ours (left in the environment by a parent) must not be used."""
    port = free_port()
    proc = ServerProcess("examples.hello:app", port=port, log_path=str(tmp_path / "server.log"),
                         env={"LISTEN_FDS": "1", "LISTEN_PID": "1"})
    try:
        proc.wait_ready()
        assert f"Listening at: http://127.0.0.1:{port}" in proc.log()
    finally:
        proc.stop()
