"""A real nginx in front of unicorn_aio on a unix socket (docs/nginx.conf, reduced to a test)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess

import pytest
from httpc import request
from procs import ROOT, ServerProcess, free_port, wait_for

pytestmark = pytest.mark.timeout(60)

APP = '''
import hashlib, json

def app(environ, start_response):
    digest, size = hashlib.sha256(), 0
    while True:
        chunk = environ["wsgi.input"].read(65536)
        if not chunk:
            break
        digest.update(chunk)
        size += len(chunk)
    keys = ("REMOTE_ADDR", "HTTP_HOST", "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO",
            "PATH_INFO", "REQUEST_METHOD", "SERVER_NAME")
    info = {k: environ.get(k) for k in keys}
    info.update(scheme=environ["wsgi.url_scheme"], size=size, sha256=digest.hexdigest())
    body = json.dumps(info).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''

NGINX_CONF = """
daemon off;
{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log info;
events {{ worker_connections 128; }}
http {{
    access_log {tmp}/nginx-access.log;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;

    upstream unix_default {{ server unix:{tmp}/default.sock fail_timeout=0; keepalive 4; }}
    upstream unix_star    {{ server unix:{tmp}/star.sock fail_timeout=0; }}
    upstream tcp_untrusted {{ server 127.0.0.1:{untrusted_port} fail_timeout=0; }}

    proxy_http_version 1.1;
    client_max_body_size 10m;
    proxy_request_buffering off;

    # Plain http, as in docs/nginx.conf.
    server {{
        listen 127.0.0.1:{port_plain};
        location / {{
            # Every header here: a location with any proxy_set_header inherits none.
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_pass http://unix_default;
        }}
    }}
    # Stand-ins for a TLS-terminating server block (listen 443 ssl): it says https.
    server {{
        listen 127.0.0.1:{port_https_default};
        location / {{
            proxy_set_header Connection ""; proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            proxy_pass http://unix_default;
        }}
    }}
    server {{
        listen 127.0.0.1:{port_https_star};
        location / {{
            proxy_set_header Connection ""; proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            proxy_pass http://unix_star;
        }}
    }}
    server {{
        listen 127.0.0.1:{port_https_untrusted};
        location / {{
            proxy_set_header Connection ""; proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            proxy_pass http://tcp_untrusted;
        }}
    }}
}}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None)
    if nginx is None:
        pytest.skip("nginx not installed: make systools (apt-get install nginx) to run these tests")
    tmp = tmp_path_factory.mktemp("nginx")
    (tmp / "nginx_app.py").write_text(APP)
    servers, nginx_proc = [], None
    try:
        def start(name, *args):
            proc = ServerProcess("nginx_app:app", *args, cwd=str(tmp),
                                 log_path=str(tmp / f"{name}.log"),
                                 env={"PYTHONPATH": f"{tmp}:{ROOT}"})
            servers.append(proc)
            return proc

        default = start("default", "--bind", f"unix:{tmp}/default.sock", "--umask", "007")
        start("star", "--bind", f"unix:{tmp}/star.sock", "--forwarded-allow-ips", "*")
        untrusted = start("untrusted", "--forwarded-allow-ips", "10.1.2.3")
        for proc in servers:
            proc.wait_ready()
        ports = {name: free_port() for name in
                 ("port_plain", "port_https_default", "port_https_star", "port_https_untrusted")}
        conf = tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(
            tmp=tmp, untrusted_port=untrusted.port, **ports,
            # As root, nginx's workers would drop to nobody, who cannot reach pytest's tmp dirs.
            user="user root;" if os.geteuid() == 0 else ""))
        with open(tmp / "nginx-stderr.log", "wb") as err:
            nginx_proc = subprocess.Popen([nginx, "-p", str(tmp), "-c", str(conf)],
                                          stdout=err, stderr=subprocess.STDOUT,
                                          start_new_session=True)

        def nginx_up():
            assert nginx_proc.poll() is None, (tmp / "nginx-stderr.log").read_text()
            try:
                return request(ports["port_plain"], "GET", "/")[0] == 200
            except OSError:
                return False
        wait_for(nginx_up, 15, what="nginx proxying to unicorn_aio")
        yield {"tmp": tmp, "default": default, **ports}
    finally:
        if nginx_proc is not None:
            try:
                with open(tmp / "nginx.pid") as f:
                    os.kill(int(f.read().strip()), signal.SIGTERM)  # nginx's own pid file
                nginx_proc.wait(10)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
            try:
                os.killpg(nginx_proc.pid, signal.SIGKILL)  # our session: only what we started
            except (ProcessLookupError, PermissionError):
                pass
            nginx_proc.wait(5)
        for proc in servers:
            proc.stop()


