"""Faults a real worker process must survive: no file descriptors left, apps that break PEP
3333, logs that cannot be written.  Each runs ``python -m unicorn_aio`` in its own session."""

from __future__ import annotations

import os
import resource
import socket
import time

import pytest
from hostile_app import BAD
from procs import open_fds, wait_for

pytestmark = pytest.mark.timeout(90)

APP = "hostile_app:app"


@pytest.fixture
def server(process_server):
    return lambda *args, workers=1: process_server(APP, *args, workers=workers)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def request(port: int, path: str = "/", timeout: float = 5.0) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_out_of_file_descriptors_no_busy_loop_and_recovers(server):
    """The worker runs out of fds (RLIMIT_NOFILE lowered to 64 on the live worker) with more
    clients connecting.  While exhausted it must not spin on accept(): EMFILE leaves the
    connection in the kernel queue, so a naive loop sees the listener readable for ever.  Once
    the clients go, it serves again."""
    srv = server("--threads", "2")
    [worker] = srv.workers()
    resource.prlimit(worker, resource.RLIMIT_NOFILE, (64, 64))
    clients = []
    try:
        for _ in range(120):
            clients.append(socket.create_connection(("127.0.0.1", srv.port), timeout=5))
        wait_for(lambda: open_fds(worker) >= 60, 5, what="the worker to run out of fds")
        time.sleep(0.5)
        before = cpu_seconds(worker)
        time.sleep(2.0)
        spent = cpu_seconds(worker) - before
        assert spent < 0.4, f"worker used {spent:.2f}s of CPU in 2s while out of fds"
    finally:
        for c in clients:
            c.close()
    wait_for(lambda: _ok(srv.port), 15, what="the worker to serve again")
    assert srv.workers() == [worker], "the worker died"
    assert request(srv.port, "/pid")[1] == b"%d" % worker


def _ok(port: int) -> bool:
    try:
        return request(port, timeout=2)[0] == 200
    except OSError:
        return False


def test_broken_apps_get_500_and_a_traceback_and_the_worker_serves_on(server):
    srv = server("--threads", "2")
    [worker] = srv.workers()
    for name in BAD:
        status, _ = request(srv.port, f"/bad-{name}")
        assert status == 500, name
        assert request(srv.port)[0] == 200
    assert srv.workers() == [worker]
    log = wait_for(lambda: srv.log().count("Traceback") >= len(BAD) and srv.log(), 10,
                   what="a traceback per broken app")
    assert log.count("Error handling request GET /bad-") == len(BAD), log


def test_access_log_on_a_full_disk_warns_once(server):
    srv = server("--access-logfile", "/dev/full")
    for _ in range(20):
        assert request(srv.port)[0] == 200
    log = wait_for(lambda: "access log" in srv.log() and srv.log(), 10, what="a warning")
    assert log.count("access log") == 1, log
    assert "Traceback" not in log


def test_error_log_on_a_full_disk_keeps_serving(server):
    srv = server("--error-logfile", "/dev/full", "--access-logfile", "-")
    for _ in range(5):
        assert request(srv.port, "/bad-raise")[0] == 500
        assert request(srv.port)[0] == 200
    # wait_ready's request is the sixth.
    log = wait_for(lambda: srv.log().count('"GET / HTTP/1.1" 200') == 6 and srv.log(), 10,
                   what="access lines")
    assert log.count("cannot write the error log to '/dev/full'") == 1, log
    assert "Traceback" not in log
