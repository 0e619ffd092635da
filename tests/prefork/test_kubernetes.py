"""The Kubernetes lifecycle with real processes: /livez and /readyz on --metrics-bind, and
--shutdown-delay, replayed as the kubelet and the endpoints controller play it under load."""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time

import pytest
from procs import ROOT, free_port, wait_for
from scrape import fetch

pytestmark = pytest.mark.timeout(90)
TESTS = os.path.join(ROOT, "tests", "support")
CLIENTS = 4
PROPAGATION = 0.5  # the endpoints controller and kube-proxy: from a 503 seen to no new requests
GRACE = 15.0       # terminationGracePeriodSeconds


@pytest.fixture
def server(process_server, tmp_path):
    def start(*args, workers=2):
        port = free_port()
        srv = process_server("metrics_apps:app", "--workers", str(workers), "--threads", "2",
                             "--metrics-bind", f"127.0.0.1:{port}", "--graceful-timeout", "5",
                             *args, workers=workers, env={"PYTHONPATH": f"{TESTS}:{ROOT}"},
                             cwd=str(tmp_path))
        srv.metrics_port = port
        return srv
    return start


def request(port: int) -> str:
    """One request on a new connection, as a client behind a Service's virtual IP makes it:
    'ok', or what went wrong."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/status/200?s=0.02&size=100")
        resp = conn.getresponse()
        body = resp.read()
        return "ok" if resp.status == 200 and len(body) == 100 else f"{resp.status} {body!r}"
    except OSError as exc:
        return repr(exc)
    finally:
        conn.close()


def readyz(port: int) -> int:
    try:
        return fetch(port, "/readyz", timeout=2)[0]
    except OSError:
        return 0


def kubelet_sequence(srv) -> dict:
    """Clients send requests; TERM (the kubelet, no preStop hook); the endpoints controller
    probes /readyz and, PROPAGATION after its first 503, no new request is sent; the grace
    period runs; KILL if the server is still alive."""
    stop_sending = threading.Event()
    results: list[tuple[float, str]] = []
    seen_503: list[float] = []
    statuses: list[int] = []

    def client() -> None:
        while not stop_sending.is_set():
            outcome = request(srv.port)
            results.append((time.monotonic(), outcome))

    def endpoints_controller() -> None:
        # A probe failing to connect fails as a 503 does (the master gone, without a delay).
        while (status := readyz(srv.metrics_port)) == 200:
            time.sleep(0.05)
        seen_503.append(time.monotonic())
        statuses.append(status)
        time.sleep(PROPAGATION)
        stop_sending.set()

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    assert readyz(srv.metrics_port) == 200
    controller = threading.Thread(target=endpoints_controller)
    controller.start()
    term_at = time.monotonic()
    srv.signal(signal.SIGTERM)
    controller.join(20)
    for t in threads:
        t.join(20)
    try:
        srv.proc.wait(max(0.1, term_at + GRACE - time.monotonic()))
        killed = False
    except Exception:
        os.killpg(srv.pid, signal.SIGKILL)
        killed = True
    failed = [outcome for _, outcome in results if outcome != "ok"]
    return {"term_at": term_at, "seen_503": seen_503[0] if seen_503 else None,
            "results": results, "failed": failed, "killed": killed, "readyz": statuses,
            "exited_at": time.monotonic()}


def test_kubelet_sequence_under_load_fails_no_request(server):
    srv = server("--shutdown-delay", "2")
    run = kubelet_sequence(srv)
    assert run["failed"] == [], run["failed"][:5]
    assert not run["killed"], "still alive at the end of the grace period"
    assert srv.proc.returncode == 0
    # /readyz said 503 at once, and requests went on being served after the TERM.
    assert run["readyz"] == [503] and run["seen_503"] - run["term_at"] < 0.5
    after_term = [t for t, _ in run["results"] if t > run["term_at"] + 0.1]
    assert len(after_term) > 10
    assert len(run["results"]) > 50


def test_without_a_shutdown_delay_the_same_sequence_fails_requests(server):
    # Why --shutdown-delay exists: with none, the listeners close at once while the endpoints
    # controller still sends traffic this way.
    srv = server()
    run = kubelet_sequence(srv)
    assert run["failed"], "expected refused connections between the TERM and the 503's effect"


def test_readyz_turns_503_at_once_and_workers_serve_through_the_delay(server):
    srv = server("--shutdown-delay", "3", workers=1)
    assert fetch(srv.metrics_port, "/livez")[0] == 200
    srv.signal(signal.SIGTERM)
    wait_for(lambda: readyz(srv.metrics_port) == 503, 1, what="/readyz 503")
    start = time.monotonic()
    while time.monotonic() - start < 2:
        assert request(srv.port) == "ok"
        assert fetch(srv.metrics_port, "/livez")[0] == 200
    assert srv.proc.poll() is None
    srv.proc.wait(10)
    assert srv.proc.returncode == 0
    assert "Shutdown delayed 3s" in srv.log()


def test_a_second_term_stops_at_once(server):
    srv = server("--shutdown-delay", "30", workers=1)
    srv.signal(signal.SIGTERM)
    wait_for(lambda: readyz(srv.metrics_port) == 503, 2, what="/readyz 503")
    started = time.monotonic()
    srv.signal(signal.SIGTERM)
    srv.proc.wait(10)
    assert time.monotonic() - started < 8


def test_readyz_waits_for_a_booted_worker(process_server, tmp_path):
    flag = tmp_path / "slow"
    flag.write_text("")
    port = free_port()
    srv = process_server("slow_boot_app:app", "--metrics-bind", f"127.0.0.1:{port}",
                         ready=False, cwd=str(tmp_path),
                         env={"PYTHONPATH": f"{TESTS}:{ROOT}", "SLOW_BOOT_FLAG": str(flag)})
    wait_for(lambda: fetch(port, "/livez", timeout=1)[0] == 200 if readyz(port) else False, 5,
             what="the metrics listener")
    assert readyz(port) == 503  # the worker is still importing the app (1 s)
    wait_for(lambda: readyz(port) == 200, 10, what="/readyz 200")
    srv.wait_ready()
