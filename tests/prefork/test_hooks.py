"""gunicorn's server hooks in real processes: where each runs, and what one that raises does.

Startup hooks (on_starting, when_ready) and pre_fork stop a start in one line
(tests/config/test_cli.py).  Later, a failing on_reload or nworkers_changed is logged with its
traceback and the reload or scaling goes on; a failing pre_exec cancels that USR2.  Worker-side
hooks that fail are logged and the worker carries on, except post_fork and post_worker_init,
which stop that worker's boot."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from procs import ROOT, free_port, get, wait_for

pytestmark = pytest.mark.timeout(90)
TESTS = os.path.join(ROOT, "tests", "support")


@pytest.fixture
def server(process_server, tmp_path):
    def start(app="master_apps:app", *args, workers=1, env=None, **kw):
        env = {"PYTHONPATH": f"{TESTS}:{ROOT}", **(env or {})}
        return process_server(app, "--workers", str(workers), *args, workers=workers, env=env,
                              cwd=str(tmp_path), **kw)
    return start


def conf_file(tmp_path, text: str) -> str:
    path = tmp_path / "hooks_conf.py"
    path.write_text(text)
    return str(path)


def failed_with_traceback(log: str, hook: str, times: int = 1) -> bool:
    # log.exception: the hook's name, then the traceback down to the user's raise.
    return (log.count(f"{hook} hook failed\nTraceback") >= times
            and f"RuntimeError: {hook} boom" in log)


def test_gunicorn_conf_hooks_run_at_their_points(server, tmp_path):
    hook_log = tmp_path / "hooks.log"
    srv = server("master_apps:hello", "-c", os.path.join(TESTS, "hooks_conf.py"), workers=2,
                 env={"HOOK_LOG": str(hook_log)})
    get(srv.url + "/hooked")
    srv.signal(signal.SIGTTIN)
    wait_for(lambda: len(srv.workers()) == 3, 10, what="3 workers")
    srv.signal(signal.SIGHUP)
    wait_for(lambda: "on_reload" in hook_log.read_text(), 10, what="on_reload")
    srv.wait_log("Reload complete")
    assert srv.stop() == 0
    lines = hook_log.read_text().splitlines()
    names = [line.rsplit(" ", 1)[0] for line in lines]
    master = str(srv.pid)
    for hook in ("on_starting", "when_ready", "on_reload", "on_exit"):
        assert f"{hook} {master}" in lines, hook
    assert "nworkers_changed 2->3" in names
    assert names.count("pre_fork") >= 5 and names.count("post_fork") >= 5
    assert names.count("post_worker_init") >= 5 and names.count("child_exit") >= 5
    assert "worker_exit" in names
    assert "pre_request GET /hooked" in names and "post_request /hooked 200 OK" in names
    # post_fork and post_worker_init run in the workers, not the master
    assert all(line.split()[-1] != master for line in lines if line.startswith("post_"))
    assert names.index("on_starting") < names.index("when_ready") < names.index("pre_fork")



def test_worker_int_and_worker_abort_hooks(server, tmp_path):
    hook_log = tmp_path / "hooks.log"
    conf = tmp_path / "conf.py"
    conf.write_text(
        "import os\n"
        "def _record(name):\n"
        "    open(os.environ['HOOK_LOG'], 'a').write(name + '\\n')\n"
        "def worker_int(worker): _record('worker_int')\n"
        "def worker_abort(worker): _record('worker_abort')\n"
        "def pre_exec(server): _record('pre_exec')\n")
    srv = server("master_apps:app", "-c", str(conf), "--dispatch", "inline", "--timeout", "2",
                 env={"HOOK_LOG": str(hook_log)})
    try:
        get(srv.url + "/hang", timeout=8)
    except OSError:
        pass
    wait_for(lambda: hook_log.exists() and "worker_abort" in hook_log.read_text(), 10,
             what="worker_abort")
    srv.wait_ready(1)
    srv.signal(signal.SIGUSR2)  # pre_exec runs in the master just before the re-exec
    wait_for(lambda: "pre_exec" in hook_log.read_text(), 10, what="pre_exec")
    srv.signal(signal.SIGINT)
    srv.proc.wait(10)
    assert "worker_int" in hook_log.read_text()



def test_a_failing_on_reload_hook_is_logged_and_the_reload_goes_on(server, tmp_path):
    conf = conf_file(tmp_path, "def on_reload(server):\n    raise RuntimeError('on_reload boom')\n")
    srv = server("master_apps:hello", "-c", conf, workers=2)
    old = set(srv.workers())
    srv.signal(signal.SIGHUP)
    srv.wait_log("Reload complete")
    wait_for(lambda: not old & set(srv.workers()), 10, what="the old workers replaced")
    assert failed_with_traceback(srv.log(), "on_reload")
    assert srv.proc.poll() is None and get(srv.url + "/")[0] == 200


def test_a_failing_nworkers_changed_hook_is_logged_and_scaling_goes_on(server, tmp_path):
    # At boot (old_value None) it is a startup hook; this one fails only when scaling.
    conf = conf_file(tmp_path, "def nworkers_changed(server, new, old):\n"
                               "    if old is not None:\n"
                               "        raise RuntimeError('nworkers_changed boom')\n")
    srv = server("master_apps:hello", "-c", conf, workers=1)
    srv.signal(signal.SIGTTIN)
    wait_for(lambda: len(srv.workers()) == 2, 10, what="2 workers")
    srv.signal(signal.SIGTTOU)
    wait_for(lambda: len(srv.workers()) == 1, 10, what="1 worker")
    wait_for(lambda: failed_with_traceback(srv.log(), "nworkers_changed", times=2), 5,
             what="both failures logged")
    assert srv.proc.poll() is None and get(srv.url + "/")[0] == 200


def test_a_failing_pre_exec_hook_cancels_that_usr2(server, tmp_path):
    pidfile = tmp_path / "app.pid"
    conf = conf_file(tmp_path, "def pre_exec(server):\n    raise RuntimeError('pre_exec boom')\n")
    srv = server("master_apps:hello", "-c", conf, "--pid", str(pidfile))
    workers = srv.workers()
    srv.signal(signal.SIGUSR2)
    log = srv.wait_log("USR2 cancelled: the pre_exec hook failed; this master serves on")
    assert failed_with_traceback(log, "pre_exec")
    assert "started new master" not in log
    assert srv.workers() == workers  # no new master among the children
    assert pidfile.read_text().strip() == str(srv.pid)
    assert not os.path.exists(f"{pidfile}.oldbin")
    assert get(srv.url + "/")[0] == 200


def test_failing_worker_hooks_are_logged_and_the_worker_serves_on(server, tmp_path):
    conf = conf_file(tmp_path, "def pre_request(worker, req):\n"
                               "    if req.path == '/pre':\n"
                               "        raise RuntimeError('pre_request boom')\n" + "".join(
        f"def {hook}({args}):\n    raise RuntimeError('{hook} boom')\n"
        for hook, args in (("post_request", "worker, req, environ, resp"),
                           ("worker_exit", "server, worker"), ("child_exit", "server, worker"),
                           ("worker_int", "worker"), ("on_exit", "server"))))
    srv = server("master_apps:hello", "-c", conf, workers=2)
    [first, second] = srv.workers()
    # pre_request runs where the app runs: its failure is that request's 500, as in gunicorn.
    assert _status(srv.url + "/pre")[0] == 500
    log = srv.wait_log("Error handling request GET /pre")
    assert "RuntimeError: pre_request boom" in log
    wait_for(lambda: failed_with_traceback(srv.log(), "post_request"), 5, what="post_request")
    srv.signal(signal.SIGTTOU)  # one worker exits: worker_exit fails in it, child_exit here
    wait_for(lambda: len(srv.workers()) == 1, 10, what="1 worker")
    wait_for(lambda: failed_with_traceback(srv.log(), "worker_exit")
             and failed_with_traceback(srv.log(), "child_exit"), 5, what="exit hooks")
    assert srv.workers()[0] in (first, second)  # the other one serves on
    assert get(srv.url + "/")[0] == 200
    srv.signal(signal.SIGINT)
    assert srv.proc.wait(10) == 0
    log = srv.log()
    assert failed_with_traceback(log, "worker_int") and failed_with_traceback(log, "on_exit")


def _status(url: str) -> tuple[int, bytes]:
    import urllib.error
    try:
        return get(url)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_a_failing_worker_abort_hook_is_logged_and_the_stacks_still_come(server, tmp_path):
    conf = conf_file(tmp_path, "def worker_abort(worker):\n"
                               "    raise RuntimeError('worker_abort boom')\n")
    srv = server("master_apps:app", "-c", conf, "--dispatch", "inline", "--timeout", "2")
    [victim] = srv.workers()
    try:
        get(srv.url + "/hang", timeout=8)
    except OSError:
        pass
    log = srv.wait_log(f"Worker (pid:{victim}) exited after its timeout")
    assert failed_with_traceback(log, "worker_abort")
    assert "master_apps.py" in log  # faulthandler's dump of the hung thread
    srv.wait_ready(1)


def test_a_failing_post_worker_init_hook_stops_the_boot(tmp_path):
    conf = conf_file(tmp_path, "def post_worker_init(worker):\n"
                               "    raise RuntimeError('post_worker_init boom')\n")
    proc = subprocess.run([sys.executable, "-m", "unicorn_aio", "master_apps:hello", "-c", conf,
                           "--bind", f"127.0.0.1:{free_port()}"], cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=f"{TESTS}:{ROOT}"),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 3  # gunicorn's "worker failed to boot": no respawn loop
    # one line, as a failing post_fork (it used to come with its traceback)
    assert ("[ERROR] Worker failed to boot: post_worker_init hook failed: RuntimeError: "
            f"post_worker_init boom ({conf}:2)") in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Shutting down: Worker failed to boot." in proc.stderr


def test_worker_nr_counts_the_requests_answered(server, tmp_path):
    # gunicorn's worker.nr, which hooks read: kept by the server's count, not per request.
    conf = conf_file(tmp_path, "def pre_request(worker, req):\n"
                               "    worker.log.info('nr=%d path=%s', worker.nr, req.path)\n")
    srv = server("master_apps:hello", "-c", conf, workers=1)
    for n in range(3):
        assert get(f"{srv.url}/n{n}")[0] == 200
    log = srv.wait_log("path=/n2")
    counts = [line.split("nr=")[1] for line in log.splitlines() if "nr=" in line]
    # The fixture's readiness probe was the first request.
    assert counts[-3:] == ["1 path=/n0", "2 path=/n1", "3 path=/n2"]
