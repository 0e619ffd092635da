"""The request watchdog (wsgi/watchdog.py), with real worker processes, sockets and signals.

A request is stuck when its app code has sent nothing for the limit.  Under -k sync with
--threads 1 (the defaults) the limit is --timeout and a stuck request is stopped: a 500 (or the
close, once a head went out), its thread interrupted and replaced, and once the threads that
could not be interrupted number --threads, a fresh worker before the old one goes.  Under the
other classes it is only logged, unless --request-timeout asks for more.
"""

from __future__ import annotations

import http.client
import re
import socket
import threading
import time

import pytest
from procs import get, wait_for

pytestmark = pytest.mark.timeout(60)

APP = "stuck_apps:app"


def fetch(port: int, path: str, timeout: float = 8.0) -> tuple[int, bytes, float]:
    """(status, body, seconds taken) of one request on a fresh connection."""
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read(), time.monotonic() - start
    finally:
        conn.close()


def pid_of(url: str) -> bytes:
    return get(url + "/")[1]


def test_spinning_request_gets_500_and_its_thread_is_interrupted_and_replaced(process_server):
    srv = process_server(APP, "--timeout", "1")
    worker = srv.workers()
    status, body, took = fetch(srv.port, "/spin")
    assert status == 500 and b"request timeout" in body
    assert 0.9 < took < 3.0, took
    # One thread, and it was the stuck one: served now, by the same worker, means replaced.
    assert pid_of(srv.url) == b"pid=%d\n" % worker[0]
    log = srv.wait_log("spin stopped by ThreadAbandoned")  # interrupted, in the app's own code
    [line] = [ln for ln in log.splitlines() if "Request timeout:" in ln]
    assert re.search(r"GET /spin from 127\.0\.0\.1:\d+ sent nothing for 1\.\ds", line), line
    assert "answered 500" in line
    assert 'stuck_apps.py", line' in log and "in _spin" in log  # the stuck thread's stack
    time.sleep(1.5)  # past the interruption's grace: nothing more to say, no retirement
    assert "did not stop" not in srv.log() and "retiring" not in srv.log()
    assert srv.workers() == worker


def test_where_gunicorn_kills_the_worker_its_line_and_worker_abort_hook(process_server, tmp_path):
    # gunicorn's master logs WORKER TIMEOUT at CRITICAL and the worker runs worker_abort
    # (error reporters hang on it); the request stopped here, both still happen, in the worker.
    seen = tmp_path / "aborted"
    conf = tmp_path / "conf.py"
    conf.write_text("import os\n"
                    "def worker_abort(worker):\n"
                    f"    open({str(seen)!r}, 'a').write('%d %s\\n' % (os.getpid(), worker.pid))\n")
    srv = process_server(APP, "--timeout", "1", "-c", str(conf))
    [worker] = srv.workers()
    status, _, _ = fetch(srv.port, "/spin")
    assert status == 500
    log = srv.wait_log("Request timeout:")
    assert f"[CRITICAL] WORKER TIMEOUT (pid:{worker})" in log, log
    assert seen.read_text() == f"{worker} {worker}\n"
    assert srv.workers() == [worker]  # the hook ran; the worker serves on


def test_sleeping_request_retires_the_worker_fresh_one_first(process_server):
    # time.sleep is one C call: the interruption waits for it to return.  With the only thread
    # lost the worker retires; a healthy request on it (a stream, on the replacement thread)
    # finishes before it stops.
    srv = process_server(APP, "--timeout", "1", "--graceful-timeout", "10")
    [old] = srv.workers()
    status, _, took = fetch(srv.port, "/sleep?s=1000")
    assert status == 500 and took < 3.0
    streamed: list[tuple[int, bytes, float]] = []
    stream = threading.Thread(target=lambda: streamed.append(
        fetch(srv.port, "/stream?n=10&gap=0.4", timeout=20)))
    stream.start()
    log = srv.wait_log(f"Worker (pid:{old}) retiring")
    assert "did not stop within 1s" in log and "1 of --threads 1 lost" in log
    wait_for(lambda: old not in srv.workers(), 20, what="the old worker gone")
    stream.join(20)
    assert streamed and streamed[0][0] == 200 and streamed[0][1].endswith(b"done\n")
    [new] = srv.workers()
    assert pid_of(srv.url) == b"pid=%d\n" % new
    log = srv.log()
    # The master started the fresh worker before the old one stopped.
    assert log.index(f"Booting worker with pid: {new}") < log.index(f"Worker exiting (pid: {old})")


