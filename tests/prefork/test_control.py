"""The master's control socket (prefork/control.py) with real processes: where it opens, that it
never takes a live server's socket but replaces a stale one, that workers do not hold it, and
what each command does, through our client library (ctl/protocol.py) and unicorn_aioc."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time

import pytest
from ctlsock import answers, data, remove_dir, send, short_dir, wait_booted
from procs import ROOT, children, get, wait_for

pytestmark = pytest.mark.timeout(60)
ENV = {"PYTHONPATH": f"{ROOT}/tests/support:{ROOT}"}


@pytest.fixture
def sockdir():
    path = short_dir()
    yield path
    remove_dir(path)


def control_lines(log: str) -> list[str]:
    return [ln.split("] ", 2)[2] for ln in log.splitlines() if "Control socket" in ln]


def socket_inode(path: str) -> int:
    """The inode of the listening socket bound at ``path``, from /proc/net/unix."""
    with open("/proc/net/unix") as f:
        for line in f.read().splitlines()[1:]:
            fields = line.split()
            # accepted connections show the path too; the listener has __SO_ACCEPTCON
            if len(fields) >= 8 and fields[7] == path and int(fields[3], 16) & 0x10000:
                return int(fields[6])
    raise AssertionError(f"no socket bound at {path}")


def socket_inodes(pid: int) -> set[int]:
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if m := re.fullmatch(r"socket:\[(\d+)\]", target):
            found.add(int(m.group(1)))
    return found


# -- where it opens, and whose it is -------------------------------------------------------------


@pytest.mark.parametrize("where", ["runtime_dir", "home"])
def test_the_default_socket_opens_there_with_mode_0600_and_goes_at_exit(process_server, sockdir,
                                                                        where):
    if where == "runtime_dir":
        env = {**ENV, "XDG_RUNTIME_DIR": sockdir}
        path = os.path.join(sockdir, "unicorn_aio.ctl")
    else:  # no runtime dir: ~/.unicorn_aio/, created private
        env = {**ENV, "XDG_RUNTIME_DIR": "", "HOME": sockdir}
        path = os.path.join(sockdir, ".unicorn_aio", "unicorn_aio.ctl")
    # --control-socket-mode: the test asks for a control socket (procs.ServerProcess)
    srv = process_server("master_apps:hello", "--control-socket-mode", "0600", env=env)
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    if where == "home":
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert data(path, "show stats")["pid"] == srv.pid
    srv.stop()
    assert not os.path.exists(path)
    assert control_lines(srv.log()) == [f"[INFO] Control socket listening at {path}"]


def test_control_socket_mode_and_no_control_socket(process_server, sockdir):
    path = os.path.join(sockdir, "c.ctl")
    process_server("master_apps:hello", "--control-socket", path, "--control-socket-mode",
                   "0660", env=ENV)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    env = {**ENV, "XDG_RUNTIME_DIR": sockdir}
    srv = process_server("master_apps:hello", "--control-socket-mode", "0600",
                         "--no-control-socket", env=env)
    assert not os.path.exists(os.path.join(sockdir, "unicorn_aio.ctl"))
    assert control_lines(srv.log()) == []


def test_a_relative_path_is_from_the_directory_the_server_starts_in(process_server, sockdir):
    process_server("master_apps:hello", "--control-socket", "app.ctl", env=ENV, cwd=sockdir)
    assert answers(os.path.join(sockdir, "app.ctl"))


def test_a_live_servers_socket_is_left_alone_with_one_warning(process_server, sockdir):
    path = os.path.join(sockdir, "c.ctl")
    first = process_server("master_apps:hello", "--control-socket", path, env=ENV)
    second = process_server("master_apps:hello", "--control-socket", path, env=ENV)
    assert get(second.url + "/")[0] == 200  # it serves, without a control socket
    assert control_lines(second.log()) == [
        f"[WARNING] Control socket {path}: pid {first.pid} answers there (another server?); "
        "running without a control socket"]
    second.stop()
    assert data(path, "show stats")["pid"] == first.pid  # still the first one's
    first.stop()
    assert not os.path.exists(path)


def test_a_stale_socket_is_replaced(process_server, sockdir):
    path = os.path.join(sockdir, "c.ctl")
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(path)  # a file nobody listens on: a server killed before it could remove it
    srv = process_server("master_apps:hello", "--control-socket", path, env=ENV)
    assert data(path, "show stats")["pid"] == srv.pid
    assert control_lines(srv.log()) == [f"[INFO] Control socket listening at {path}"]


def test_a_file_that_is_not_a_socket_is_left_alone(process_server, sockdir):
    path = os.path.join(sockdir, "c.ctl")
    with open(path, "w") as f:
        f.write("precious")
    srv = process_server("master_apps:hello", "--control-socket", path, env=ENV)
    assert control_lines(srv.log()) == [
        f"[WARNING] Control socket {path}: a file that is not a socket is there; running "
        "without a control socket"]
    srv.stop()
    with open(path) as f:
        assert f.read() == "precious"


def test_workers_do_not_hold_the_control_socket(process_server, sockdir):
    # A worker holding it would keep it "answering" after its master died: the next master
    # would refuse the path, and clients would hang on a socket nobody accepts on.
    path = os.path.join(sockdir, "c.ctl")
    srv = process_server("master_apps:hello", "--control-socket", path, "--workers", "2",
                         workers=2, env=ENV)
    with socket.socket(socket.AF_UNIX) as client:  # an open client connection, too
        client.connect(path)
        client.sendall(b"\0\0\0\2{}")
        time.sleep(0.2)
        data(path, "worker add 1")  # a worker forked while a client is connected
        wait_booted(path, 3)  # past the fork handlers: a child just forked still has them
        listening = socket_inode(path)
        assert listening in socket_inodes(srv.pid)
        master_sockets = socket_inodes(srv.pid)
        for pid in srv.workers():
            shared = socket_inodes(pid) & master_sockets
            assert listening not in shared
    # the master dies outright: its workers must not keep the path answering
    os.kill(srv.pid, signal.SIGKILL)
    wait_for(lambda: not answers(path), 5, what="the socket to stop answering")


# -- commands ------------------------------------------------------------------------------------


def test_show_commands(process_server, sockdir):
    path = os.path.join(sockdir, "c.ctl")
    srv = process_server("master_apps:hello", "--control-socket", path, "--workers", "2",
                         workers=2, env=ENV)
    wait_booted(path, 2)
    workers = data(path, "show workers")
    assert workers["count"] == 2
    assert sorted(w["pid"] for w in workers["workers"]) == sorted(srv.workers())
    for w in workers["workers"]:
        assert w["booted"] is True and w["aborted"] is False
        assert 0 <= w["last_heartbeat"] < 5
    assert [w["age"] for w in workers["workers"]] == sorted(w["age"] for w in workers["workers"])
    stats = data(path, "show stats")
    assert (stats["pid"], stats["workers_current"], stats["workers_target"]) == (srv.pid, 2, 2)
    assert stats["workers_spawned"] == 2 and stats["uptime"] >= 0
    config = data(path, "show config")
    assert (config["workers"], config["control_socket"], config["bind"]) == (
        2, path, [f"127.0.0.1:{srv.port}"])
    listeners = data(path, "show listeners")
    assert listeners["count"] == 1
    assert listeners["listeners"][0]["address"] == srv.url
    assert listeners["listeners"][0]["type"] == "tcp"
    everything = data(path, "show all")
    assert everything["arbiter"]["pid"] == srv.pid and everything["web_worker_count"] == 2
    assert data(path, "show dirty")["enabled"] is False
    assert "worker add [N]" in data(path, "help")["commands"]


def test_show_workers_and_stats_report_each_workers_load(process_server, sockdir):
    # What the worker sends with its heartbeats (prefork/stats.py, fleet.py): requests served,
    # in flight, threads, memory, connections and the longest request running.
    path = os.path.join(sockdir, "c.ctl")
    srv = process_server("master_apps:app", "--control-socket", path, "--threads", "2", env=ENV)
    for _ in range(5):
        assert get(srv.url + "/")[0] == 200
    slow = threading.Thread(target=get, args=(srv.url + "/slow?s=3",))
    slow.start()

    def loaded():
        row = data(path, "show workers")["workers"][0]
        longest = row["longest"]  # (not wait_ready's request, caught in flight a beat ago)
        return row if row["in_flight"] == 1 and longest and longest["path"] == "/slow" else None

    row = wait_for(loaded, 10, what="the slow request reported")
    assert row["requests"] >= 5  # wait_ready's request included
    assert (row["threads_busy"], row["threads_total"]) == (1, 2)
    assert row["connections"] >= 1 and row["rss"] > 1024 * 1024
    assert row["longest"]["method"] == "GET"
    assert 0 < row["longest"]["seconds"] < 3
    stats = data(path, "show stats")
    assert stats["in_flight"] == 1 and stats["requests"] == row["requests"]
    slow.join(10)
    wait_for(lambda: data(path, "show workers")["workers"][0]["in_flight"] == 0, 10,
             what="the slow request done")
    out = subprocess.run([sys.executable, "-m", "unicorn_aio.ctl", "-s", path, "show", "workers"],
                         capture_output=True, text=True, timeout=30,
                         env={**os.environ, "PYTHONPATH": ROOT})
    assert out.stdout.splitlines()[1].split()[4] == str(row["requests"] + 1)


def test_worker_add_remove_and_kill(process_server, sockdir):
    path = os.path.join(sockdir, "c.ctl")
    srv = process_server("master_apps:hello", "--control-socket", path, env=ENV)
    assert data(path, "worker add 2") == {"added": 2, "previous": 1, "total": 3}
    wait_for(lambda: len(srv.workers()) == 3, 15, what="3 workers")
    assert data(path, "worker remove 5") == {"removed": 2, "previous": 3, "total": 1}
    wait_for(lambda: len(srv.workers()) == 1, 15, what="1 worker")
    assert data(path, "worker remove") == {"removed": 0, "previous": 1, "total": 1}
    victim = srv.workers()[0]
    assert data(path, "worker kill 1") == {"success": False, "error": "Worker 1 not found"}
    assert data(path, f"worker kill {victim}") == {"success": True, "killed": victim}
    wait_for(lambda: srv.workers() and victim not in srv.workers(), 15, what="a replacement")
    srv.wait_ready()
    srv.stop()
    log = srv.log()
    assert f"Worker exiting (pid: {victim})" in log
    assert "crash" not in log and "ERROR" not in log, log  # asked for: not a crash


FORK_COUNTER = """
import os
import time

