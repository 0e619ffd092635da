"""Settings: defaults, validation, every source and their precedence, gunicorn compatibility."""

import importlib.util
import os
import sys
import textwrap
from pathlib import Path

import pytest

from unicorn_aio.config.config import Config, load_config
from unicorn_aio.config.settings import BY_NAME, SETTINGS
from unicorn_aio.errors import ConfigError, ConfigFileError, UsageError

ROOT = Path(__file__).resolve().parents[2]

GUNICORN_SETTINGS = """
    config wsgi_app bind backlog workers worker_class threads worker_connections max_requests
    max_requests_jitter timeout graceful_timeout keepalive limit_request_line limit_request_fields
    limit_request_field_size reload reload_engine reload_extra_files spew check_config print_config
    preload_app sendfile reuse_port chdir daemon raw_env pidfile worker_tmp_dir user group umask
    initgroups tmp_upload_dir secure_scheme_headers forwarded_allow_ips accesslog
    disable_redirect_access_to_syslog access_log_format errorlog loglevel capture_output
    logger_class logconfig logconfig_dict logconfig_json syslog_addr syslog syslog_prefix
    syslog_facility enable_stdio_inheritance statsd_host dogstatsd_tags statsd_prefix proc_name
    default_proc_name pythonpath paste on_starting on_reload when_ready pre_fork post_fork
    post_worker_init worker_int worker_abort pre_exec pre_request post_request child_exit
    worker_exit nworkers_changed on_exit ssl_context proxy_protocol proxy_allow_ips keyfile
    certfile ssl_version cert_reqs ca_certs suppress_ragged_eofs do_handshake_on_connect ciphers
    raw_paste_global_conf permit_obsolete_folding strip_header_spaces
    permit_unconventional_http_method permit_unconventional_http_version casefold_http_method
    forwarder_headers header_map
""".split()


def load(argv=(), environ=None):
    return load_config(list(argv), {} if environ is None else environ)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Each test in its own directory, so ./gunicorn.conf.py discovery sees only its own files."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return str(path)


# -- defaults --------------------------------------------------------------------------------------


def test_every_gunicorn_setting_is_known():
    assert [n for n in GUNICORN_SETTINGS if n not in BY_NAME] == []


def test_defaults_match_gunicorn():
    cfg = Config({})
    assert cfg.bind == ["127.0.0.1:8000"]
    assert (cfg.workers, cfg.threads, cfg.worker_class) == (1, 1, "sync")
    assert (cfg.timeout, cfg.graceful_timeout, cfg.keepalive) == (30, 30, 2)
    assert (cfg.limit_request_line, cfg.limit_request_fields, cfg.limit_request_field_size) == (
        4094, 100, 8190)
    assert (cfg.backlog, cfg.worker_connections, cfg.max_requests) == (2048, 1000, 0)
    assert cfg.access_log_format == '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
    assert cfg.forwarded_allow_ips == ["127.0.0.1", "::1"]
    assert cfg.proxy_allow_ips == ["127.0.0.1", "::1"]
    assert cfg.secure_scheme_headers == {
        "X-FORWARDED-PROTOCOL": "ssl", "X-FORWARDED-PROTO": "https", "X-FORWARDED-SSL": "on"}
    assert (cfg.loglevel, cfg.errorlog, cfg.accesslog) == ("info", "-", None)
    assert (cfg.uid, cfg.gid, cfg.umask) == (os.geteuid(), os.getegid(), 0)
    assert cfg.chdir == os.getcwd()
    assert cfg.header_map == "drop" and cfg.forwarder_headers == ["SCRIPT_NAME", "PATH_INFO"]
    assert cfg.warnings == [] and cfg.app_uri is None and cfg.config is None


def test_our_defaults():
    cfg = Config({})
    assert (cfg.dispatch, cfg.interface, cfg.lifespan) == ("threads", "auto", "auto")
    assert (cfg.header_timeout, cfg.body_timeout, cfg.max_worker_memory) == (10, 30, 0)
    assert (cfg.access_log_json, cfg.inline_body_max, cfg.websocket_max_size) == (
        False, 65536, 16 * 1024 * 1024)


def test_default_hooks_do_nothing():
    cfg = Config({})
    assert cfg.on_starting(None) is None
    assert cfg.post_fork(None, None) is None
    assert cfg.post_request(None, None, None, None) is None
    assert cfg.nworkers_changed(None, 2, None) is None
    assert cfg.ssl_context(cfg, lambda: "ctx") == "ctx"


