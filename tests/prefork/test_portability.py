"""What the master does where Linux's calls are missing: the child watchers on their own (the
master's tests run under both, see conftest.py), the choice between them, the memory reading a
worker falls back to without /proc, and a backlog metric without TCP_INFO."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys

import pytest
from procs import ROOT, free_port, wait_for

from unicorn_aio.errors import ConfigError
from unicorn_aio.prefork.children import PollWatcher, child_watcher, pidfd_works
from unicorn_aio.prefork.worker import peak_rss_mb, rss_mb
from unicorn_aio.sockets import accept_queue

pytestmark = [pytest.mark.both_loops, pytest.mark.timeout(30)]
KINDS = ["pidfd", "poll"]


def spawn(code: str) -> int:
    # Not subprocess.Popen: it reaps its own children, which is the watcher's job here.
    return os.posix_spawn(sys.executable, [sys.executable, "-c", code], dict(os.environ))


def watcher_for(kind: str):
    if kind == "pidfd" and not pidfd_works():
        pytest.skip("this system has no pidfd_open")
    return child_watcher(asyncio.get_running_loop(), kind)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_watcher_reports_how_each_child_ended(kind):
    watcher = watcher_for(kind)
    assert watcher.name == kind
    loop = asyncio.get_running_loop()
    ended = {name: loop.create_future() for name in ("code 5", "TERM", "clean")}
    watcher.watch(spawn("raise SystemExit(5)"), ended["code 5"].set_result)
    watcher.watch(spawn("import os, signal; os.kill(os.getpid(), signal.SIGTERM)"),
                  ended["TERM"].set_result)
    watcher.watch(spawn("pass"), ended["clean"].set_result)
    await asyncio.wait_for(asyncio.gather(*ended.values()), 10)
    assert {name: f.result() for name, f in ended.items()} == {
        "code 5": 5, "TERM": -signal.SIGTERM, "clean": 0}


async def test_the_poll_watcher_leaves_other_childrens_exits_to_their_owners():
    # A waitpid(-1) sweep would reap a child that a hook started with subprocess, and its
    # owner would read exit status 0 instead of the real one.
    loop = asyncio.get_running_loop()
    watcher = PollWatcher(loop, period=0.01)
    theirs = subprocess.Popen([sys.executable, "-c", "raise SystemExit(9)"])
    ours = spawn("import time; time.sleep(30)")
    ended = loop.create_future()
    watcher.watch(ours, ended.set_result)
    wait_for(lambda: _state(theirs.pid) == "Z", 10, what="the other child to exit")
    await asyncio.sleep(0.2)  # twenty sweeps
    assert theirs.wait(5) == 9
    os.kill(ours, signal.SIGKILL)
    assert await asyncio.wait_for(ended, 5) == -signal.SIGKILL


async def test_a_hint_reaps_before_the_next_poll():
    # A worker's channel closing is the poll watcher's hint: its exit is seen at once, not
    # up to a period later.
    loop = asyncio.get_running_loop()
    watcher = PollWatcher(loop, period=30)
    pid = spawn("pass")
    ended = loop.create_future()
    watcher.watch(pid, ended.set_result)
    wait_for(lambda: _state(pid) == "Z", 10, what="the child to exit")
    watcher.hint()
    assert ended.done() and ended.result() == 0


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


async def test_the_default_watcher_is_pidfd_where_the_kernel_has_it():
    loop = asyncio.get_running_loop()
    assert child_watcher(loop, None).name == ("pidfd" if pidfd_works() else "poll")
    assert child_watcher(loop, "").name == child_watcher(loop, None).name
    with pytest.raises(ConfigError, match="UNICORN_AIO_CHILD_WATCHER must be pidfd or poll, "
                                          "not 'kqueue'"):
        child_watcher(loop, "kqueue")


def test_an_unknown_child_watcher_stops_the_start_in_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "unicorn_aio", "master_apps:hello", "--bind",
         f"127.0.0.1:{free_port()}"], cwd=tmp_path, capture_output=True, text=True, timeout=30,
        env=dict(os.environ, PYTHONPATH=f"{ROOT}/tests/support:{ROOT}",
                 UNICORN_AIO_CHILD_WATCHER="kqueue"))
    assert proc.returncode == 1
    assert "UNICORN_AIO_CHILD_WATCHER must be pidfd or poll, not 'kqueue'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_without_proc_a_worker_reads_its_peak_memory():
    # macOS and the BSDs have no /proc/self/statm.  The peak is never below what is resident
    # (give or take the kernel updating it lazily), so a limit is never missed.
    hoard = bytearray(64 * 1024 * 1024)
    hoard[::4096] = b"x" * len(hoard[::4096])  # touch every page: resident now
    resident = rss_mb()
    assert resident > 64 and peak_rss_mb() > 0.95 * resident


def test_without_tcp_info_the_backlog_is_unknown_not_an_error(monkeypatch):
    monkeypatch.delattr(socket, "TCP_INFO", raising=False)  # as on macOS and the BSDs
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert accept_queue(listener) is None
