"""TLS with certificates made at test time (trustme): in-process Server and a real master."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys

import aiohttp
import pytest
import trustme
from apps import make_app
from procs import ROOT, ServerProcess, free_port

from unicorn_aio.config.config import Config
from unicorn_aio.errors import ConfigError
from unicorn_aio.server import Server

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 (cert and key in separate files), a client one."""
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client@example.org")
    paths = {"ca": d / "ca.pem", "cert": d / "server.crt", "key": d / "server.key",
             "both": d / "server.pem"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    server.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    server.private_key_pem.write_to_path(str(paths["key"]))
    server.private_key_and_cert_chain_pem.write_to_path(str(paths["both"]))
    paths = {k: str(v) for k, v in paths.items()}
    paths["ca_obj"], paths["client"] = ca, client
    return paths


def client_context(pki, with_cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    pki["ca_obj"].configure_trust(ctx)
    if with_cert:
        pki["client"].configure_cert(ctx)
    return ctx


async def fetch(url: str, ctx: ssl.SSLContext, headers=None) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, ssl=ctx, headers=headers) as resp:
            return resp.status, await resp.read()


async def test_https_request_and_url_scheme(start_server, pki):
    server = await start_server(make_app(), certfile=pki["cert"], keyfile=pki["key"])
    status, body = await fetch(f"https://127.0.0.1:{server.port}/env", client_context(pki))
    env = json.loads(body)
    assert status == 200
    assert env["wsgi.url_scheme"] == "https"
    assert env["SERVER_PORT"] == str(server.port)


async def test_file_wrapper_over_tls_is_not_sendfile(start_server, pki, tmp_path):
    # sendfile(2) would write cleartext into the TLS stream; the iterating path must be taken.
    data = os.urandom(300_000)
    path = tmp_path / "blob"
    path.write_bytes(data)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(path, "rb"))

    server = await start_server(app, certfile=pki["both"])
    status, body = await fetch(f"https://127.0.0.1:{server.port}/", client_context(pki))
    assert status == 200 and body == data


async def asgi_scheme(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["scheme"].encode()})


def wsgi_scheme(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["wsgi.url_scheme"].encode()]


@pytest.mark.parametrize("app", [wsgi_scheme, asgi_scheme])
async def test_a_trusted_proxy_saying_http_over_tls_is_believed(start_server, pki, app):
    # gunicorn takes a trusted proxy's word either way: TLS between the proxy and us, plain
    # HTTP between the client and the proxy, is http - for WSGI and ASGI alike.
    server = await start_server(app, certfile=pki["both"])
    url = f"https://127.0.0.1:{server.port}/"
    assert await fetch(url, client_context(pki)) == (200, b"https")
    assert await fetch(url, client_context(pki), {"X-Forwarded-Proto": "http"}) == (200, b"http")


async def test_client_certificate_required(start_server, pki):
    server = await start_server(make_app(), certfile=pki["cert"], keyfile=pki["key"],
                                ca_certs=pki["ca"], cert_reqs=ssl.CERT_REQUIRED)
    url = f"https://127.0.0.1:{server.port}/"
    status, body = await fetch(url, client_context(pki, with_cert=True))
    assert status == 200 and body == b"hello GET /"
    # Without a certificate the handshake fails; in TLS 1.3 the client may only learn of it
    # on its first read, as an SSL error or a closed connection.
    with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
        await fetch(url, client_context(pki))


async def test_ssl_context_hook_adjusts_the_default_context(start_server, pki):
    seen = []

    def hook(config, default_ssl_context_factory):
        ctx = default_ssl_context_factory()
        # gunicorn's Config API, which hooks written for gunicorn read
        assert config.is_ssl and config.ssl_options["certfile"] == config.certfile
        seen.append((config.certfile, ctx.verify_mode))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        return ctx

    server = await start_server(make_app(), certfile=pki["both"], ssl_context=hook)
    assert seen == [(pki["both"], ssl.CERT_NONE)]
    old = client_context(pki)
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises((aiohttp.ClientError, ssl.SSLError)):
        await fetch(f"https://127.0.0.1:{server.port}/", old)
    status, _ = await fetch(f"https://127.0.0.1:{server.port}/", client_context(pki))
    assert status == 200