def test_environment_defaults():
    cfg = Config({"PORT": "5000", "WEB_CONCURRENCY": "3", "FORWARDED_ALLOW_IPS": "10.0.0.1"})
    assert cfg.bind == ["0.0.0.0:5000"]
    assert cfg.workers == 3
    assert cfg.forwarded_allow_ips == ["10.0.0.1"]
    assert cfg.explicit == set()


def test_bad_environment_default_names_the_variable():
    with pytest.raises(ConfigError, match=r"WEB_CONCURRENCY='lots'.*workers"):
        Config({"WEB_CONCURRENCY": "lots"})


def test_sendfile_follows_environment_unless_disabled():
    assert Config({}).sendfile is True
    assert Config({"SENDFILE": "0"}).sendfile is False
    assert Config({"SENDFILE": "1"}, sendfile=False).sendfile is False


def test_mount_point_reads_the_environment_config_was_given(monkeypatch):
    monkeypatch.setenv("SCRIPT_NAME", "/from-os-environ")
    assert Config({"SCRIPT_NAME": "/base/"}).mount_point == "/base"
    assert Config({}).mount_point == ""
    # raw_env (-e SCRIPT_NAME=...) sets the process environment the app sees, so it counts too
    assert Config({"SCRIPT_NAME": "/base"}, raw_env=["SCRIPT_NAME=/app"]).mount_point == "/app"
    assert Config({"SCRIPT_NAME": "/base"}, root_path="/root").mount_point == "/root"


# -- validation through Config(**overrides) and set() -----------------------------------------------


def test_overrides_are_validated_and_normalized():
    cfg = Config({}, bind="0.0.0.0:80", workers="4", forwarded_allow_ips="10.0.0.0/8, *",
                 secure_scheme_headers={"x-forwarded-proto": "https"}, umask="0022",
                 timeout=0.5, loglevel="DEBUG", forwarder_headers="remote_user")
    assert cfg.bind == ["0.0.0.0:80"]
    assert cfg.workers == 4
    assert cfg.forwarded_allow_ips == ["10.0.0.0/8", "*"]
    assert cfg.secure_scheme_headers == {"X-FORWARDED-PROTO": "https"}
    assert cfg.umask == 0o22
    assert cfg.timeout == 0.5
    assert cfg.loglevel == "debug"
    assert cfg.forwarder_headers == ["REMOTE_USER"]
    assert cfg.explicit >= {"bind", "workers", "timeout"}


@pytest.mark.parametrize("name, value, message", [
    ("workers", -1, "must be an integer >= 1, got -1"),
    ("workers", "two", "must be an integer >= 1, got 'two'"),
    ("workers", True, "must be an integer >= 1"),
    ("threads", 0, "must be an integer >= 1"),
    ("timeout", -3, "must be a number of seconds >= 0"),
    ("bind", "host:notaport", "'host:notaport' has an invalid port 'notaport'"),
    ("bind", ["127.0.0.1:8000", "[::1:80"], "is not a valid address"),
    ("bind", "unix:", "has no socket path"),
    ("bind", "fd://x", "is not a file descriptor number"),
    ("bind", [], "needs at least one address"),
    ("bind", ["127.0.0.1:8000", None], "must be a string, got None"),  # was an AttributeError
    ("raw_env", [None], "must be a string, got None"),
    ("loglevel", "loud", "must be one of debug, info, warning, error, critical"),
    ("dispatch", "fibers", "must be one of threads, inline"),
    ("interface", "cgi", "must be one of auto, wsgi, asgi"),
    ("lifespan", "maybe", "must be one of auto, on, off"),
    ("reload", "sometimes", "must be true or false"),
    ("forwarded_allow_ips", "10.0.0.1,proxy.local", "'proxy.local' is not an IP address"),
    ("secure_scheme_headers", ["X-FORWARDED-PROTO"], "must be a dict"),
    ("user", "no-such-user-here", "no such user 'no-such-user-here'"),
    ("chdir", "/no/such/dir", "can't chdir to '/no/such/dir'"),
    ("reload_extra_files", ["/no/such/file"], "file '/no/such/file' does not exist"),
    ("post_fork", lambda server: None, r"must accept 2 argument\(s\) \(server, worker\)"),
    ("post_fork", "os.no_such_function", "module 'os' has no attribute 'no_such_function'"),
    ("on_starting", 42, "must be a function"),
    ("strip_header_spaces", True, r"never strips header spaces \(request smuggling risk\)"),
    ("permit_obsolete_folding", True, "obsolete line folding is always refused with 400"),
])
def test_bad_values_name_the_setting(name, value, message):
    with pytest.raises(ConfigError, match=rf"invalid value for setting '{name}': .*{message}"):
        Config({}, **{name: value})


