"""The h2c scenario of bench/run.py counts a server only when it really speaks HTTP/2: with
prior knowledge h2load says "h2c" whatever the server answers, so the harness must look at the
responses, and its readiness probe at the server's SETTINGS."""

from __future__ import annotations

import shutil

import pytest
from procs import ServerProcess

from bench.run import _h2c_ok, h2load

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.skipif(not shutil.which("h2load"), reason="h2load (nghttp2-client) missing")]


def test_an_h2c_server_is_measured_and_an_http1_one_is_an_error():
    h2c = ServerProcess("bench.apps:hello", "--http-protocols", "h2,h1", "--http2-cleartext", "both")
    h1 = ServerProcess("bench.apps:hello")
    try:
        h2c.wait_ready()
        h1.wait_ready()
        assert _h2c_ok(h2c.port, 5)
        assert not _h2c_ok(h1.port, 5)

        res = h2load(h2c.url + "/", 1, conns=2, streams=5)
        assert "error" not in res, res
        assert res["protocol"] == "h2c" and res["succeeded"] == res["requests"] > 0
        assert res["rps"] > 0 and res["mean_ms"] is not None and res["socket_errors"] == res["non2xx"] == 0

        res = h2load(h1.url + "/", 1, conns=1, streams=1)
        assert res["protocol"] == "h2c" and res["succeeded"] == 0  # h2load's word alone proves nothing
        assert res["error"].startswith("no HTTP/2 response")
    finally:
        h2c.stop()
        h1.stop()
