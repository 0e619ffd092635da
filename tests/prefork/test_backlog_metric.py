"""--enable-backlog-metric: the master sends gunicorn.backlog, the length of the accept queue.

The queue is filled for real: the only worker is stopped (SIGSTOP, a pid this test's server
forked) and raw clients connect; the kernel completes their handshakes and holds them for an
accept() that does not come. Name, type and period are gunicorn's: "gunicorn.backlog", a
histogram ("|ms" on the wire), sent from the master's loop about once a second.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time

import pytest
from procs import ROOT
from statsd_receiver import Receiver

from unicorn_aio.sockets import accept_queue

pytestmark = pytest.mark.timeout(60)

BACKLOG = re.compile(r"^gunicorn\.backlog:(\d+)\|ms$")
QUEUED = 5
TEST_PATH = {"PYTHONPATH": f"{ROOT}/tests/support:{ROOT}"}


@pytest.fixture
def statsd():
    receiver = Receiver()
    yield receiver
    receiver.close()


def backlog_values(lines: list[str]) -> list[int]:
    return [int(m.group(1)) for m in map(BACKLOG.match, lines) if m]


async def test_backlog_counts_the_connections_waiting_to_be_accepted(process_server, statsd,
                                                                     tmp_path):
    started = time.monotonic()
    proc = process_server("master_apps:app", "--statsd-host", statsd.address,
                          "--enable-backlog-metric", cwd=str(tmp_path), env=TEST_PATH)
    await statsd.wait(lambda ls: 0 in backlog_values(ls), what="an empty queue reported")

    [worker] = proc.workers()
    clients = []
    os.kill(worker, signal.SIGSTOP)
    try:
        for _ in range(QUEUED):
            clients.append(socket.create_connection(("127.0.0.1", proc.port), timeout=5))
        await statsd.wait(lambda ls: max(backlog_values(ls)) >= QUEUED,
                          what=f"a backlog of {QUEUED}")
    finally:
        os.kill(worker, signal.SIGCONT)
    try:
        # Running again, the worker accepts them all: the queue drains, and the metric says so.
        await statsd.wait(lambda ls: backlog_values(ls)[-1] == 0, what="the queue drained")
    finally:
        for client in clients:
            client.close()

    elapsed = time.monotonic() - started
    assert len(backlog_values(statsd.lines)) <= elapsed + 1  # once a second, not once a wakeup
    assert "Worker (pid" not in proc.log()  # stopping it briefly cost no worker


async def test_no_backlog_metric_unless_enabled(process_server, statsd, tmp_path):
    process_server("master_apps:app", "--statsd-host", statsd.address, cwd=str(tmp_path),
                   env=TEST_PATH)
    await statsd.wait(lambda ls: "gunicorn.workers:1|g" in ls, what="the workers gauge")
    time.sleep(1.5)
    assert backlog_values(statsd.lines) == []


def test_enabled_without_statsd_warns_at_startup(process_server, tmp_path):
    proc = process_server("master_apps:app", "--enable-backlog-metric", cwd=str(tmp_path),
                          env=TEST_PATH)
    proc.wait_log("enable_backlog_metric does nothing without statsd_host")


def test_accept_queue_reads_a_listening_tcp_socket(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        assert accept_queue(listener) is None  # bound, not listening (a --reuse-port master)
        listener.listen(16)
        clients = [socket.create_connection(listener.getsockname()) for _ in range(3)]
        try:
            assert accept_queue(listener) == 3
            listener.accept()[0].close()
            assert accept_queue(listener) == 2
            assert accept_queue(clients[0]) is None  # a connected socket has no accept queue
        finally:
            for client in clients:
                client.close()
    with socket.socket(socket.AF_UNIX) as unix:
        unix.bind(str(tmp_path / "s.sock"))
        unix.listen(16)
        assert accept_queue(unix) is None  # Linux gives no count for unix sockets