def test_unknown_setting_suggests_the_near_one():
    with pytest.raises(ConfigError, match=r"unknown setting 'wrokers' \(did you mean 'workers'\?\)"):
        Config({}, wrokers=2)


def test_set_and_attribute_assignment_validate():
    cfg = Config({})
    cfg.set("workers", "3")
    cfg.threads = 8
    assert (cfg.workers, cfg.threads) == (3, 8)
    with pytest.raises(ConfigError):
        cfg.workers = 0
    with pytest.raises(ConfigError, match="unknown setting"):
        cfg.set("nope", 1)
    with pytest.raises(AttributeError):
        cfg.nope


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)
    assert ConfigError.exit_code == 2 and ConfigFileError.exit_code == 1


def test_proxy_allow_from_is_an_alias_of_proxy_allow_ips():
    cfg = Config({}, proxy_allow_from="10.1.1.1,10.1.1.2")
    assert cfg.proxy_allow_ips == ["10.1.1.1", "10.1.1.2"]
    assert cfg.proxy_allow_from == cfg.proxy_allow_ips


def test_post_request_with_fewer_arguments_is_adapted():
    seen = []
    cfg = Config({}, post_request=lambda worker, req: seen.append((worker, req)))
    cfg.post_request("w", "r", {}, None)
    assert seen == [("w", "r")]


def test_hook_may_be_a_dotted_path():
    assert Config({}, on_exit="os.path.exists").on_exit is os.path.exists


def test_hooks_with_defaults_or_varargs_are_accepted():
    Config({}, pre_fork=lambda *args: None, when_ready=lambda server, extra=None: None)


# -- settings we accept but do not act on -----------------------------------------------------------


def test_unimplemented_settings_warn_by_name():
    cfg = Config({}, worker_tmp_dir="/dev/shm", tmp_upload_dir="/tmp", spew=True)
    assert not any("worker_tmp_dir" in w for w in cfg.warnings)  # accepted and unused
    assert any("tmp_upload_dir" in w for w in cfg.warnings)
    assert any("spew" in w for w in cfg.warnings)


def test_unimplemented_settings_left_at_default_do_not_warn():
    assert Config({}, spew=False, strip_header_spaces=False, worker_tmp_dir=None).warnings == []


def test_warnings_are_not_repeated():
    cfg = Config({}, tmp_upload_dir="/tmp", statsd_prefix="app")
    cfg.set("tmp_upload_dir", "/var/tmp")
    assert len(cfg.warnings) == 1


# -- gunicorn worker classes -------------------------------------------------------------------------


@pytest.mark.parametrize("worker_class, interface", [
    ("sync", "wsgi"),
    ("gthread", "wsgi"),
    ("gunicorn.workers.sync.SyncWorker", "wsgi"),
    ("gunicorn.workers.gthread.ThreadWorker", "wsgi"),
    ("uvicorn.workers.UvicornWorker", "asgi"),
    ("uvicorn_worker.UvicornWorker", "asgi"),
    ("asgi", "asgi"),
])
def test_worker_class_sets_the_interface(worker_class, interface):
    cfg = Config({}, worker_class=worker_class)
    assert cfg.interface == interface
    assert cfg.dispatch == "threads" and cfg.warnings == []


def test_default_worker_class_leaves_interface_to_detection():
    assert Config({}).interface == "auto"


def test_explicit_interface_wins_over_worker_class():
    assert Config({}, worker_class="sync", interface="asgi").interface == "asgi"


@pytest.mark.parametrize("worker_class", ["gevent", "eventlet", "tornado",
                                          "gunicorn.workers.ggevent.GeventWorker"])
def test_green_worker_classes_mean_an_elastic_pool_without_a_warning(worker_class):
    cfg = Config({}, worker_class=worker_class)
    assert cfg.interface == "auto"
    assert cfg.warnings == []
    assert cfg.max_threads == cfg.worker_connections  # tests/wsgi/test_green_classes.py


def test_custom_worker_class_warns():
    cfg = Config({}, worker_class="myproject.workers.Special")
    assert "not supported" in cfg.warnings[0]


# -- command line and environment ---------------------------------------------------------------------


