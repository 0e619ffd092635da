"""--statsd-host: gunicorn's metrics, checked as datagrams on a real UDP (or unix) socket.

Every test binds its own statsd "server" (a datagram socket the test reads), starts a real server
pointed at it, makes real HTTP requests and reads what arrived. The names, types and wire format
asserted here are gunicorn's (gunicorn/instrument/statsd.py and the gauge in its arbiter).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys

import aiohttp
import pytest
from apps import make_app
from procs import ROOT, wait_for
from statsd_receiver import Receiver

from unicorn_aio.config.config import Config
from unicorn_aio.log import logger_for
from unicorn_aio.log.logger import Logger
from unicorn_aio.log.statsd import Statsd

pytestmark = pytest.mark.timeout(60)

DURATION = re.compile(r"^gunicorn\.request\.duration:(\d+\.\d+)\|ms$")


@pytest.fixture
def statsd():
    receiver = Receiver()
    yield receiver
    receiver.close()


async def fetch(url: str, count: int = 1) -> list[int]:
    async with aiohttp.ClientSession() as session:
        statuses = []
        for _ in range(count):
            async with session.get(url) as resp:
                await resp.read()
                statuses.append(resp.status)
        return statuses


def closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- per request ---------------------------------------------------------------------------------


async def test_request_metrics_are_gunicorns_even_without_an_access_log(start_server, statsd):
    server = await start_server(make_app(), statsd_host=statsd.address)
    assert server.cfg.accesslog is None
    base = f"http://127.0.0.1:{server.port}"
    assert await fetch(base + "/", 2) == [200, 200]
    assert await fetch(base + "/status?404") == [404]
    assert await fetch(base + "/slow") == [200]

    lines = await statsd.wait(lambda ls: ls.count("gunicorn.requests:1|c|@1.0") == 4)
    assert statsd.count("gunicorn.request.status.200:1|c|@1.0") == 3
    assert statsd.count("gunicorn.request.status.404:1|c|@1.0") == 1
    durations = [float(m[1]) for m in map(DURATION.match, lines) if m]
    assert len(durations) == 4
    assert max(durations) >= 500  # /slow sleeps 0.5 s: the histogram is in milliseconds
    assert min(durations) < 500
    # Nothing else per request: the three metrics, in gunicorn's order, in one datagram.
    request_datagrams = [d for d in statsd.datagrams if b"gunicorn.requests" in d]
    assert len(request_datagrams) == 4
    assert re.fullmatch(rb"gunicorn\.request\.duration:[\d.]+\|ms\n"
                        rb"gunicorn\.requests:1\|c\|@1\.0\n"
                        rb"gunicorn\.request\.status\.200:1\|c\|@1\.0", request_datagrams[0])


async def test_prefix_gets_one_dot_and_dogstatsd_tags_end_every_metric(start_server, statsd):
    server = await start_server(make_app(), statsd_host=statsd.address, statsd_prefix="shop.web",
                                dogstatsd_tags="env:test,team:web")
    await fetch(f"http://127.0.0.1:{server.port}/")
    lines = await statsd.wait(lambda ls: any("requests" in line for line in ls))
    tags = "|#env:test,team:web"
    assert f"shop.web.gunicorn.requests:1|c|@1.0{tags}" in lines
    assert f"shop.web.gunicorn.request.status.200:1|c|@1.0{tags}" in lines
    assert any(re.fullmatch(r"shop\.web\.gunicorn\.request\.duration:[\d.]+\|ms" + re.escape(tags),
                            line) for line in lines)

    server2 = await start_server(make_app(), statsd_host=statsd.address, statsd_prefix="api.")
    await fetch(f"http://127.0.0.1:{server2.port}/")
    await statsd.wait(lambda ls: "api.gunicorn.requests:1|c|@1.0" in ls)


async def test_access_log_and_metrics_together(start_server, statsd, tmp_path):
    access = tmp_path / "access.log"
    server = await start_server(make_app(), statsd_host=statsd.address, accesslog=str(access))
    await fetch(f"http://127.0.0.1:{server.port}/hello")
    await statsd.wait(lambda ls: "gunicorn.requests:1|c|@1.0" in ls)
    wait_for(lambda: access.exists() and "GET /hello HTTP/1.1" in access.read_text(), 5,
             what="the access line")


async def test_asgi_requests_are_measured(start_server, statsd):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"made"})

    server = await start_server(app, statsd_host=statsd.address, lifespan="off")
    assert await fetch(f"http://127.0.0.1:{server.port}/") == [201]
    await statsd.wait(lambda ls: "gunicorn.request.status.201:1|c|@1.0" in ls)
    assert statsd.count("gunicorn.requests:1|c|@1.0") == 1


async def test_failing_app_counts_an_exception_and_a_500(start_server, statsd, tmp_path):
    def app(environ, start_response):
        raise RuntimeError("boom")

    server = await start_server(app, statsd_host=statsd.address,
                                errorlog=str(tmp_path / "error.log"))
    assert await fetch(f"http://127.0.0.1:{server.port}/") == [500]
    await statsd.wait(lambda ls: "gunicorn.request.status.500:1|c|@1.0" in ls
                      and "gunicorn.log.exception:1|c|@1.0" in ls)
    assert "Error handling request GET /" in (tmp_path / "error.log").read_text()


async def test_unix_datagram_socket(start_server, tmp_path):
    receiver = Receiver(socket.AF_UNIX, str(tmp_path / "statsd.sock"))
    try:
        server = await start_server(make_app(), statsd_host=receiver.address)
        assert server.cfg.statsd_host == str(tmp_path / "statsd.sock")
        await fetch(f"http://127.0.0.1:{server.port}/")
        await receiver.wait(lambda ls: "gunicorn.requests:1|c|@1.0" in ls)
    finally:
        receiver.close()


# -- a statsd server that is not there -------------------------------------------------------------


async def test_nothing_listening_costs_nothing_but_the_datagrams(start_server, tmp_path):
    errors = tmp_path / "error.log"
    server = await start_server(make_app(), statsd_host=f"127.0.0.1:{closed_udp_port()}",
                                errorlog=str(errors))
    assert await fetch(f"http://127.0.0.1:{server.port}/", 50) == [200] * 50
    assert "Traceback" not in errors.read_text()


async def test_missing_unix_socket_warns_once_and_serves(start_server, tmp_path):
    errors = tmp_path / "error.log"
    server = await start_server(make_app(), statsd_host=f"unix:{tmp_path}/nobody.sock",
                                errorlog=str(errors))
    assert await fetch(f"http://127.0.0.1:{server.port}/", 20) == [200] * 20
    text = errors.read_text()
    assert text.count("statsd: cannot send to unix:") == 1, text
    assert "Traceback" not in text


# -- the master ------------------------------------------------------------------------------------


async def test_workers_gauge_from_a_real_master_follows_ttin_and_ttou(process_server, statsd,
                                                                      tmp_path):
    proc = process_server("master_apps:app", "--workers", "2", "--statsd-host", statsd.address,
                          "--statsd-prefix", "svc", workers=2, cwd=str(tmp_path),
                          env={"PYTHONPATH": f"{ROOT}/tests/support:{ROOT}"})
    await statsd.wait(lambda ls: "svc.gunicorn.workers:2|g" in ls, what="the workers gauge")

    # Requests served by forked workers are measured from there.
    assert await fetch(proc.url + "/", 3) == [200] * 3
    await statsd.wait(lambda ls: ls.count("svc.gunicorn.request.status.200:1|c|@1.0") >= 3)

    proc.signal(signal.SIGTTIN)
    await statsd.wait(lambda ls: "svc.gunicorn.workers:3|g" in ls, what="the gauge after TTIN")
    wait_for(lambda: len(proc.workers()) == 3, 10, what="a third worker")
    proc.signal(signal.SIGTTOU)
    await statsd.wait(lambda ls: ls[ls.index("svc.gunicorn.workers:3|g"):].count(
        "svc.gunicorn.workers:2|g") == 1, what="the gauge after TTOU")
    # Sent on changes only, not on every turn of the master's loop.
    assert statsd.count("svc.gunicorn.workers:3|g") == 1

    # HUP sets the logger up again: the new generation's requests are still measured.
    proc.signal(signal.SIGHUP)
    proc.wait_log("Reload complete")
    before = statsd.count("svc.gunicorn.requests:1|c|@1.0")
    assert await fetch(proc.url + "/", 2) == [200, 200]
    await statsd.wait(lambda ls: ls.count("svc.gunicorn.requests:1|c|@1.0") >= before + 2)


# -- settings --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["localhost:abc", "localhost:70000", "unix:", "[::1"])
def test_bad_statsd_host_is_one_line_and_exit_2(tmp_path, value):
    proc = subprocess.run([sys.executable, "-m", "unicorn_aio", "--statsd-host", value, "app:app"],
                          cwd=tmp_path, env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": ROOT},
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"unicorn_aio: error: argument --statsd-host: {value!r} "), line
    assert "HOST:PORT" in line


@pytest.mark.parametrize("value, stored", [
    ("localhost", ("localhost", 8125)),
    ("Metrics.Local:9125", ("metrics.local", 9125)),
    ("[::1]:8125", ("::1", 8125)),
    ("unix:/run/statsd.sock", "/run/statsd.sock"),
    ("unix:///run/statsd.sock", "/run/statsd.sock"),
    ("unix:8125", ("unix", 8125)),  # gunicorn's reading: a host named unix
    (None, None),
])
def test_statsd_host_is_stored_as_gunicorn_stores_it(value, stored):
    assert Config({}, statsd_host=value).statsd_host == stored


def test_statsd_logger_only_when_asked():
    plain = logger_for(Config({}))
    assert type(plain) is Logger and not plain.access_enabled  # no per-request work
    assert type(logger_for(Config({}, statsd_host="localhost"))) is Statsd
    # gunicorn's own class name still means the statsd logger.
    assert Config({}, logger_class="gunicorn.instrument.statsd.Statsd").logger_class is Statsd
    assert Config({}, statsd_host="localhost:8125").warnings == []


def test_log_extras_and_hook_methods_send_metrics(statsd, tmp_path):
    log = logger_for(Config({}, statsd_host=statsd.address, errorlog=str(tmp_path / "e.log"),
                            loglevel="debug"))
    log.info("", extra={"metric": "app.queue", "value": 7, "mtype": "gauge"})
    log.debug("hits", extra={"metric": "app.hits", "value": 2, "mtype": "counter"})
    log.info("took", extra={"metric": "app.took", "value": 1.5, "mtype": "histogram"})
    log.increment("app.busy", 1)
    log.decrement("app.busy", 1)
    log.critical("c")
    log.error("e")
    log.warning("w")
    log.info("plain info is not counted")
    wait_for(lambda: len(statsd.lines) >= 8, 5, what="8 metrics")
    assert statsd.lines == [
        "app.queue:7|g", "app.hits:2|c|@1.0", "app.took:1.5|ms", "app.busy:1|c|@1.0",
        "app.busy:-1|c|@1.0", "gunicorn.log.critical:1|c|@1.0", "gunicorn.log.error:1|c|@1.0",
        "gunicorn.log.warning:1|c|@1.0"]
    text = (tmp_path / "e.log").read_text()
    assert "hits" in text and "took" in text and "plain info" in text
    assert "[INFO] \n" not in text  # a call carrying only a metric writes no line
    log.sock.close()