def via(stack, which: str, method: str = "GET", path: str = "/", body=None, headers=None):
    status, resp_headers, data = request(stack[which], method, path, body, headers)
    assert status == 200, data[:300]
    return json.loads(data)


def test_requests_through_nginx(stack):
    for i in range(20):  # over nginx's upstream keep-alive connections
        info = via(stack, "port_plain", path=f"/item/{i}",
                   headers={"X-Forwarded-For": "203.0.113.9"})
        assert info["PATH_INFO"] == f"/item/{i}"
    assert info["HTTP_HOST"] == f"127.0.0.1:{stack['port_plain']}"  # Host passed through
    assert info["HTTP_X_FORWARDED_FOR"] == "203.0.113.9, 127.0.0.1"
    assert info["REMOTE_ADDR"] == ""  # a unix socket peer has no address; the proxy's headers do
    assert info["scheme"] == "http"


def test_five_megabyte_upload(stack):
    payload = os.urandom(5 * 1024 * 1024)
    info = via(stack, "port_plain", "POST", "/upload", payload,
               {"Content-Type": "application/octet-stream"})
    assert info["size"] == len(payload)
    assert info["sha256"] == hashlib.sha256(payload).hexdigest()


def test_body_over_client_max_body_size_is_refused_by_nginx(stack):
    status, _, _ = request(stack["port_plain"], "POST", "/", b"x" * (11 * 1024 * 1024))
    assert status == 413


def test_umask_sets_the_unix_socket_mode(stack):
    mode = os.stat(stack["tmp"] / "default.sock").st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o770  # --umask 007


def test_forwarded_proto_honoured_from_a_trusted_unix_peer(stack):
    # --forwarded-allow-ips '*': nginx's X-Forwarded-Proto: https makes the request https.
    assert via(stack, "port_https_star")["scheme"] == "https"


def test_forwarded_proto_ignored_from_an_untrusted_peer(stack):
    # TCP from 127.0.0.1 with --forwarded-allow-ips 10.1.2.3: the header is not believed.
    info = via(stack, "port_https_untrusted")
    assert info["HTTP_X_FORWARDED_PROTO"] == "https" and info["scheme"] == "http"


def test_unix_socket_peer_is_trusted_by_default_like_gunicorn(stack):
    # Only processes allowed to open the socket file can connect: gunicorn trusts them.
    assert via(stack, "port_https_default")["scheme"] == "https"


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's group needs root")
def test_unix_socket_belongs_to_the_worker_group(tmp_path):
    import grp
    group = next(g for g in ("www-data", "nogroup", "daemon") if _group_exists(g))
    sock = tmp_path / "app.sock"
    proc = ServerProcess("examples.hello:app", "--bind", f"unix:{sock}", "--umask", "007",
                         "--group", group, log_path=str(tmp_path / "server.log"))
    try:
        proc.wait_ready()
        st = os.stat(sock)
        assert st.st_gid == grp.getgrnam(group).gr_gid
        assert stat.S_IMODE(st.st_mode) == 0o770
    finally:
        proc.stop()


def _group_exists(name: str) -> bool:
    import grp
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False