def pre_fork(server, worker):  # slow forks: a wide gap between a batch and all 100
    time.sleep(0.01)
    with open(os.environ["FORKS_FILE"], "a") as f:
        f.write("fork\\n")
"""


def test_a_large_worker_add_leaves_the_master_answering_and_an_absurd_one_is_refused(
        process_server, sockdir, tmp_path):
    # The master forks a few workers per turn of its loop: TERM right after "worker add 100"
    # stops it at once, having forked a handful, not the hundred (QA: TERM went unanswered
    # for minutes after a huge add, the master forking all the while).
    path = os.path.join(sockdir, "c.ctl")
    conf, forks = tmp_path / "forks.py", tmp_path / "forks.txt"
    conf.write_text(FORK_COUNTER)
    srv = process_server("master_apps:hello", "--control-socket", path, "-c", str(conf),
                         env={**ENV, "FORKS_FILE": str(forks)})
    answer = send(path, "worker add 99999999999999999999")
    assert answer == {"id": answer["id"], "status": "error", "error": (
        "Invalid argument: worker add takes at most 100 workers at a time, "
        "not 99999999999999999999")}
    assert send(path, "worker remove 101")["error"].startswith("Invalid argument: worker remove")
    assert data(path, "show stats")["workers_target"] == 1
    assert data(path, "worker add 100") == {"added": 100, "previous": 1, "total": 101}
    wait_for(lambda: len(forks.read_text().splitlines()) > 1, 10, 0.005, "the forks begun")
    started = time.monotonic()
    srv.signal(signal.SIGTERM)
    assert srv.proc.wait(10) == 0
    assert time.monotonic() - started < 5
    assert "Handling signal: term" in srv.log()
    assert len(forks.read_text().splitlines()) <= 50, "forked before TERM was handled"


def test_reload_reopen_and_shutdown_take_the_signals_paths(process_server, sockdir, tmp_path):
    path = os.path.join(sockdir, "c.ctl")
    srv = process_server("master_apps:app", "--control-socket", path, env=ENV)
    before = srv.workers()
    assert data(path, "reload") == {"status": "reloading"}
    srv.wait_log("Handling signal: hup")
    wait_for(lambda: srv.workers() and not set(srv.workers()) & set(before), 15,
             what="new workers")
    assert data(path, "reopen") == {"status": "reopening"}
    srv.wait_log("Handling signal: usr1")
    slow = {}
    thread = threading.Thread(target=lambda: slow.update(r=get(srv.url + "/slow?s=1.5")))
    thread.start()
    time.sleep(0.5)
    assert data(path, "shutdown") == {"status": "shutting_down", "mode": "graceful"}
    thread.join(10)
    assert slow["r"][0] == 200  # a graceful stop: the request in flight finishes
    assert srv.proc.wait(15) == 0
    assert "Handling signal: term" in srv.log() and not os.path.exists(path)


def test_shutdown_quick(process_server, sockdir):
    path = os.path.join(sockdir, "c.ctl")
    srv = process_server("master_apps:app", "--control-socket", path, env=ENV)
    assert send(path, "shutdown sideways")["error"] == (
        "Invalid argument: Unknown shutdown mode: sideways (graceful|quick)")
    assert data(path, "shutdown quick") == {"status": "shutting_down", "mode": "quick"}
    assert srv.proc.wait(15) == 0
    assert "Handling signal: int" in srv.log()


def test_the_protocol_errors_ids_and_many_requests_on_one_connection(process_server, sockdir):
    path = os.path.join(sockdir, "c.ctl")
    process_server("master_apps:hello", "--control-socket", path, env=ENV)

    def frame(message: dict) -> bytes:
        body = json.dumps(message).encode()
        return struct.pack(">I", len(body)) + body

    def read(sock) -> dict:
        head = sock.recv(4, socket.MSG_WAITALL)
        return json.loads(sock.recv(struct.unpack(">I", head)[0], socket.MSG_WAITALL))

    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(path)
        # gunicornc sends "worker add 2" whole; a client may pass the count in args instead
        sock.sendall(frame({"id": 7, "command": "worker add", "args": [1]}))
        assert read(sock) == {"id": 7, "status": "ok",
                              "data": {"added": 1, "previous": 1, "total": 2}}
        for request, error in [
            ({"id": 8, "command": "bogus"}, "Invalid argument: Unknown command: bogus"),
            ({"id": 9, "command": ""}, "Empty command"),
            ({"id": 10, "command": "show"},
             "Invalid argument: Missing show target (all|workers|dirty|config|stats|listeners)"),
            ({"id": 11, "command": "show nothing"}, "Invalid argument: Unknown show target: nothing"),
            ({"id": 12, "command": "worker add two"},
             "Invalid argument: invalid literal for int() with base 10: 'two'"),
            ({"id": 13, "command": "worker kill"}, "Invalid argument: Missing PID for worker kill"),
            ({"id": 15, "command": "worker add", "args": "2"}, "Invalid argument: args must be a list"),
            ({"id": 16, "command": "show 'workers"}, "Invalid argument: No closing quotation"),
        ]:
            sock.sendall(frame(request))
            assert read(sock) == {"id": request["id"], "status": "error", "error": error}
        sock.sendall(frame({"id": 14, "command": "dirty add"}))
        assert read(sock)["data"] == {"success": False, "error": "Dirty arbiter not running"}
    with socket.socket(socket.AF_UNIX) as sock:  # not the protocol: hung up on
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(b"\0\0\0\5nope!")
        assert sock.recv(100) == b""
    with socket.socket(socket.AF_UNIX) as sock:  # too large: hung up on before reading it
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(struct.pack(">I", 64 * 1024 * 1024))
        assert sock.recv(100) == b""
    assert data(path, "show stats")["workers_target"] == 2  # and it answers on


@pytest.mark.both_watchers
def test_usr2_the_new_master_takes_over_the_control_socket(process_server, sockdir):
    path = os.path.join(sockdir, "c.ctl")
    srv = process_server("master_apps:hello", "--control-socket", path, env=ENV)
    old_workers = set(srv.workers())
    srv.signal(signal.SIGUSR2)
    new_master = wait_for(lambda: [p for p in srv.workers() if p not in old_workers], 10,
                          what="new master")[0]
    wait_for(lambda: len(children(new_master)) == 1, 15, what="new master's worker")
    wait_for(lambda: answers(path) and data(path, "show stats")["pid"] == new_master, 10,
             what="the new master's control socket")
    srv.signal(signal.SIGQUIT)
    srv.proc.wait(15)
    try:
        assert data(path, "show stats")["pid"] == new_master  # the old one left it in place
        assert "WARNING] Control socket" not in srv.log()
    finally:
        os.kill(new_master, signal.SIGTERM)
        wait_for(lambda: not os.path.exists(path), 15, what="the new master's exit")


def test_usr2_whose_new_master_exits_gives_the_socket_back(process_server, sockdir):
    path = os.path.join(sockdir, "c.ctl")
    srv = process_server("master_apps:hello", "--control-socket", path, env=ENV)
    old_workers = set(srv.workers())
    srv.signal(signal.SIGUSR2)
    new_master = wait_for(lambda: [p for p in srv.workers() if p not in old_workers], 10,
                          what="new master")[0]
    wait_for(lambda: answers(path) and data(path, "show stats")["pid"] == new_master, 15,
             what="the new master's control socket")
    os.kill(new_master, signal.SIGTERM)  # the new master goes; the old one carries on
    srv.wait_log("this master carries on")
    wait_for(lambda: answers(path) and data(path, "show stats")["pid"] == srv.pid, 10,
             what="the old master's control socket again")
    srv.stop()
    assert not os.path.exists(path)


# -- unicorn_aioc ------------------------------------------------------------------------------


def unicorn_aioc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "unicorn_aio.ctl", *args], capture_output=True,
                          text=True, timeout=30, env={**os.environ, "PYTHONPATH": ROOT})


def test_unicorn_aioc_tables_json_and_errors(process_server, sockdir):
    path = os.path.join(sockdir, "c.ctl")
    srv = process_server("master_apps:hello", "--control-socket", path, "--workers", "2",
                         workers=2, env=ENV)
    wait_booted(path, 2)
    out = unicorn_aioc("-s", path, "show", "workers")
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header.split()[:4] == ["PID", "AGE", "STATE", "BEAT"]
    assert {int(r.split()[0]) for r in rows if r[:1].isdigit()} == set(srv.workers())
    assert out.stdout.rstrip().endswith("Total: 2 workers")
    out = unicorn_aioc("-s", path, "--json", "show", "stats")
    assert json.loads(out.stdout)["pid"] == srv.pid
    out = unicorn_aioc("-s", path, "-c", "worker kill 1")  # gunicornc's -c works too
    assert out.returncode == 1 and json.loads(out.stdout)["error"] == "Worker 1 not found"
    out = unicorn_aioc("-s", path, "bogus")
    assert (out.returncode, out.stderr) == (
        1, "unicorn_aioc: error: Invalid argument: Unknown command: bogus\n")
    out = unicorn_aioc("-s", os.path.join(sockdir, "none.ctl"), "help")
    assert out.returncode == 1
    assert out.stderr.startswith(f"unicorn_aioc: error: cannot connect to {sockdir}/none.ctl: ")
    piped = subprocess.run([sys.executable, "-m", "unicorn_aio.ctl", "-s", path],
                           input="show listeners\nquit\n", capture_output=True, text=True,
                           timeout=30, env={**os.environ, "PYTHONPATH": ROOT})
    assert srv.url in piped.stdout and piped.returncode == 0


def test_unicorn_aioc_into_a_closed_pipe_ends_quietly(process_server, sockdir):
    # `unicorn_aioc -j show stats | head -1`: head exits, and we used to end in a traceback.
    path = os.path.join(sockdir, "c.ctl")
    process_server("master_apps:hello", "--control-socket", path, env=ENV)
    for args in (["-j", "show", "stats"], ["show", "workers"]):
        read_end, write_end = os.pipe()
        proc = subprocess.Popen([sys.executable, "-m", "unicorn_aio.ctl", "-s", path, *args],
                                stdout=write_end, stderr=subprocess.PIPE,
                                env={**os.environ, "PYTHONPATH": ROOT})
        os.close(write_end)
        os.close(read_end)  # gone before it writes a byte (it is still starting Python)
        _, err = proc.communicate(timeout=30)
        assert err == b"" and proc.returncode == 1, err.decode()


def test_the_directory_of_any_socket_path_is_created_private(process_server, sockdir):
    # As gunicorn does, and as docs/control.md says (it used to say: the default's only).
    path = os.path.join(sockdir, "new", "dir", "c.ctl")
    process_server("master_apps:hello", "--control-socket", path, env=ENV)
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert data(path, "show stats")["workers_target"] == 1