def test_config_is_ssl_and_ssl_options_as_gunicorn(pki):
    assert not Config().is_ssl
    assert Config(certfile=pki["both"]).is_ssl and Config(keyfile=pki["key"]).is_ssl
    options = Config(certfile=pki["cert"], keyfile=pki["key"]).ssl_options
    assert set(options) == {"keyfile", "certfile", "ssl_version", "cert_reqs", "ca_certs",
                            "suppress_ragged_eofs", "do_handshake_on_connect", "ciphers"}
    assert (options["certfile"], options["keyfile"]) == (pki["cert"], pki["key"])
    assert options["cert_reqs"] == ssl.CERT_NONE and options["ca_certs"] is None


async def test_a_keyfile_alone_asks_for_tls_not_plain_http(pki):
    # is_ssl, as gunicorn's: the server must not quietly serve cleartext where TLS was asked for
    server = Server(make_app(), bind="127.0.0.1:0", keyfile=pki["key"])
    try:
        with pytest.raises(ConfigError, match="TLS needs certfile"):
            await server.start()
    finally:
        await server.shutdown(timeout=1)


async def test_master_serves_https(pki, tmp_path):
    srv = ServerProcess("apps:make_app()", "--certfile", pki["cert"], "--keyfile", pki["key"],
                        "--workers", "2", env={"PYTHONPATH": os.path.join(ROOT, "tests", "support")},
                        log_path=str(tmp_path / "log"))
    try:
        srv.wait_log("Booting worker", timeout=15)
        url = f"https://127.0.0.1:{srv.port}/env"
        for _ in range(50):
            try:
                status, body = await fetch(url, client_context(pki))
                break
            except aiohttp.ClientConnectionError:
                import asyncio
                await asyncio.sleep(0.1)
        assert status == 200 and json.loads(body)["wsgi.url_scheme"] == "https"
    finally:
        srv.stop()


@pytest.mark.parametrize("flags,expected", [
    (["--certfile", "/nonexistent/server.pem"],
     "TLS certfile '/nonexistent/server.pem' cannot be loaded: No such file or directory"),
    (["--certfile", "CERT", "--keyfile", "/nonexistent/k.pem"],
     "TLS certfile 'CERT' / keyfile '/nonexistent/k.pem' cannot be loaded: "
     "No such file or directory"),
    (["--certfile", "CA"], "TLS certfile 'CA' cannot be loaded: "),
])
def test_bad_certificate_fails_the_master_in_one_line(pki, flags, expected):
    flags = [pki["cert"] if f == "CERT" else pki["ca"] if f == "CA" else f for f in flags]
    expected = expected.replace("'CERT'", repr(pki["cert"])).replace("'CA'", repr(pki["ca"]))
    proc = subprocess.run(
        [sys.executable, "-m", "unicorn_aio", "apps:make_app()", "--bind",
         f"127.0.0.1:{free_port()}", *flags],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "tests", "support") + ":" + ROOT),
        capture_output=True, text=True, timeout=20)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("unicorn_aio: error: " + expected), lines[0]


async def test_hup_with_a_broken_certificate_keeps_serving(pki, tmp_path):
    import asyncio
    import shutil
    import signal

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    shutil.copy(pki["cert"], cert)
    shutil.copy(pki["key"], key)
    srv = ServerProcess("apps:make_app()", "--certfile", str(cert), "--keyfile", str(key),
                        env={"PYTHONPATH": os.path.join(ROOT, "tests", "support")},
                        log_path=str(tmp_path / "log"))
    url = f"https://127.0.0.1:{srv.port}/env"

    async def serves() -> bool:
        for _ in range(100):
            try:
                return (await fetch(url, client_context(pki)))[0] == 200
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
        return False

    try:
        assert await serves()
        workers = srv.workers()
        cert.write_text("not a certificate\n")  # a renewal gone wrong
        srv.signal(signal.SIGHUP)
        srv.wait_log("Reload failed, keeping the current configuration: TLS certfile")
        assert await serves()
        assert srv.workers() == workers
    finally:
        srv.stop()
