"""Master features beyond the signals: busy-aware accept, reuse-port, memory limit, daemon
mode and process titles - each with real processes (hooks: test_hooks.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from procs import ROOT, children, free_port, get, stop_session, wait_for

pytestmark = pytest.mark.timeout(90)
TESTS = os.path.join(ROOT, "tests", "support")


@pytest.fixture
def server(process_server, tmp_path):
    def start(app="master_apps:app", *args, workers=1, env=None, **kw):
        env = {"PYTHONPATH": f"{TESTS}:{ROOT}", **(env or {})}
        return process_server(app, "--workers", str(workers), *args, workers=workers, env=env,
                              cwd=str(tmp_path), **kw)
    return start


def test_saturated_worker_stops_accepting_so_idle_sibling_serves(server):
    srv = server("master_apps:app", "--threads", "1", workers=2)
    slow = threading.Thread(target=get, args=(srv.url + "/slow?s=4",), kwargs={"timeout": 15})
    slow.start()
    time.sleep(0.5)  # one worker's only thread is now busy for 4 s
    started = time.monotonic()
    for _ in range(20):
        assert get(srv.url + "/", timeout=10)[0] == 200
    assert time.monotonic() - started < 3, "a request waited behind the slow one"
    slow.join(15)


def test_worker_freezes_what_it_booted_with(server):
    # The app and the server live as long as the worker: full collections must not walk them.
    srv = server("master_apps:frozen", workers=1)
    status, body = get(srv.url + "/")
    assert status == 200 and int(body) > 10_000


def test_reuse_port_gives_each_worker_its_own_socket(server):
    srv = server("master_apps:hello", "--reuse-port", workers=2)
    pids = {get(srv.url + "/")[1] for _ in range(60)}
    assert len(pids) == 2  # the kernel spreads connections over both workers' sockets
    for pid in srv.workers():
        listening = subprocess.run(["ss", "-Hltnp", f"sport = :{srv.port}"], capture_output=True,
                                   text=True).stdout
        assert f"pid={pid}," in listening


def test_max_worker_memory_retires_a_leaky_worker(server):
    srv = server("master_apps:grow", "--max-worker-memory", "120", workers=1)
    first = srv.workers()[0]
    for _ in range(8):
        get(srv.url + "/")
    wait_for(lambda: first not in srv.workers() and srv.workers(), 15, what="replacement")
    assert "is over --max-worker-memory 120 MB" in srv.log()
    assert get(srv.url + "/")[0] == 200


def test_process_titles(server):
    srv = server("master_apps:hello", workers=1)
    with open(f"/proc/{srv.pid}/comm") as f:
        assert f.read().strip() == "unicorn_aio:mas"
    with open(f"/proc/{srv.workers()[0]}/comm") as f:
        assert f.read().strip() == "unicorn_aio:wor"


@pytest.mark.skipif(not hasattr(os, "sched_getscheduler"), reason="Linux scheduling policies")
@pytest.mark.parametrize("dispatch, loop_policy", [("threads", "SCHED_BATCH"),
                                                   ("inline", "SCHED_OTHER")])
def test_a_thread_pool_workers_loop_thread_runs_under_batch_scheduling(server, dispatch,
                                                                        loop_policy):
    # Woken by a socket or a finished response, the loop thread must not preempt the app
    # thread that holds the GIL; with no app threads (inline) it keeps normal scheduling.
    srv = server("master_apps:policies", "--dispatch", dispatch, workers=1)
    status, body = get(srv.url + "/")
    assert status == 200
    fields = dict(part.split("=") for part in body.decode().split())
    assert int(fields["loop"]) == getattr(os, loop_policy)
    assert int(fields["app"]) == getattr(os, loop_policy)  # inline: the app runs on the loop


@pytest.mark.both_watchers
def test_daemon_detaches_and_writes_pidfile(tmp_path):
    pidfile = tmp_path / "daemon.pid"
    port = free_port()
    proc = subprocess.run(
        [sys.executable, "-m", "unicorn_aio", "master_apps:hello", "--daemon", "--pid",
         str(pidfile), "--bind", f"127.0.0.1:{port}", "--error-logfile", str(tmp_path / "err")],
        cwd=tmp_path, env=dict(os.environ, PYTHONPATH=f"{TESTS}:{ROOT}"), timeout=30)
    assert proc.returncode == 0  # the foreground process returns at once
    pid = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 10,
                       what="pidfile"))
    try:
        wait_for(lambda: _serves(port), 10, what="daemon serving")
        # WINCH stops a daemon's workers gracefully; TTIN brings one back.
        os.kill(pid, signal.SIGWINCH)
        wait_for(lambda: not children(pid), 15, what="workers stopped by WINCH")
        assert os.path.exists(f"/proc/{pid}")
        os.kill(pid, signal.SIGTTIN)
        wait_for(lambda: _serves(port), 10, what="serving again after TTIN")
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 15, what="daemon exit")
    assert not pidfile.exists()


@pytest.mark.parametrize("app, args, code, message", [
    ("master_apps:hello", ("--bind", "127.0.0.1:{busy}"), 1, "address already in use"),
    ("no_such_module:app", (), 3, "Worker failed to boot. The reason is in the error log"),
])
def test_a_daemon_that_cannot_start_says_so_in_the_foreground(tmp_path, app, args, code,
                                                              message):
    # gunicorn's foreground process exits 0 at once whatever happens next; ours waits for the
    # first workers to serve, or for the reason they cannot.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        args = [a.format(busy=busy.getsockname()[1]) for a in args]
        proc = subprocess.run(
            [sys.executable, "-m", "unicorn_aio", app, "--daemon", *args,
             *(() if args else ("--bind", f"127.0.0.1:{free_port()}")),
             "--error-logfile", str(tmp_path / "err")],
            cwd=tmp_path, env=dict(os.environ, PYTHONPATH=f"{TESTS}:{ROOT}"),
            capture_output=True, text=True, timeout=30)
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.startswith("unicorn_aio: error: ") and message in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_a_port_in_use_is_tried_again_as_gunicorn_does(process_server, tmp_path):
    # gunicorn tries an address in use five times, a second apart: a server restarted while
    # the old one still holds the port starts once it lets go.  Ours used to exit at once.
    from unicorn_aio.sockets import BIND_RETRY_DELAY, BIND_TRIES

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    env = {"PYTHONPATH": f"{TESTS}:{ROOT}"}
    try:
        srv = process_server("master_apps:hello", "--log-level", "debug", port=port, env=env,
                             cwd=str(tmp_path), ready=False)
        srv.wait_log(f"Connection in use: ('127.0.0.1', {port})")
        srv.wait_log("Retrying in 1 second.")
    finally:
        busy.close()  # the old server lets go: the next try takes the port
    srv.wait_ready()
    assert srv.log().count("Connection in use") < BIND_TRIES

    with socket.socket() as busy:  # never let go: five tries, then the one-line error
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        srv = process_server("master_apps:hello", port=port, env=env, cwd=str(tmp_path),
                             ready=False)
        assert srv.proc.wait(30) == 1
        took = time.monotonic() - started
    log = srv.log()
    assert log.count(f"[ERROR] Connection in use: ('127.0.0.1', {port})") == BIND_TRIES
    assert (BIND_TRIES - 1) * BIND_RETRY_DELAY <= took < BIND_TRIES * BIND_RETRY_DELAY + 10
    assert (f"[ERROR] cannot listen on 127.0.0.1:{port}: address already in use "
            f"({BIND_TRIES} tries, 1 s apart)") in log, log
    assert "Traceback" not in log and "Retrying" not in log  # at debug level only, as gunicorn


@pytest.mark.parametrize("app, message", [
    ("broken:app", "Worker failed to boot: app 'broken:app': importing broken failed: "
                   "ValueError: deep ({cwd}/helper.py:2)"),
    ("broken:", "Worker failed to load the app: app 'broken:': cannot parse '' (nothing after "
                "':'); expected module:callable, e.g. broken:app"),
])
def test_an_app_that_cannot_load_is_one_line_and_debug_adds_its_traceback(tmp_path, app,
                                                                           message):
    # gunicorn shows the whole traceback at --log-level debug; we showed the innermost frame.
    (tmp_path / "broken.py").write_text("import helper\n\napplication = app = None\n")
    (tmp_path / "helper.py").write_text("def f():\n    raise ValueError('deep')\n\n\nf()\n")
    message = message.format(cwd=tmp_path)
    for level in ("info", "debug"):
        proc = subprocess.run(
            [sys.executable, "-m", "unicorn_aio", app, "--bind", f"127.0.0.1:{free_port()}",
             "--no-control-socket", "--log-level", level], cwd=tmp_path,
            env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, timeout=30)
        assert proc.returncode == (3 if app == "broken:app" else 4), proc.stderr
        assert proc.stderr.count(message) == 1, proc.stderr
        traceback = "Traceback" in proc.stderr
        assert traceback == (level == "debug" and app == "broken:app"), proc.stderr
        if traceback:  # the frames between the import and the raise: the app's own
            assert 'broken.py", line 1' in proc.stderr and 'helper.py", line 5' in proc.stderr


def _serves(port: int) -> bool:
    try:
        return get(f"http://127.0.0.1:{port}/")[0] == 200
    except OSError:
        return False


def _fields(body: bytes) -> dict:
    return dict(item.split("=") for item in body.decode().split())


def test_preload_imports_the_app_once_in_the_master(server):
    srv = server("master_apps:whoami", "--preload", workers=2)
    seen = {_fields(get(srv.url + "/")[1])["imported_by"] for _ in range(10)}
    assert seen == {str(srv.pid)}
    without = server("master_apps:whoami", workers=1)
    fields = _fields(get(without.url + "/")[1])
    assert fields["imported_by"] == fields["pid"] != str(without.pid)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching user needs root")
def test_user_and_group_apply_to_workers_only(server):
    import pwd
    nobody = pwd.getpwnam("nobody")
    srv = server("master_apps:whoami", "--user", "nobody", "--group", str(nobody.pw_gid))
    assert _fields(get(srv.url + "/")[1])["uid"] == str(nobody.pw_uid)
    with open(f"/proc/{srv.pid}/status") as f:
        assert "Uid:\t0\t" in f.read()  # the master keeps its privileges to bind and reap


def test_logger_class_replaces_the_logger(server):
    srv = server("master_apps:hello", "--logger-class", "custom_logger.TaggingLogger",
                 "--access-logfile", "/dev/null")
    get(srv.url + "/tagged")
    srv.wait_log("custom access /tagged 200 OK")


def test_bad_logger_class_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "unicorn_aio", "master_apps:hello",
                           "--logger-class", "master_apps.hello"], cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=f"{TESTS}:{ROOT}"),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "not a subclass of unicorn_aio.log.Logger" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_second_master_with_the_same_pidfile_refuses_to_start(server, tmp_path):
    pidfile = tmp_path / "app.pid"
    first = server("master_apps:hello", "--pid", str(pidfile))
    proc = subprocess.run([sys.executable, "-m", "unicorn_aio", "master_apps:hello", "--pid",
                           str(pidfile), "--bind", f"127.0.0.1:{free_port()}"],
                          cwd=tmp_path, env=dict(os.environ, PYTHONPATH=f"{TESTS}:{ROOT}"),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert f"already running on pid {first.pid}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert pidfile.read_text().strip() == str(first.pid)  # the first one's file, untouched


@pytest.mark.both_watchers
def test_int_during_a_graceful_stop_makes_it_quick(server):
    srv = server("master_apps:app", "--graceful-timeout", "30", "--threads", "2")
    def slow_request() -> None:
        try:
            get(srv.url + "/slow?s=20", timeout=30)
        except OSError:
            pass  # cut by the quick stop: that is the point

    slow = threading.Thread(target=slow_request, daemon=True)
    slow.start()
    time.sleep(0.5)
    srv.signal(signal.SIGTERM)  # graceful: would wait for the 20 s request
    time.sleep(0.5)
    started = time.monotonic()
    srv.signal(signal.SIGINT)
    srv.proc.wait(10)
    assert time.monotonic() - started < 5
    assert "Quick shutdown requested" in srv.log()


def test_hup_applies_the_reloaded_raw_env(server, tmp_path):
    conf = tmp_path / "env_conf.py"
    conf.write_text('raw_env = ["CONFV=before"]\n')
    srv = server("master_apps:env_value", "-c", str(conf))
    assert get(srv.url + "/")[1] == b"before"
    old = set(srv.workers())
    conf.write_text('raw_env = ["CONFV=after"]\n')
    srv.signal(signal.SIGHUP)
    wait_for(lambda: srv.workers() and not old & set(srv.workers()), 15, what="new workers")
    assert get(srv.url + "/")[1] == b"after"


def test_a_stopping_master_leaves_the_socket_file_of_its_successor(tmp_path):
    # Deploys that start the new server while the old one drains: the old one must remove
    # only the socket file it bound, not the new server's under the same name.
    path = tmp_path / "app.sock"
    env = dict(os.environ, PYTHONPATH=f"{TESTS}:{ROOT}")

    def start(name: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "unicorn_aio", "master_apps:hello", "--bind", f"unix:{path}",
             "--keep-alive", "5", "--error-logfile", str(tmp_path / f"{name}.log")],
            cwd=tmp_path, env=env, start_new_session=True)

    def serves() -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(str(path))
                s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                return s.recv(100).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    old = start("old")
    new = None
    try:
        wait_for(serves, 15, what="the old server")
        idle = socket.socket(socket.AF_UNIX)  # keeps the old one draining for a while
        idle.connect(str(path))
        idle.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        idle.recv(1000)
        old.send_signal(signal.SIGTERM)
        wait_for(lambda: not serves(), 10, what="the old server to stop accepting")
        new = start("new")
        wait_for(serves, 15, what="the new server")
        old.wait(15)
        idle.close()
        assert serves(), "the old server removed the new one's socket file"
    finally:
        for proc in (old, new):
            if proc is not None:
                stop_session(proc)
