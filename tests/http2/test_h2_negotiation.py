"""Which protocol a connection speaks, by gunicorn 27's rules: ALPN over TLS; h2c by prior
knowledge or Upgrade, for peers in --forwarded-allow-ips only; 400 for a trusted peer that does
not open with the preface on a prior-knowledge-only port; the settings we advertise.
"""

from __future__ import annotations

import json
import socket
import ssl

import pytest
import trustme
from h2c import PREFACE, H2Client, H2Server, frames_until_closed, raw_connection

pytestmark = pytest.mark.timeout(60)

UPGRADE = (b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, HTTP2-Settings\r\n"
           b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")


@pytest.fixture
def start(tmp_path):
    started = []

    def start(*args: str, cleartext: str = "both", app: str = "h2_apps:wsgi",
              tls: ssl.SSLContext | None = None, ready: bool = True,
              h1_ready: bool = False) -> H2Server:
        proc = H2Server(app, "--threads", "4", *args, cleartext=cleartext,
                        log_path=str(tmp_path / f"server{len(started)}.log"))
        proc.tls = tls
        proc.h1_ready = proc.h1_ready or h1_ready
        started.append(proc)
        return proc.wait_ready() if ready else proc

    yield start
    for proc in started:
        proc.stop()


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ConnectionResetError):
            return data
        if not chunk:
            return data
        data += chunk


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
    return ca, str(d / "server.pem")


def tls_context(ca, alpn: list[str]) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    ctx.set_alpn_protocols(alpn)
    return ctx


@pytest.mark.parametrize("app", ["h2_apps:wsgi", "h2_apps:asgi"])
def test_tls_alpn_chooses_h2_or_http1(start, pki, app):
    ca, pem = pki
    server = start("--certfile", pem, "--http-protocols", "h2,h1", app=app,
                   tls=tls_context(ca, ["h2", "http/1.1"]))
    with H2Client(server.port, tls=tls_context(ca, ["h2", "http/1.1"])) as client:
        status, _, body = client.request("GET", "/echo")
        assert status == 200
        info = json.loads(body)
        assert (info["protocol"], info["scheme"]) == ("HTTP/2.0", "https")
    # A client that offers only HTTP/1.1 gets it, from the same port.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
            tls_context(ca, ["http/1.1"]).wrap_socket(raw, server_hostname="localhost") as sock:
        assert sock.selected_alpn_protocol() == "http/1.1"
        sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = read_all(sock)
        assert reply.startswith(b"HTTP/1.1 200") and b'"HTTP/1.1"' in reply


def test_tls_without_h2_in_http_protocols_offers_only_http1(start, pki):
    ca, pem = pki
    server = start("--certfile", pem, "--http-protocols", "h1", cleartext="off", ready=False)
    ctx = tls_context(ca, ["h2", "http/1.1"])

    def selected():
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=2) as raw, \
                    ctx.wrap_socket(raw, server_hostname="localhost") as sock:
                return sock.selected_alpn_protocol() or "none"
        except OSError:
            return None
    from procs import wait_for
    assert wait_for(selected, 15, what="the TLS server") in ("none", "http/1.1")


def test_untrusted_peer_gets_http1_as_if_h2c_were_off(start):
    server = start("--forwarded-allow-ips", "10.9.9.9", cleartext="both", h1_ready=True)
    # The preface is not HTTP/1.1: refused as any bad request line is.
    with raw_connection(server.port) as sock:
        reply = read_all(sock)
        assert reply.startswith(b"HTTP/1.1 4") or reply.startswith(b"HTTP/1.1 505"), reply[:40]
    # An Upgrade: h2c is ignored (RFC 9110 7.8): answered in HTTP/1.1.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(UPGRADE.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        reply = read_all(sock)
        assert reply.startswith(b"HTTP/1.1 200") and b'"HTTP/1.1"' in reply


def test_prior_knowledge_only_refuses_http1_from_a_trusted_peer(start):
    server = start(cleartext="prior-knowledge")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_all(sock).startswith(b"HTTP/1.1 400")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(UPGRADE)  # not an upgrade port: 400 too
        assert read_all(sock).startswith(b"HTTP/1.1 400")
    with H2Client(server.port) as client:
        assert client.request("GET", "/")[2] == b"ok"


def test_upgrade_only_does_not_take_the_preface(start):
    server = start(cleartext="upgrade")
    with raw_connection(server.port) as sock:
        assert not read_all(sock).startswith(b"\x00")  # no SETTINGS frame: HTTP/1.1's answer
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(UPGRADE)
        sock.settimeout(5)
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += sock.recv(4096)
        assert reply.startswith(b"HTTP/1.1 101 Switching Protocols")


def test_cleartext_without_h2_in_http_protocols_is_said_at_start_and_off(start):
    server = start("--http-protocols", "h1", cleartext="both", h1_ready=True)
    server.wait_log("--http2-cleartext both is off: h2 is not in --http-protocols (h1)")
    with raw_connection(server.port) as sock:
        assert not read_all(sock).startswith(b"\x00")


def test_h2_without_tls_or_cleartext_is_warned_once_at_start(start):
    # gunicorn 27 warns that HTTP/2 will never be negotiated; we used to serve HTTP/1.1 silently.
    server = start(cleartext="off")  # --http-protocols h2,h1, no TLS
    line = ("[WARNING] http_protocols includes h2 but there is no TLS and http2_cleartext is off, "
            "so HTTP/2 will never be negotiated (h2c needs --http2-cleartext)")
    server.wait_log(line)
    with raw_connection(server.port) as sock:  # the preface (PRI * HTTP/2.0) is no request here
        assert not read_all(sock).startswith(b"\x00")
    assert server.log().count(line) == 1


def test_the_settings_we_advertise(start):
    server = start("--http2-max-concurrent-streams", "7", "--http2-initial-window-size",
                   "1000000", "--http2-max-frame-size", "32768",
                   "--http2-max-header-list-size", "8192", "--keep-alive", "1")
    with raw_connection(server.port) as sock:
        frames = frames_until_closed(sock, timeout=5)
    settings = frames[0]
    assert settings.type == 0x4 and "ACK" not in settings.flags
    assert {k: v for k, v in settings.settings.items() if k in (3, 4, 5, 6)} == \
        {3: 7, 4: 1000000, 5: 32768, 6: 8192}


def test_the_preface_may_come_a_byte_at_a_time(start):
    server = start(cleartext="prior-knowledge")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        for byte in PREFACE:
            sock.sendall(bytes([byte]))
        sock.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        sock.settimeout(5)
        assert sock.recv(9)[3] == 0x4  # the server's SETTINGS: it speaks HTTP/2


def test_an_upgrade_with_a_large_body_is_answered_in_http1(start):
    # gunicorn holds at most 64 KiB of an upgrade's body; past it the Upgrade is ignored.
    server = start(cleartext="upgrade")
    body = b"q" * 100000
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(UPGRADE.replace(b"GET", b"POST").replace(
            b"\r\n\r\n", b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
            + body)
        reply = read_all(sock)
    assert reply.startswith(b"HTTP/1.1 200"), reply[:60]
    assert json.loads(reply.partition(b"\r\n\r\n")[2])["length"] == len(body)


@pytest.mark.parametrize("args", [("--dispatch", "inline"), ("--threads", "1")])
def test_wsgi_dispatch_modes(start, args):
    server = start(*args)
    with H2Client(server.port) as client:
        sids = [client.send_request("POST", "/echo", body=b"x" * i) for i in range(20)]
        assert [json.loads(client.response(sid)[2])["length"] for sid in sids] == list(range(20))
