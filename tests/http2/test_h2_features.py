"""What HTTP/2 streams carry beyond a plain request: response trailers (ASGI's
http.response.trailers), ASGI pathsend, request trailers, HEAD, the access log - for both
engines.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time

import h2.events
import pytest
from h2c import ENGINES, H2Client, H2Server, skip_unless_engine

from unicorn_aio.http.body import HIGH_WATER

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module", params=ENGINES)
def servers(request, tmp_path_factory):
    skip_unless_engine(request.param)
    d = tmp_path_factory.mktemp("h2f")
    procs = {}
    try:
        for interface in ("asgi", "wsgi"):
            procs[interface] = H2Server(f"h2_apps:{interface}", "--access-logfile", "-",
                                        engine=request.param,
                                        log_path=str(d / f"{interface}.log")).wait_ready()
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()


def test_asgi_response_trailers(servers):
    server = servers["asgi"]
    with H2Client(server.port) as client:
        extensions = json.loads(client.request("GET", "/extensions")[2])
        assert "http.response.trailers" in extensions and "http.response.pathsend" in extensions
        status, headers, body = client.request("GET", "/trailers")
    assert (status, body) == (200, b"with trailers")
    # The trailer section, its names lower-case, after the body (RFC 9113 8.1).
    assert (headers["x-checksum"], headers["x-count"]) == ("abc", "2")


def test_asgi_pathsend(servers, tmp_path):
    path = tmp_path / "blob"
    data = os.urandom(3 * 1024 * 1024 + 17)
    path.write_bytes(data)
    with H2Client(servers["asgi"].port) as client:
        status, headers, body = client.request("GET", f"/file?path={path}")
    assert (status, headers["content-length"]) == (200, str(len(data)))
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()


@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
def test_request_trailers_end_the_body(servers, interface):
    with H2Client(servers[interface].port) as client:
        sid = client.send_request("POST", "/upload", end=False)
        client.send_body(sid, b"a" * 100000, end=False)
        client.conn.send_headers(sid, [(b"x-digest", b"whatever")], end_stream=True)
        client.flush()
        status, _, body = client.response(sid)
    assert status == 200 and json.loads(body)["length"] == 100000


@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
def test_access_log_says_http2(servers, interface):
    server = servers[interface]
    with H2Client(server.port) as client:
        assert client.request("GET", "/echo?logged=1")[0] == 200
    line = server.wait_log('"GET /echo?logged=1 HTTP/2.0" 200')
    assert line


@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
def test_expect_100_continue(servers, interface):
    # RFC 9110 10.1.1 in HTTP/2: the client waits for an interim 100 before the body, which
    # comes when the app first reads it.
    with H2Client(servers[interface].port) as client:
        sid = client.send_request("POST", "/upload", [("expect", "100-continue")], end=False)
        while not any(isinstance(ev, h2.events.InformationalResponseReceived)
                      for ev in client.events):
            client.receive()
            assert not client.closed
        client.send_body(sid, b"b" * 70000)
        status, _, body = client.response(sid)
    assert status == 200 and json.loads(body)["length"] == 70000


@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
def test_too_many_header_fields_is_431_on_the_stream(servers, interface):
    # --limit-request-fields (100) holds over HTTP/2 as over HTTP/1.1; the connection lives on.
    with H2Client(servers[interface].port) as client:
        fields = [(f"x-field-{i}", "v") for i in range(120)]
        status, _, body = client.request("GET", "/echo", fields)
        assert status == 431 and b"header fields" in body
        assert client.request("GET", "/")[2] == b"ok"


@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
def test_an_app_error_before_the_head_is_a_500(servers, interface):
    with H2Client(servers[interface].port) as client:
        status, headers, _ = client.request("GET", "/raise")
        assert status == 500 and "connection" not in headers
        assert client.request("GET", "/")[2] == b"ok"


@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
def test_a_client_gone_mid_download_frees_the_app(servers, interface):
    server = servers[interface]
    for _ in range(3):  # more than the WSGI threads (1 by default): each must be let go
        with H2Client(server.port) as client:
            sid = client.send_request("GET", f"/download?n={200 << 20}")
            while not any(getattr(ev, "stream_id", None) == sid for ev in client.events):
                client.receive()
        # closed with the app writing into a window it will never get back
    with H2Client(server.port) as client:
        assert client.request("GET", "/")[2] == b"ok"


@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
def test_a_body_the_app_does_not_read_stops_the_client(servers, interface):
    # Flow control: past body.HIGH_WATER buffered, no WINDOW_UPDATE until the app reads. The
    # app sleeps without reading: the client can send no more than that plus its windows.
    with H2Client(servers[interface].port) as client:
        client.sock.settimeout(0.2)
        sid = client.send_request("POST", "/sleep?s=3", end=False)
        sent = 0
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            window = min(client.conn.local_flow_control_window(sid),
                         client.conn.max_outbound_frame_size)
            if window > 0:
                client.conn.send_data(sid, b"u" * window)
                client.flush()
                sent += window
            else:
                try:
                    client.receive()
                except socket.timeout:
                    pass
        assert 65535 <= sent <= HIGH_WATER + 2 * 65535 + 16384, sent
