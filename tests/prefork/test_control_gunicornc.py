"""gunicorn 27's own ``gunicornc``, unchanged, driven against unicorn_aio's control socket: every
command it has, in its table output and its --json output.  And our unicorn_aioc against a real
gunicorn, the other way round.  The gunicorn comes from the oracle's venv (make oracle,
tests/support/gunicorn_venv.py); without it these skip, saying why."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from ctlsock import data, gunicornc, remove_dir, run_gunicornc, short_dir, wait_booted
from procs import ROOT, free_port, stop_session, wait_for

pytestmark = pytest.mark.timeout(60)
ENV = {"PYTHONPATH": f"{ROOT}/tests/support:{ROOT}"}


@pytest.fixture(scope="module")
def exe():
    path = gunicornc()
    if path is None:
        pytest.skip("NO GUNICORNC: the oracle venv (.gunicorn-venv, make oracle) is missing")
    return path


@pytest.fixture
def sockdir():
    path = short_dir()
    yield path
    remove_dir(path)


@pytest.fixture
def served(process_server, sockdir):
    path = os.path.join(sockdir, "c.ctl")
    srv = process_server("master_apps:app", "--control-socket", path, "--workers", "2",
                         workers=2, env=ENV)
    wait_booted(path, 2)
    return srv, path


def ok(out: subprocess.CompletedProcess) -> str:
    assert (out.returncode, out.stderr) == (0, ""), out
    return out.stdout


def test_show_workers_stats_config_listeners_all_and_help(exe, served):
    srv, path = served
    table = ok(run_gunicornc(exe, path, "show workers")).splitlines()
    assert table[0].split() == ["PID", "AGE", "BOOTED", "LAST_BEAT"]
    rows = [ln.split() for ln in table[2:] if ln[:1].isdigit()]
    assert sorted(int(r[0]) for r in rows) == sorted(srv.workers())
    assert all(r[2] == "yes" and r[3].endswith("s") for r in rows)
    assert table[-1] == "Total: 2 workers"
    as_json = json.loads(ok(run_gunicornc(exe, path, "show workers", "-j")))
    assert as_json["count"] == 2

    stats = ok(run_gunicornc(exe, path, "show stats"))
    assert f"PID:              {srv.pid}" in stats
    assert "Workers current:  2" in stats and "Workers target:   2" in stats

    config = ok(run_gunicornc(exe, path, "show config")).splitlines()
    assert "workers: 2" in config and f"control_socket: {path}" in config
    assert f"bind: 127.0.0.1:{srv.port}" in config

    listeners = ok(run_gunicornc(exe, path, "show listeners"))
    assert srv.url in listeners and "tcp" in listeners and "Total: 1 listeners" in listeners

    everything = ok(run_gunicornc(exe, path, "show all"))
    assert f"PID: {srv.pid}" in everything and "WEB WORKERS (2)" in everything
    assert "(not running)" in everything  # no dirty arbiter

    assert ok(run_gunicornc(exe, path, "show dirty")).strip() == "Dirty arbiter not running"
    helped = ok(run_gunicornc(exe, path, "help"))
    for command in ("show workers", "worker kill <PID>", "shutdown [graceful|quick]", "reopen"):
        assert command in helped


def test_worker_add_remove_kill(exe, served):
    srv, path = served
    assert json.loads(ok(run_gunicornc(exe, path, "worker add 2"))) == {
        "added": 2, "previous": 2, "total": 4}
    wait_for(lambda: len(srv.workers()) == 4, 15, what="4 workers")
    assert json.loads(ok(run_gunicornc(exe, path, "worker remove"))) == {
        "removed": 1, "previous": 4, "total": 3}
    wait_for(lambda: len(srv.workers()) == 3, 15, what="3 workers")
    victim = srv.workers()[0]
    assert json.loads(ok(run_gunicornc(exe, path, f"worker kill {victim}"))) == {
        "success": True, "killed": victim}
    wait_for(lambda: victim not in srv.workers() and len(srv.workers()) == 3, 15,
             what="the killed worker replaced")


def test_reload_reopen_and_graceful_shutdown(exe, served):
    srv, path = served
    before = set(srv.workers())
    assert json.loads(ok(run_gunicornc(exe, path, "reload"))) == {"status": "reloading"}
    wait_for(lambda: len(srv.workers()) == 2 and not set(srv.workers()) & before, 15,
             what="the reloaded workers")
    assert json.loads(ok(run_gunicornc(exe, path, "reopen"))) == {"status": "reopening"}
    srv.wait_log("Handling signal: usr1")
    assert json.loads(ok(run_gunicornc(exe, path, "shutdown graceful"))) == {
        "status": "shutting_down", "mode": "graceful"}
    assert srv.proc.wait(15) == 0
    assert "Handling signal: term" in srv.log() and not os.path.exists(path)


def test_quick_shutdown_and_errors_and_interactive_mode(exe, served):
    srv, path = served
    out = run_gunicornc(exe, path, "worker frobnicate")
    assert (out.returncode, out.stderr) == (
        1, "Error: Invalid argument: Unknown worker action: frobnicate\n")
    out = run_gunicornc(exe, path, "", stdin="show stats\nworker add\nquit\n")
    assert f"PID:              {srv.pid}" in ok(out) and '"total": 3' in out.stdout
    assert json.loads(ok(run_gunicornc(exe, path, "shutdown quick"))) == {
        "status": "shutting_down", "mode": "quick"}
    assert srv.proc.wait(15) == 0
    assert "Handling signal: int" in srv.log()


def test_unicorn_aioc_talks_to_gunicorn(exe, sockdir):
    # The same protocol the other way round: our client against gunicorn 27's master.
    path = os.path.join(sockdir, "g.ctl")
    python = os.path.join(os.path.dirname(exe), "python")
    port = free_port()
    proc = subprocess.Popen([python, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                             "--control-socket", path, "master_apps:hello"],
                            cwd=sockdir, env={**os.environ, **ENV}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists(path), 20, what="gunicorn's control socket")
        wait_for(lambda: data(path, "show workers")["count"] == 1, 20, what="gunicorn's worker")
        out = subprocess.run([sys.executable, "-m", "unicorn_aio.ctl", "-s", path, "show",
                              "workers"], capture_output=True, text=True, timeout=30,
                             env={**os.environ, "PYTHONPATH": ROOT})
        assert out.returncode == 0, out.stderr
        assert out.stdout.rstrip().endswith("Total: 1 workers")
    finally:
        stop_session(proc)
