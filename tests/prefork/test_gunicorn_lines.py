"""The master's and workers' log lines and exit codes as gunicorn's, with real processes:
each worker says "Booting worker" and "Worker exiting" itself (the line's [pid] is its own),
the master says "Handling signal: hup", and --preload fails with the exit codes the workers
would have."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys

import pytest
from procs import ROOT, get, wait_for

pytestmark = pytest.mark.timeout(60)
TESTS = os.path.join(ROOT, "tests", "support")
ENV = {"PYTHONPATH": f"{TESTS}:{ROOT}"}


def lines_of(log: str, pid: int) -> list[str]:
    """The error-log lines a process wrote, without their time and pid."""
    return [m.group(1) for m in re.finditer(rf"^\[[^]]+\] \[{pid}\] (.*)$", log, re.M)]


def test_each_worker_logs_its_own_booting_and_exiting_lines(process_server, tmp_path):
    srv = process_server("master_apps:hello", "--workers", "2", workers=2, env=ENV,
                         cwd=str(tmp_path))
    workers = srv.workers()
    srv.stop()
    log = srv.log()
    for pid in workers:
        assert [ln for ln in lines_of(log, pid) if "Serving" not in ln] == [
            f"[INFO] Booting worker with pid: {pid}", f"[INFO] Worker exiting (pid: {pid})"], log
    assert not [ln for ln in lines_of(log, srv.pid) if "Booting" in ln or "exiting" in ln], log


def test_the_master_logs_each_signal_it_handles(process_server, tmp_path):
    srv = process_server("master_apps:hello", env=ENV, cwd=str(tmp_path))
    for sig, name in ((signal.SIGHUP, "hup"), (signal.SIGTTIN, "ttin"),
                      (signal.SIGTTOU, "ttou"), (signal.SIGUSR1, "usr1")):
        srv.signal(sig)
        wait_for(lambda: f"[INFO] Handling signal: {name}" in lines_of(srv.log(), srv.pid), 10,
                 what=f"Handling signal: {name}")
    srv.stop()
    handled = [ln for ln in lines_of(srv.log(), srv.pid) if "Handling signal" in ln]
    assert handled == [f"[INFO] Handling signal: {n}" for n in ("hup", "ttin", "ttou", "usr1",
                                                                "term")]


@pytest.mark.parametrize("app, code", [("no_such_module:app", 3), ("master_apps:no_such_app", 4)])
@pytest.mark.parametrize("preload", [False, True])
def test_preload_fails_with_the_exit_code_of_the_workers(tmp_path, app, code, preload):
    # gunicorn's codes: 3 the app's code failed as it was imported, 4 no such app
    args = [sys.executable, "-m", "unicorn_aio", app, "--bind", "127.0.0.1:0"]
    out = subprocess.run(args + (["--preload"] if preload else []), cwd=tmp_path,
                         env={**os.environ, **ENV}, capture_output=True, text=True, timeout=30)
    assert out.returncode == code, out.stderr
    assert "Traceback" not in out.stderr


def test_umask_is_the_unix_sockets_and_the_help_says_so(process_server, tmp_path):
    sock, pidfile = tmp_path / "app.sock", tmp_path / "app.pid"
    srv = process_server("master_apps:hello", "--umask", "077", "--bind", f"unix:{sock}",
                         "--pid", str(pidfile), env=ENV, cwd=str(tmp_path))
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o700
    # the pidfile and the logs follow the umask the server was started with, as in gunicorn
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(pidfile).st_mode) == 0o666 & ~umask
    assert get(srv.url + "/")[0] == 200
    out = subprocess.run([sys.executable, "-m", "unicorn_aio", "--help"], env={**os.environ, **ENV},
                         capture_output=True, text=True, timeout=30, cwd=tmp_path)
    umask_help = " ".join(out.stdout.split("--umask INT", 1)[1].split("\n  -", 1)[0].split())
    assert umask_help.startswith("The umask the unix sockets of --bind are created with")


@pytest.mark.parametrize("app, args, master, worker", [
    ("asgi_apps:longpoll", ["-k", "uvicorn.workers.UvicornWorker"], "Workers: 1 (ASGI)", None),
    ("asgi_apps:longpoll", ["--preload"], "Workers: 1 (ASGI)", None),
    ("asgi_apps:longpoll", [], "Workers: 1 (WSGI or ASGI, detected from the app); WSGI "
     "dispatch: threads, 1 thread(s) per worker", "Serving asgi_apps:longpoll as ASGI"),
    ("master_apps:hello", ["--preload"], "Workers: 1 (WSGI); WSGI dispatch: threads, 1 "
     "thread(s) per worker", None),
    ("master_apps:hello", [], "Workers: 1 (WSGI or ASGI, detected from the app); WSGI "
     "dispatch: threads, 1 thread(s) per worker", "Serving master_apps:hello as WSGI"),
])
def test_the_start_lines_name_the_interface(process_server, tmp_path, app, args, master, worker):
    srv = process_server(app, *args, env=ENV, cwd=str(tmp_path))  # serving: the lines are out
    ours = lines_of(srv.log(), srv.pid)
    assert [ln for ln in ours if "Workers:" in ln] == [f"[INFO] {master}"], srv.log()
    theirs = [ln for pid in srv.workers() for ln in lines_of(srv.log(), pid) if "Serving" in ln]
    assert theirs == ([f"[INFO] {worker} (detected from the app)"] if worker else []), srv.log()


def test_an_invalid_request_is_logged_as_gunicorn_does(process_server, tmp_path):
    # gunicorn 27: "Invalid request from ip=<peer>: <why>" at WARNING, by the worker; the
    # answer's phrase is RFC 9110's ("URI Too Long", not 3.11's "Request-URI Too Long").
    import socket
    srv = process_server("master_apps:hello", "--limit-request-line", "100", env=ENV,
                         cwd=str(tmp_path))
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 414 URI Too Long\r\n"), answer
    (worker,) = srv.workers()
    wait_for(lambda: any(ln.startswith("[WARNING] Invalid request from ip=127.0.0.1: request line")
                         for ln in lines_of(srv.log(), worker)), 10, what="the warning")
