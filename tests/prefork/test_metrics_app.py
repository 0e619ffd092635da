"""The app's own metrics on the master's /metrics: prometheus_client's multiprocess mode, as
docs/metrics.md's recipe sets it up, merged with the server's series; an exited worker is
marked dead (its live gauge goes, its counter stays)."""

from __future__ import annotations

import os
import signal

import pytest
from procs import ROOT, children, free_port, get, wait_for
from scrape import samples, value

pytest.importorskip("prometheus_client")
pytestmark = pytest.mark.timeout(60)
TESTS = os.path.join(ROOT, "tests", "support")


@pytest.mark.parametrize("openmetrics", [False, True])
def test_app_metrics_are_merged_and_dead_workers_marked(process_server, tmp_path, openmetrics):
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    port = free_port()
    srv = process_server("metrics_apps:counted", "--workers", "2", "--threads", "1",
                         "--metrics-bind", f"127.0.0.1:{port}", workers=2, cwd=str(tmp_path),
                         env={"PYTHONPATH": f"{TESTS}:{ROOT}",
                              "PROMETHEUS_MULTIPROC_DIR": str(multiproc)})
    for _ in range(9):
        get(srv.url + "/status/200")
    hits = 10  # and wait_ready's GET

    def found():
        return samples(port, openmetrics=openmetrics)

    wait_for(lambda: value(merged := found(), "app_hits_total") == hits and value(
        merged, "unicorn_aio_requests_total", status="2xx") == hits, 10, what="both counters")
    merged = found()
    alive = value(merged, "app_alive")
    assert alive >= 1
    served = {int(f.rsplit("_", 1)[1].removesuffix(".db"))
              for f in os.listdir(multiproc) if f.startswith("gauge_livesum_")}
    victim = sorted(served & set(children(srv.pid)))[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: not os.path.exists(multiproc / f"gauge_livesum_{victim}.db"), 10,
             what="mark_process_dead on the killed worker's files")
    after = found()
    assert value(after, "app_alive") == alive - 1
    assert value(after, "app_hits_total") == hits  # its counter file stays
