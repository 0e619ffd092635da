"""Parity with gunicorn 27.0's settings: every name is known; the ones unicorn_aio acts on do what
gunicorn's do, set from the command line or from a config file; the others warn in one line that
says why (and the uwsgi protocol, which cannot work here, is refused)."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time

import pytest
from procs import ROOT, wait_for

from unicorn_aio.config.config import load_config
from unicorn_aio.config.settings import ALIASES, BY_NAME
from unicorn_aio.errors import ConfigError

pytestmark = pytest.mark.timeout(60)

# gunicorn 26.1.0's KNOWN_SETTINGS, from its generated docs/content/reference/settings.md.
GUNICORN_26_SETTINGS = """
    config wsgi_app control_socket control_socket_mode control_socket_disable reload
    reload_engine reload_extra_files spew check_config print_config on_dirty_starting
    dirty_post_fork dirty_worker_init dirty_worker_exit dirty_apps dirty_workers dirty_timeout
    dirty_threads dirty_graceful_timeout http_protocols http2_max_concurrent_streams
    http2_initial_window_size http2_max_frame_size http2_max_header_list_size accesslog
    disable_redirect_access_to_syslog access_log_format errorlog loglevel capture_output
    logger_class logconfig logconfig_dict logconfig_json syslog_addr syslog syslog_prefix
    syslog_facility enable_stdio_inheritance statsd_host dogstatsd_tags statsd_prefix
    enable_backlog_metric proc_name default_proc_name keyfile certfile ssl_version cert_reqs
    ca_certs suppress_ragged_eofs do_handshake_on_connect ciphers limit_request_line
    limit_request_fields limit_request_field_size on_starting on_reload when_ready pre_fork
    post_fork post_worker_init worker_int worker_abort pre_exec pre_request post_request
    child_exit worker_exit nworkers_changed on_exit ssl_context preload_app sendfile reuse_port
    chdir daemon raw_env pidfile worker_tmp_dir user group umask initgroups tmp_upload_dir
    secure_scheme_headers forwarded_allow_ips pythonpath paste proxy_protocol proxy_allow_ips
    protocol uwsgi_allow_ips raw_paste_global_conf permit_obsolete_folding strip_header_spaces
    permit_unconventional_http_method permit_unconventional_http_version casefold_http_method
    forwarder_headers header_map root_path bind backlog workers worker_class threads
    worker_connections max_requests max_requests_jitter timeout graceful_timeout keepalive
    asgi_loop asgi_lifespan asgi_disconnect_grace_period http_parser