def test_command_line():
    cfg = load(["-b", "0.0.0.0:80", "-b", "unix:/tmp/s.sock", "-w", "3", "--threads", "4",
                "--dispatch", "inline", "--interface", "wsgi", "--lifespan", "off",
                "--header-timeout", "2.5", "--body-timeout", "7", "--max-worker-memory", "512",
                "--access-log-json", "--inline-body-max", "0", "--websocket-max-size", "1024",
                "--proxy-allow-from", "10.0.0.2", "--limit-request-field_size", "100",
                "--no-sendfile", "--reuse-port", "-e", "A=1", "-e", "B=x=y", "myapp:app"])
    assert cfg.app_uri == "myapp:app"
    assert cfg.bind == ["0.0.0.0:80", "unix:/tmp/s.sock"]
    assert (cfg.workers, cfg.threads, cfg.dispatch, cfg.interface) == (3, 4, "inline", "wsgi")
    assert (cfg.lifespan, cfg.header_timeout, cfg.body_timeout) == ("off", 2.5, 7)
    assert (cfg.max_worker_memory, cfg.access_log_json, cfg.inline_body_max) == (512, True, 0)
    assert cfg.websocket_max_size == 1024 and cfg.proxy_allow_ips == ["10.0.0.2"]
    assert cfg.limit_request_field_size == 100
    assert cfg.sendfile is False and cfg.reuse_port is True
    assert cfg.env == {"A": "1", "B": "x=y"}
    assert cfg.argv[-1] == "myapp:app"


def test_options_may_follow_the_app():
    cfg = load(["myapp:app", "--workers", "2"])
    assert (cfg.app_uri, cfg.workers) == ("myapp:app", 2)


def test_command_line_errors_name_the_flag():
    with pytest.raises(ConfigError, match=r"^argument -w/--workers: must be an integer >= 1"):
        load(["-w", "-1", "app:app"])
    with pytest.raises(UsageError, match="unrecognized arguments: --frobnicate"):
        load(["--frobnicate", "app:app"])


def test_gunicorn_cmd_args_are_honoured():
    cfg = load(["app:app"], {"GUNICORN_CMD_ARGS": "--workers 5 --bind '127.0.0.1:9000'"})
    assert (cfg.workers, cfg.bind) == (5, ["127.0.0.1:9000"])


def test_env_args_errors_name_the_variable():
    with pytest.raises(ConfigError, match=r"^UNICORN_AIO_CMD_ARGS: argument -w/--workers"):
        load(["app:app"], {"UNICORN_AIO_CMD_ARGS": "-w zero"})
    with pytest.raises(UsageError, match=r"^GUNICORN_CMD_ARGS: unrecognized arguments"):
        load(["app:app"], {"GUNICORN_CMD_ARGS": "--nope"})


def test_precedence_defaults_file_gunicorn_env_ours_cli(in_tmp):
    write(in_tmp / "gunicorn.conf.py", "workers = 2\nthreads = 2\nbacklog = 2\ntimeout = 2\n")
    environ = {"WEB_CONCURRENCY": "9", "GUNICORN_CMD_ARGS": "--threads 3 --backlog 3 --timeout 3",
               "UNICORN_AIO_CMD_ARGS": "--backlog 4 --timeout 4"}
    cfg = load(["--timeout", "5", "app:app"], environ)
    assert cfg.workers == 2  # file beats the WEB_CONCURRENCY default
    assert cfg.threads == 3  # GUNICORN_CMD_ARGS beats the file
    assert cfg.backlog == 4  # UNICORN_AIO_CMD_ARGS beats GUNICORN_CMD_ARGS
    assert cfg.timeout == 5  # the command line beats everything
    (in_tmp / "gunicorn.conf.py").unlink()
    assert load([], environ).workers == 9


def test_app_falls_back_to_wsgi_app_setting(in_tmp):
    write(in_tmp / "gunicorn.conf.py", "wsgi_app = 'project.wsgi:application'\n")
    assert load([]).app_uri == "project.wsgi:application"
    assert load(["other:app"]).app_uri == "other:app"


# -- config files ------------------------------------------------------------------------------------


GUNICORN_CONF = '''
    import multiprocessing
    import os

    bind = "0.0.0.0:8080"
    workers = multiprocessing.cpu_count() * 2 + 1
    worker_class = "gthread"
    threads = 4
    timeout = 120
    keepalive = 5
    accesslog = "-"
    loglevel = "warning"
    raw_env = ["DJANGO_SETTINGS_MODULE=project.settings"]
    secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}
    forwarded_allow_ips = "*"
    HELPER_CONSTANT = os.sep  # not a setting: ignored, as gunicorn does


    def on_starting(server):
        server.log.info("starting")


    def post_fork(server, worker):
        server.log.info("Worker spawned (pid: %s)", worker.pid)


    def pre_request(worker, req):
        worker.log.debug("%s %s", req.method, req.path)


    def post_request(worker, req, environ, resp):
        pass


    def worker_exit(server, worker):
        pass
'''


