"""HTTP/2 with real clients against a real server process, for WSGI and ASGI apps and each
engine: curl (--http2-prior-knowledge, and --http2, which asks for an h2c Upgrade over
http://), httpx with h2, h2load, python-hyper h2 by hand; a 100 MB upload and download in
constant memory.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess

import httpx
import pytest
from h2c import ENGINES, H2Client, H2Server, rss_kb, skip_unless_engine

pytestmark = pytest.mark.timeout(90)

APPS = {"wsgi": "h2_apps:wsgi", "asgi": "h2_apps:asgi"}


@pytest.fixture(scope="module", params=[(i, e) for e in ENGINES for i in APPS],
                ids=lambda p: f"{p[0]}-{p[1]}")
def server(request, tmp_path_factory):
    interface, engine = request.param
    skip_unless_engine(engine)
    log = tmp_path_factory.mktemp("h2") / "server.log"
    proc = H2Server(APPS[interface], "--threads", "8", "--keep-alive", "5", engine=engine,
                    log_path=str(log))
    try:
        proc.wait_ready()
        proc.interface = interface
        yield proc
    finally:
        proc.stop()


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "20", *args], capture_output=True,
                          timeout=30)


def test_curl_prior_knowledge(server):
    out = curl("--http2-prior-knowledge", "-D", "-", "-b", "a=1; b=2",
               f"{server.url}/echo?x=1")
    head, _, body = out.stdout.partition(b"\r\n\r\n")
    assert out.returncode == 0, out.stderr
    assert head.startswith(b"HTTP/2 200"), head
    names = [line.split(b":")[0] for line in head.split(b"\r\n")[1:]]
    # RFC 9113 8.2.2: no connection-specific field, even one the app set; all lower-case
    assert b"connection" not in names and all(n == n.lower() for n in names), names
    assert b"x-test" in names and b"content-length" in names and b"date" in names
    info = json.loads(body)
    del info["port"]
    if server.interface == "asgi":
        assert info.pop("http_version") == "2"  # ASGI's http_version
    assert info == {"protocol": "HTTP/2.0", "method": "GET", "path": "/echo", "query": "x=1",
                    "length": 0, "host": f"127.0.0.1:{server.port}", "cookie": "a=1; b=2",
                    "scheme": "http"}


@pytest.mark.parametrize("data", [None, "hello=world"], ids=["get", "post-body"])
def test_curl_h2c_upgrade(server, data):
    # curl --http2 over http:// asks for h2c with an Upgrade (and HTTP2-Settings); with -d the
    # body rides on the HTTP/1.1 request, which becomes stream 1.
    args = ["--http2", "-w", "\n%{http_version}"] + (["-d", data] if data else [])
    out = curl(*args, f"{server.url}/echo")
    assert out.returncode == 0, out.stderr
    body, _, version = out.stdout.rpartition(b"\n")
    assert version == b"2"
    info = json.loads(body)
    assert info["protocol"] == "HTTP/2.0"
    assert (info["method"], info["length"]) == (("POST", len(data)) if data else ("GET", 0))


def test_http1_still_served_on_the_same_port(server):
    out = curl("--http1.1", "-w", "\n%{http_version}", f"{server.url}/echo")
    body, _, version = out.stdout.rpartition(b"\n")
    assert version == b"1.1" and json.loads(body)["protocol"] == "HTTP/1.1"


def test_httpx_many_requests_on_one_connection(server):
    with httpx.Client(http1=False, http2=True, timeout=20) as client:
        for i in range(30):
            resp = client.post(f"{server.url}/echo", content=b"z" * i)
            assert resp.http_version == "HTTP/2"
            assert json.loads(resp.content)["length"] == i
        resp = client.head(f"{server.url}/download?n=1000")
        assert resp.status_code == 200 and resp.content == b""
        assert resp.headers["content-length"] == "1000"


def test_streams_run_at_once_on_one_connection(server):
    # Ten streams sleeping 1 s each, opened together on one connection: answered together.
    with H2Client(server.port) as client:
        sids = [client.send_request("GET", "/sleep?s=1") for _ in range(10)]
        import time
        start = time.monotonic()
        bodies = [client.response(sid)[2] for sid in sids]
        assert bodies == [b"slept"] * 10
        assert time.monotonic() - start < 5


def test_a_failing_app_resets_its_stream_only(server):
    with H2Client(server.port) as client:
        with pytest.raises(ConnectionError, match="reset"):
            client.request("GET", "/fail")
        assert client.request("GET", "/")[2] == b"ok"  # the connection lives on


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load not installed "
                    "(make systools: nghttp2-client)")
def test_h2load(server):
    out = subprocess.run(["h2load", "-n", "5000", "-c", "4", "-m", "10", f"{server.url}/"],
                         capture_output=True, text=True, timeout=80)
    assert out.returncode == 0, out.stdout + out.stderr
    line = re.search(r"requests: .*", out.stdout).group(0)
    assert "5000 succeeded, 0 failed, 0 errored, 0 timeout" in line, out.stdout


def test_upload_and_download_100mb_in_constant_memory(server):
    size = 100 * 1024 * 1024
    worker = server.workers()[0]
    before = rss_kb(worker)
    with H2Client(server.port, timeout=60) as client:
        block = bytes(range(256)) * 4096  # 1 MiB
        sid = client.send_request("POST", "/upload", end=False)
        digest = hashlib.sha256()
        for _ in range(100):
            client.send_body(sid, block, end=False)
            digest.update(block)
        client.send_body(sid, b"", end=True)
        status, _, body = client.response(sid)
        assert status == 200
        assert json.loads(body) == {"length": size, "sha256": digest.hexdigest()}
        peak = rss_kb(worker)
        status, headers, body = client.request("GET", f"/download?n={size}")
        assert (status, len(body), headers["content-length"]) == (200, size, str(size))
        peak = max(peak, rss_kb(worker))
    # Flow control both ways: the worker never holds more than a few windows of either.
    assert peak - before < 40 * 1024, (before, peak)
