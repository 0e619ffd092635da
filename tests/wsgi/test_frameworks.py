"""Flask and Django apps served by a real unicorn_aio process: routes, uploads, streaming,
files through wsgi.file_wrapper, and error pages."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from httpc import multipart, request
from procs import ROOT, ServerProcess

pytestmark = pytest.mark.timeout(60)

DJANGO_DIR = os.path.join(ROOT, "examples", "djangoproject")


@pytest.fixture(scope="module")
def flask_server(tmp_path_factory):
    pytest.importorskip("flask", reason="flask is in the test extra: pip install -e '.[test]'")
    log = tmp_path_factory.mktemp("flask") / "server.log"
    proc = ServerProcess("examples.flask_app:app", "--threads", "4", log_path=str(log))
    proc.static_file = os.path.join(ROOT, "examples", "static", "style.css")
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def django_server(tmp_path_factory):
    pytest.importorskip("django", reason="django is in the test extra: pip install -e '.[test]'")
    log = tmp_path_factory.mktemp("django") / "server.log"
    # Run from elsewhere: --chdir and --pythonpath are what make mysite importable.
    proc = ServerProcess("mysite.wsgi", "--chdir", DJANGO_DIR, "--pythonpath", DJANGO_DIR,
                         "--threads", "4", cwd=str(log.parent), log_path=str(log),
                         env={"DJANGO_SETTINGS_MODULE": "mysite.settings"})
    proc.static_file = os.path.join(DJANGO_DIR, "mysite", "static.txt")
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


@pytest.fixture(params=["flask", "django"])
def server(request):
    return request.getfixturevalue(f"{request.param}_server")


def test_routes(server):
    status, headers, body = request(server.port, "GET", "/hello/world")
    assert status == 200
    data = json.loads(body)
    assert data["greeting"] == "Hello, world!"
    assert data["scheme"] == "http"
    assert data["remote_addr"] == "127.0.0.1"
    assert data["host"] == f"127.0.0.1:{server.port}"


def test_multipart_upload(server):
    payload = os.urandom(300_000)  # over Django's in-memory limit: it spools to a temp file
    body, ctype = multipart({"title": "holiday"}, {"file": ("photo.bin", payload)})
    status, _, resp = request(server.port, "POST", "/upload", body, {"Content-Type": ctype})
    assert status == 200, resp[:500]
    assert json.loads(resp) == {"title": "holiday", "filename": "photo.bin",
                                "size": len(payload),
                                "sha256": hashlib.sha256(payload).hexdigest()}


def test_upload_form_page(server):
    status, _, body = request(server.port, "GET", "/upload")
    assert status == 200 and b'enctype="multipart/form-data"' in body


def test_streaming_response(server):
    status, headers, body = request(server.port, "GET", "/stream?n=50")
    assert status == 200
    assert headers.get("transfer-encoding") == "chunked"  # no length known up front
    assert body == b"".join(f"chunk {i}\n".encode() for i in range(50))


def test_file_through_file_wrapper(server):
    with open(server.static_file, "rb") as f:
        expected = f.read()
    status, headers, body = request(server.port, "GET", "/file")
    assert status == 200
    assert body == expected
    assert int(headers["content-length"]) == len(expected)


def test_head_of_a_file_has_no_body(server):
    status, headers, body = request(server.port, "HEAD", "/file")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0


def test_404(server):
    status, _, body = request(server.port, "GET", "/no/such/page")
    assert status == 404


def test_500_from_an_exception_keeps_serving(server):
    status, _, body = request(server.port, "GET", "/boom")
    assert status == 500
    assert b"boom" not in body  # no traceback leaked to the client (DEBUG off)
    assert request(server.port, "GET", "/hello/again")[0] == 200
    # The framework logs the exception to the error stream the server captured.
    server.wait_log("boom: an exception in a view")