def test_gunicorn_conf_with_hooks_loads_unchanged(in_tmp):
    write(in_tmp / "gunicorn.conf.py", GUNICORN_CONF)
    cfg = load(["app:app"])
    assert cfg.config == "gunicorn.conf.py"
    assert cfg.bind == ["0.0.0.0:8080"]
    assert cfg.workers == os.cpu_count() * 2 + 1
    assert (cfg.worker_class, cfg.threads, cfg.interface) == ("gthread", 4, "wsgi")
    assert (cfg.timeout, cfg.keepalive, cfg.accesslog, cfg.loglevel) == (120, 5, "-", "warning")
    assert cfg.env == {"DJANGO_SETTINGS_MODULE": "project.settings"}
    assert cfg.forwarded_allow_ips == ["*"]
    assert cfg.post_fork.__name__ == "post_fork" and cfg.post_fork.__module__ == "__config__"
    assert cfg.worker_exit.__name__ == "worker_exit"
    assert cfg.warnings == []


def test_explicit_config_file_replaces_the_default_one(in_tmp):
    write(in_tmp / "gunicorn.conf.py", "workers = 2\n")
    other = write(in_tmp / "prod.py", "workers = 7\n")
    assert load(["-c", other]).workers == 7
    assert load([f"--config=file:{other}"]).workers == 7
    assert load([], {"GUNICORN_CMD_ARGS": f"-c {other}"}).workers == 7


def test_config_from_python_module(in_tmp, monkeypatch):
    write(in_tmp / "confmod_for_test.py", "workers = 6\nbind = ['[::1]:9000']\n")
    monkeypatch.syspath_prepend(str(in_tmp))
    cfg = load(["-c", "python:confmod_for_test"])
    assert (cfg.workers, cfg.bind) == (6, ["[::1]:9000"])
    sys.modules.pop("confmod_for_test", None)


def test_config_file_bad_value_names_the_file(in_tmp):
    path = write(in_tmp / "bad.py", "workers = -1\n")
    with pytest.raises(ConfigError) as info:
        load(["-c", path])
    assert str(info.value) == f"config file {path}: workers: must be an integer >= 1, got -1"
    assert info.value.exit_code == 2


def test_config_file_syntax_error_is_one_line(in_tmp):
    path = write(in_tmp / "broken.py", "workers = 2\nbind = [\n")
    with pytest.raises(ConfigFileError, match=rf"^config file {path}, line \d+: ") as info:
        load(["-c", path])
    assert info.value.exit_code == 1 and "\n" not in str(info.value)


def test_config_file_exception_names_file_and_line(in_tmp):
    path = write(in_tmp / "raises.py", "import os\n\nworkers = int(os.environ['NOT_SET_ANYWHERE'])\n")
    with pytest.raises(ConfigFileError) as info:
        load(["-c", path])
    assert str(info.value) == f"config file {path}, line 3: KeyError: 'NOT_SET_ANYWHERE'"


def test_missing_config_file(in_tmp):
    with pytest.raises(ConfigFileError, match="config file 'nope.py' cannot be read"):
        load(["-c", "nope.py"])


def test_config_module_that_fails_to_import():
    with pytest.raises(ConfigFileError, match="config module 'no_such_conf_mod' failed to import"):
        load(["-c", "python:no_such_conf_mod"])


def test_config_file_hook_with_wrong_arity(in_tmp):
    path = write(in_tmp / "hooks.py", "def post_fork(server):\n    pass\n")
    with pytest.raises(ConfigError, match=r"hooks.py: post_fork: must accept 2 argument"):
        load(["-c", path])


def test_print_config_lists_every_setting():
    text = str(Config({}, workers=3))
    names = [line.split(" = ")[0].strip() for line in text.splitlines()]
    assert names == sorted(s.name for s in SETTINGS)
    assert "workers                            = 3" in text
    assert "post_fork                          = <post_fork()>" in text


# -- docs --------------------------------------------------------------------------------------------


def test_settings_doc_is_current():
    spec = importlib.util.spec_from_file_location("gen_settings_doc", ROOT / "tools/gen_settings_doc.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    committed = (ROOT / "docs/settings.md").read_text()
    assert committed == gen.render(), "docs/settings.md is stale: run python tools/gen_settings_doc.py"
    for setting in SETTINGS:
        assert f"### `{setting.name}`" in committed