def test_graceful_timeout_ends_a_retiring_worker_with_a_request_still_streaming(process_server):
    srv = process_server(APP, "--timeout", "1", "--graceful-timeout", "1")
    [old] = srv.workers()
    assert fetch(srv.port, "/sleep?s=1000")[0] == 500
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=20)
    conn.request("GET", "/stream?n=100&gap=0.2")  # 20 s of a healthy, streaming request
    resp = conn.getresponse()
    assert resp.status == 200
    srv.wait_log(f"Worker (pid:{old}) retiring")
    forked = time.monotonic()
    wait_for(lambda: old not in srv.workers(), 15, what="the old worker gone")
    # The fresh worker's boot, then --graceful-timeout: far short of the stream's 20 s.
    assert time.monotonic() - forked < 1 + 6
    with pytest.raises(http.client.IncompleteRead):
        resp.read()  # cut: chunked, without its last chunk
    conn.close()


def test_blocking_recv_is_lost_and_only_all_threads_lost_retire(process_server):
    # sync with --threads 2 only logs by default (gunicorn turns it into gthread):
    # --request-timeout asks it to act.
    srv = process_server(APP, "--threads", "2", "--timeout", "30", "--request-timeout", "1")
    [old] = srv.workers()
    assert fetch(srv.port, "/recv")[0] == 500
    srv.wait_log("1 of --threads 2 lost")
    # Its replacement serves: two at once, while the lost thread is still blocked.
    results: list[int] = []
    pair = [threading.Thread(target=lambda: results.append(
        fetch(srv.port, "/stream?n=2&gap=0.3")[0])) for _ in range(2)]
    for t in pair:
        t.start()
    for t in pair:
        t.join(10)
    assert results == [200, 200]
    assert "retiring" not in srv.log() and srv.workers() == [old]
    assert fetch(srv.port, "/recv")[0] == 500
    srv.wait_log(f"Worker (pid:{old}) retiring: 2 app thread(s) stuck")
    wait_for(lambda: old not in srv.workers() and srv.workers(), 20, what="a fresh worker")
    assert get(srv.url + "/")[0] == 200


def test_streaming_response_slower_than_timeout_in_total_survives(process_server):
    srv = process_server(APP, "--timeout", "1")
    worker = srv.workers()
    status, body, took = fetch(srv.port, "/stream?n=7&gap=0.5")
    assert status == 200 and body.endswith(b"done\n") and body.count(b"chunk") == 7
    assert took > 3.0
    assert "Request timeout" not in srv.log() and "Request stuck" not in srv.log()
    assert srv.workers() == worker


def test_upload_slower_than_timeout_does_not_count(process_server):
    # The app blocks in wsgi.input.read() for 3 s of a trickled body: the client's time.
    srv = process_server(APP, "--timeout", "1", "--inline-body-max", "0")
    size = 3000
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                  b"Content-Length: %d\r\n\r\n" % size)
        for _ in range(30):
            s.sendall(b"x" * 100)
            time.sleep(0.1)
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    assert raw.startswith(b"HTTP/1.1 200 ") and raw.endswith(b"\r\n\r\n3000\n")
    assert "Request timeout" not in srv.log()


def test_stuck_after_the_head_closes_the_connection(process_server):
    srv = process_server(APP, "--timeout", "1")
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=8)
    conn.request("GET", "/head-then-spin")
    resp = conn.getresponse()
    assert resp.status == 200
    with pytest.raises(http.client.IncompleteRead) as cut:
        resp.read()
    assert cut.value.partial == b"first\n"
    conn.close()
    line = srv.wait_log("connection closed mid-response")
    assert "GET /head-then-spin" in line


@pytest.mark.parametrize("args", [("-k", "gthread", "--threads", "2"), ("--threads", "2")],
                         ids=["gthread", "sync-threads-2"])
def test_where_gunicorn_sets_no_limit_a_stuck_request_is_logged_once(process_server, args):
    srv = process_server(APP, *args, "--timeout", "1")
    status, body, took = fetch(srv.port, "/sleep?s=3")
    assert (status, body) == (200, b"slept\n") and took > 2.9  # left to finish
    log = srv.log()
    assert log.count("Request stuck:") == 1, log
    assert re.search(r"\[WARNING\] Request stuck: GET /sleep\?s=3 from 127\.0\.0\.1:\d+ has "
                     r"sent nothing for 1\.\ds", log), log
    assert "--request-timeout stops such requests" in log
    assert "time.sleep(seconds)" in log  # its stack
    assert "Request timeout" not in log


def test_request_timeout_acts_under_gthread(process_server):
    srv = process_server(APP, "-k", "gthread", "--threads", "2", "--request-timeout", "1")
    status, _, took = fetch(srv.port, "/spin")
    assert status == 500 and took < 3.0
    srv.wait_log("spin stopped by ThreadAbandoned")
    assert "WORKER TIMEOUT" not in srv.log()  # gunicorn sets no limit here: nothing to alert