""".split()

TEST_PATH = {"PYTHONPATH": f"{ROOT}/tests/support:{ROOT}"}


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no stray ./gunicorn.conf.py; relative globs resolve here
    return tmp_path


def from_cli(*args):
    return load_config([*args, "app:app"], {})


def from_file(text, path="gunicorn.conf.py"):
    with open(path, "w") as f:
        f.write(text)
    return load_config(["-c", path, "app:app"], {})


# gunicorn 27.0.1's additions to it: sorted(s.name for s in gunicorn.config.KNOWN_SETTINGS).
GUNICORN_27_SETTINGS = GUNICORN_26_SETTINGS + ["http2_cleartext", "websocket_max_message_size"]


def test_every_gunicorn_27_setting_is_known():
    assert len(GUNICORN_27_SETTINGS) == 120
    assert [n for n in GUNICORN_27_SETTINGS if n not in BY_NAME and n not in ALIASES] == []


def gunicorn_flags():
    """Every flag of gunicorn 27's settings, from the differential test's venv (make test builds
    it: tests/support/gunicorn_venv.py)."""
    import gunicorn_venv

    why = gunicorn_venv.ensure()
    if why:
        pytest.skip(f"NO GUNICORN TO COMPARE WITH: {why}")
    python = gunicorn_venv.PYTHON
    out = subprocess.run([python, "-c", "import gunicorn.config as c\nfor s in c.KNOWN_SETTINGS: "
                          "print(s.name, *(s.cli or ()))"], capture_output=True, text=True,
                         timeout=30)
    if out.returncode:
        pytest.skip(f"gunicorn is not importable: {out.stderr.strip()[-200:]}")
    return {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()}


def test_every_flag_of_the_installed_gunicorn_is_ours():
    settings = gunicorn_flags()
    assert set(settings) >= set(GUNICORN_27_SETTINGS)
    ours = {flag for s in BY_NAME.values() for flag in s.flags}
    assert {name: [f for f in flags if f not in ours] for name, flags in settings.items()
            if not set(flags) <= ours} == {}


# -- settings acted on: accepted from both sources -------------------------------------------------


@pytest.mark.parametrize("args, conf, name, value", [
    (["--asgi-lifespan", "off"], "asgi_lifespan = 'off'", "lifespan", "off"),
    (["--root-path", "/api"], "root_path = '/api'", "root_path", "/api"),
    (["--enable-backlog-metric", "--statsd-host", "localhost:9125"],
     "enable_backlog_metric = True\nstatsd_host = 'localhost:9125'", "enable_backlog_metric", True),
    (["--proxy-protocol", "v2"], "proxy_protocol = 'v2'", "proxy_protocol", "v2"),
    (["--proxy-protocol", "off"], "proxy_protocol = 'off'", "proxy_protocol", False),
    (["--protocol", "http"], "protocol = 'http'", "protocol", "http"),
    (["--no-control-socket"], "control_socket_disable = True", "control_socket_disable", True),
    (["--control-socket", "/run/app.ctl"], "control_socket = '/run/app.ctl'", "control_socket",
     "/run/app.ctl"),
    (["--control-socket-mode", "0660"], "control_socket_mode = 0o660", "control_socket_mode",
     0o660),
])
@pytest.mark.parametrize("source", ["cli", "file"])
def test_acted_on_settings_are_accepted_from_both_sources(source, args, conf, name, value):
    cfg = from_cli(*args) if source == "cli" else from_file(conf)
    assert getattr(cfg, name) == value
    assert cfg.warnings == []


def test_asgi_lifespan_is_the_lifespan_setting():
    assert ALIASES["asgi_lifespan"] == "lifespan"
    assert from_file("asgi_lifespan = 'on'").asgi_lifespan == "on"


def test_proxy_protocol_flag_alone_means_auto_and_old_values_still_work():
    assert from_cli("--proxy-protocol").proxy_protocol == "auto"
    # Before gunicorn 24.1 the flag took no value: the APP that follows it stays the APP.
    cfg = load_config(["--proxy-protocol", "myapp:app", "--workers", "2"], {})
    assert (cfg.app_uri, cfg.proxy_protocol, cfg.workers) == ("myapp:app", "auto", 2)
    assert from_file("proxy_protocol = True").proxy_protocol == "auto"
    assert from_file("proxy_protocol = False").proxy_protocol is False
    with pytest.raises(ConfigError, match=r"argument --proxy-protocol: must be off, v1, v2 or "
                                          r"auto \(or true/false\), got 'v3'"):
        load_config(["app:app", "--proxy-protocol", "v3"], {})


def test_root_path_must_be_a_path():
    with pytest.raises(ConfigError, match=r"root_path: must be a path starting with / \(e.g. "
                                          r"/api\), got 'api'"):
        from_file("root_path = 'api'")


def test_reload_extra_files_expands_glob_patterns(in_tmp):
    for name in ("templates/a.html", "templates/b.html", "templates/sub/c.html", "templates/d.txt"):
        os.makedirs(os.path.dirname(name), exist_ok=True)
        open(name, "w").close()
    cfg = from_cli("--reload-extra-file", "templates/*.html", "--reload-extra-file",
                   "templates/d.txt")
    assert cfg.reload_extra_files == ["templates/a.html", "templates/b.html", "templates/d.txt"]
    cfg = from_file("reload_extra_files = ['templates/**/*.html', 'nothing/*.py']")
    assert cfg.reload_extra_files == ["templates/a.html", "templates/b.html",
                                      "templates/sub/c.html"]
    with pytest.raises(ConfigError, match="file 'templates/e.html' does not exist"):
        from_cli("--reload-extra-file", "templates/e.html")


# -- settings with no use here: accepted, one warning each that says why ---------------------------

DIRTY = "dirty arbiters are not supported: no dirty worker pool is started"


@pytest.mark.parametrize("args, conf, warning", [
    (["--asgi-loop", "asyncio"], "asgi_loop = 'asyncio'", "asgi_loop is ignored: unicorn_aio's "
                                                          "workers always run uvloop"),
    (["--http-parser", "python"], "http_parser = 'python'",
     "http_parser is ignored: requests are always parsed by httptools"),
    (["--asgi-disconnect-grace-period", "10"], "asgi_disconnect_grace_period = 10",
     "asgi_disconnect_grace_period is ignored: unicorn_aio never cancels an ASGI request"),
    (["--dirty-app", "myapp.ml:Model:2"], "dirty_apps = ['myapp.ml:Model:2']", DIRTY),
    (["--dirty-workers", "2"], "dirty_workers = 2", DIRTY),
    (["--dirty-timeout", "60"], "dirty_timeout = 60", DIRTY),
    (["--dirty-threads", "4"], "dirty_threads = 4", DIRTY),
    (["--dirty-graceful-timeout", "5"], "dirty_graceful_timeout = 5", DIRTY),
    (["--uwsgi-allow-from", "10.0.0.1"], "uwsgi_allow_ips = '10.0.0.1'",
     "uwsgi_allow_ips is ignored: the uwsgi protocol is not supported"),
])
@pytest.mark.parametrize("source", ["cli", "file"])
def test_settings_without_use_here_warn_why(source, args, conf, warning):
    cfg = from_cli(*args) if source == "cli" else from_file(conf)
    assert len(cfg.warnings) == 1
    assert cfg.warnings[0].startswith(warning)


@pytest.mark.parametrize("hook", ["on_dirty_starting(arbiter)",
                                  "dirty_post_fork(arbiter, worker)",
                                  "dirty_worker_init(worker)",
                                  "dirty_worker_exit(arbiter, worker)"])
def test_dirty_hooks_are_accepted_and_warned_about(hook):
    cfg = from_file(f"def {hook}:\n    pass\n")
    assert len(cfg.warnings) == 1 and cfg.warnings[0].startswith(DIRTY)


def test_wrong_arity_of_a_dirty_hook_is_still_an_error():
    with pytest.raises(ConfigError, match=r"dirty_post_fork: must accept 2 argument"):
        from_file("def dirty_post_fork(arbiter):\n    pass\n")


def test_values_unicorn_aio_honours_anyway_do_not_warn():
    cfg = from_file("asgi_loop = 'uvloop'\nhttp_parser = 'fast'\nhttp_protocols = 'h1'\n"
                    "control_socket_disable = True\ndirty_workers = 0\nhttp2_cleartext = 'off'\n")
    assert cfg.warnings == []


@pytest.mark.parametrize("source", ["cli", "file"])
def test_worker_tmp_dir_is_accepted_without_a_warning(source):
    # The Docker recipes' --worker-tmp-dir /dev/shm: there are no heartbeat files to place.
    cfg = from_cli("--worker-tmp-dir", "/dev/shm") if source == "cli" else \
        from_file("worker_tmp_dir = '/dev/shm'")
    assert (cfg.worker_tmp_dir, cfg.warnings) == ("/dev/shm", [])


@pytest.mark.parametrize("source", ["cli", "file"])
def test_websocket_max_message_size_is_websocket_max_size(source):
    cfg = from_cli("--websocket-max-message-size", "1024") if source == "cli" else \
        from_file("websocket_max_message_size = 1024")
    assert (cfg.websocket_max_size, cfg.websocket_max_message_size, cfg.warnings) == (1024, 1024, [])
    assert from_cli("--websocket-max-message-size", "0").websocket_max_size == 0  # no limit


def test_one_warning_for_a_whole_group():
    cfg = from_cli("--dirty-workers", "2", "--dirty-app", "m:C", "--dirty-timeout", "60")
    assert [w[:20] for w in cfg.warnings] == [DIRTY[:20]]


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "unicorn_aio", *args], cwd=cwd,
                          env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": ROOT},
                          capture_output=True, text=True, timeout=30)


def test_command_line_warns_on_stderr_and_runs(in_tmp):
    out = run_cli("--print-config", "--dirty-workers", "2", "--asgi-loop", "asyncio",
                  "--http-parser", "python", "app:app", cwd=in_tmp)
    assert out.returncode == 0, out.stderr
    assert "dirty_workers" in out.stdout and "http_parser" in out.stdout
    warnings = out.stderr.strip().splitlines()
    assert len(warnings) == 3
    assert all(line.startswith("unicorn_aio: warning: ") for line in warnings)


def test_uwsgi_protocol_is_refused_in_one_line(in_tmp):
    out = run_cli("--protocol", "uwsgi", "app:app", cwd=in_tmp)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "unicorn_aio: error: argument --protocol: the uwsgi protocol is not supported, "
        "unicorn_aio speaks HTTP only: in nginx use proxy_pass (see docs/nginx.conf) instead of "
        "uwsgi_pass"]
    (in_tmp / "gunicorn.conf.py").write_text("protocol = 'uwsgi'\n")
    out = run_cli("app:app", cwd=in_tmp)
    assert out.returncode == 2
    assert "config file gunicorn.conf.py: protocol: the uwsgi protocol" in out.stderr


# -- their effect, on real servers -----------------------------------------------------------------


def config_args(tmp_path, source, cli_args, conf):
    """The arguments that set a setting from the command line, or from a config file."""
    if source == "cli":
        return list(cli_args)
    path = tmp_path / "server.conf.py"
    path.write_text(conf)
    return ["-c", str(path)]


def fetch_json(proc, path="/", prefix=b""):
    """GET ``path`` on a raw socket, after ``prefix`` (a PROXY header); the JSON body."""
    with socket.create_connection(("127.0.0.1", proc.port), timeout=5) as sock:
        sock.sendall(prefix + b"GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
                     % path.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), data
    return json.loads(body)


@pytest.mark.parametrize("source, mode, ran", [("cli", "off", False), ("file", "off", False),
                                               ("cli", "on", True)])
def test_asgi_lifespan_decides_whether_startup_runs(process_server, tmp_path, source, mode, ran):
    args = config_args(tmp_path, source, ["--asgi-lifespan", mode], f"asgi_lifespan = {mode!r}\n")
    proc = process_server("parity_apps:asgi_scope", *args, cwd=str(tmp_path), env=TEST_PATH)
    assert fetch_json(proc)["lifespan"] is ran


def test_root_path_from_the_command_line_is_the_asgi_root_path(process_server, tmp_path):
    proc = process_server("parity_apps:asgi_scope", "--root-path", "/api", cwd=str(tmp_path),
                          env=TEST_PATH)
    # As uvicorn's --root-path: the path a proxy stripped of the prefix gets it back.
    assert fetch_json(proc, "/items") == {"root_path": "/api", "path": "/api/items",
                                          "lifespan": True}
    assert fetch_json(proc, "/api/items")["path"] == "/api/items"


def test_root_path_from_a_config_file_is_the_wsgi_script_name(process_server, tmp_path):
    args = config_args(tmp_path, "file", (), "root_path = '/api'\n")
    proc = process_server("parity_apps:wsgi_environ", *args, cwd=str(tmp_path), env=TEST_PATH)
    body = fetch_json(proc, "/api/items")
    assert (body["SCRIPT_NAME"], body["PATH_INFO"]) == ("/api", "/items")


def proxy_v1(client: str) -> bytes:
    return f"PROXY TCP4 {client} 127.0.0.1 40000 80\r\n".encode()


def proxy_v2(client: str) -> bytes:
    # haproxy's proxy-protocol.txt 2.2: signature, v2 PROXY, TCP over IPv4, 12 address bytes
    addresses = socket.inet_aton(client) + socket.inet_aton("127.0.0.1") + struct.pack(
        "!HH", 40000, 80)
    return (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(addresses))
            + addresses)


@pytest.mark.parametrize("source, mode", [("cli", "v2"), ("file", "v1")])
def test_proxy_protocol_modes_read_the_client_address(process_server, tmp_path, source, mode):
    args = config_args(tmp_path, source, ["--proxy-protocol", mode], f"proxy_protocol = {mode!r}\n")
    proc = process_server("parity_apps:wsgi_environ", *args, cwd=str(tmp_path), env=TEST_PATH)
    assert fetch_json(proc, prefix=proxy_v2("192.0.2.7"))["REMOTE_ADDR"] == "192.0.2.7"
    assert fetch_json(proc, prefix=proxy_v1("192.0.2.8"))["REMOTE_ADDR"] == "192.0.2.8"
    assert fetch_json(proc)["REMOTE_ADDR"] == "127.0.0.1"  # the header stays optional


@pytest.mark.parametrize("source", ["cli", "file"])
def test_reload_watches_the_files_a_glob_pattern_matches(process_server, tmp_path, source):
    pytest.importorskip("watchfiles", reason="watchfiles is in the test extra")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "a.html").write_text("one\n")
    args = config_args(tmp_path, source, ["--reload-extra-file", "templates/*.html"],
                       "reload_extra_files = ['templates/*.html']\n")
    proc = process_server("parity_apps:wsgi_environ", "--reload", *args, cwd=str(tmp_path),
                          env=TEST_PATH)
    before = proc.workers()
    time.sleep(0.05)
    (tmp_path / "templates" / "a.html").write_text("two\n")
    wait_for(lambda: not set(proc.workers()) & set(before), 15, what="the worker replaced")
    assert f"Worker reloading: {tmp_path / 'templates' / 'a.html'} modified" in proc.log()
