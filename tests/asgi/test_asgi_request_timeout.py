"""--asgi-request-timeout: an ASGI request task running past it is cancelled and logged; off by
default.  Real worker processes and sockets."""

from __future__ import annotations

import http.client
import re
import time

import pytest

pytestmark = pytest.mark.timeout(60)

APP = "stuck_apps:asgi_app"


def fetch(port: int, path: str) -> tuple[int, bytes, float]:
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read(), time.monotonic() - start
    finally:
        conn.close()


def test_a_request_past_the_limit_is_cancelled_answered_500_and_logged(process_server):
    srv = process_server(APP, "--asgi-request-timeout", "1")
    status, body, took = fetch(srv.port, "/sleep?s=30")
    assert status == 500 and 0.9 < took < 3.0, (status, took)
    log = srv.wait_log("/sleep cancelled")  # the app saw CancelledError
    assert re.search(r"\[ERROR\] ASGI request timeout: GET /sleep\?s=30 from 127\.0\.0\.1:\d+ "
                     r"ran past --asgi-request-timeout 1s; cancelled", log), log
    assert "in asgi_app" in log and "await asyncio.sleep(seconds)" in log  # where it waited
    assert fetch(srv.port, "/")[0] == 200  # the worker serves on


def test_a_response_streaming_past_the_limit_is_cut(process_server):
    srv = process_server(APP, "--asgi-request-timeout", "1")
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    conn.request("GET", "/stream?s=10")
    resp = conn.getresponse()
    assert resp.status == 200
    start = time.monotonic()
    with pytest.raises(http.client.IncompleteRead) as cut:
        resp.read()  # chunked, ended by the close without its last chunk
    assert time.monotonic() - start < 3.0
    assert cut.value.partial.startswith(b"tick\n")
    conn.close()
    srv.wait_log("/stream cancelled")


def test_off_by_default(process_server):
    srv = process_server(APP, "--timeout", "1")
    status, body, took = fetch(srv.port, "/sleep?s=2.5")
    assert status == 200 and took > 2.4
    assert "ASGI request timeout" not in srv.log()
