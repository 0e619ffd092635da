"""Requests the parser refuses count as gunicorn counts them: an access line and statsd's
request counters where gunicorn writes one (its request line was read: a bad Content-Length,
a bad chunk), none for a line that is not a request line; and every refusal in the worker's
stats (/metrics, ``show stats``).  A real server process, real sockets, a real statsd socket."""

from __future__ import annotations

import os
import re
import socket

import pytest
from ctlsock import data, remove_dir, short_dir
from h2c import ENGINES, H2Client, H2Server, skip_unless_engine
from procs import ROOT, free_port, wait_for
from scrape import samples, value
from statsd_receiver import Receiver

pytestmark = pytest.mark.timeout(60)

TESTS = os.path.join(ROOT, "tests", "support")
REFUSED = [
    (b"GET /bad HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n", b"400"),
    (b"POST /te?q=1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", b"400"),
    (b"PUT /cl HTTP/1.1\r\nContent-Length: 1x\r\nHost: t\r\n\r\n", b"400"),  # its first field
    (b"GET /a b HTTP/1.1\r\nHost: t\r\n\r\n", b"400"),  # not a request line: no access line
    (b"GET /" + b"x" * 5000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", b"414"),  # nor here
    (b"GET /many HTTP/1.1\r\nHost: t\r\n" + b"X-A: b\r\n" * 200 + b"\r\n", b"431"),  # nor here
]


def send(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(raw)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


@pytest.fixture
def sockdir():
    path = short_dir()
    yield path
    remove_dir(path)


def test_refused_requests_are_logged_and_counted(process_server, tmp_path, sockdir):
    statsd = Receiver()
    try:
        access = tmp_path / "access.log"
        ctl = os.path.join(sockdir, "c.ctl")
        metrics = free_port()
        srv = process_server("master_apps:hello", "--access-logfile", str(access),
                             "--statsd-host", statsd.address, "--control-socket", ctl,
                             "--metrics-bind", f"127.0.0.1:{metrics}",
                             env={"PYTHONPATH": f"{TESTS}:{ROOT}"})
        wait_for(lambda: statsd.count("gunicorn.requests:1|c|@1.0") >= 1, 10,
                 what="wait_ready's request counted")
        before = wait_for(lambda: data(ctl, "show stats")["requests"] or None, 10,
                          what="wait_ready's request in the stats")
        served = statsd.count("gunicorn.requests:1|c|@1.0")
        for raw, status in REFUSED:
            assert send(srv.port, raw).startswith(b"HTTP/1.1 " + status), raw[:40]

        lines = wait_for(lambda: (t := access.read_text()).count(" 400 ") >= 3 and t, 10,
                         what="the refused requests' access lines").splitlines()
        refused = [ln for ln in lines if '" 200 ' not in ln]
        assert len(refused) == 3, lines
        assert re.fullmatch(r'127\.0\.0\.1 - - \[.+\] "GET /bad HTTP/1\.1" 400 0 "-" "-"',
                            refused[0]), refused
        assert '"POST /te?q=1 HTTP/1.1" 400 0 "-" "-"' in refused[1], refused
        assert '"PUT /cl HTTP/1.1" 400 0 "-" "-"' in refused[2], refused

        wait_for(lambda: statsd.count("gunicorn.requests:1|c|@1.0") == served + 3, 10,
                 what="statsd's gunicorn.requests for the three")
        assert statsd.count("gunicorn.request.status.400:1|c|@1.0") == 3
        assert statsd.count("gunicorn.request.status.414:1|c|@1.0") == 0
        assert statsd.count("gunicorn.request.status.431:1|c|@1.0") == 0

        # The worker's stats count all six: the master hears them with a heartbeat.
        wait_for(lambda: data(ctl, "show stats")["requests"] == before + 6, 10,
                 what="show stats counting the six")
        found = samples(metrics)
        assert value(found, "unicorn_aio_requests_total", status="4xx") == 6
    finally:
        statsd.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_http2_refused_stream_is_logged_and_counted(engine, tmp_path):
    skip_unless_engine(engine)
    statsd = Receiver()
    access = tmp_path / "access.log"
    srv = H2Server("hints_app:app", "--access-logfile", str(access), "--statsd-host",
                   statsd.address, engine=engine, log_path=str(tmp_path / "h2.log"))
    try:
        srv.wait_ready()
        with H2Client(srv.port) as client:
            status, _, _ = client.request("GET", "/two-types", [("content-type", "a/b"),
                                                                ("content-type", "c/d")])
        assert status == 400
        wait_for(lambda: '"GET /two-types HTTP/2.0" 400 0' in access.read_text(), 10,
                 what="the refused stream's access line")
        wait_for(lambda: statsd.count("gunicorn.request.status.400:1|c|@1.0") == 1, 10,
                 what="statsd's count of it")
    finally:
        srv.stop()
        statsd.close()
