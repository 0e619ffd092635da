"""`python -m unicorn_aio` as users run it: real processes, exit codes, one-line messages.

Only --print-config, --check-config, --help, --version and failing command lines are run, so no
server ever starts.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(30)

HELLO_APP = ("def app(environ, start_response):\n"
             "    start_response('200 OK', [('Content-Length', '2')])\n"
             "    return [b'ok']\n")


def run(*args, cwd, env=None):
    environ = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "unicorn_aio", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=20)


def settings_of(stdout):
    return {k.strip(): v for k, v in (line.split(" = ", 1) for line in stdout.splitlines())}


def single_error(proc, code):
    """The process failed with `code` and said why in one line (after a usage line at most)."""
    assert proc.returncode == code, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("usage:")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("unicorn_aio: error: ")
    assert "Traceback" not in proc.stderr
    return lines[0][len("unicorn_aio: error: "):]


def test_version(tmp_path):
    proc = run("--version", cwd=tmp_path)
    from unicorn_aio import __version__
    assert (proc.returncode, proc.stdout) == (0, f"unicorn_aio {__version__}\n")


def test_help_groups_flags_by_section(tmp_path):
    proc = run("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for heading in ("Server Socket:", "Worker Processes:", "unicorn_aio:", "Security:", "SSL:"):
        assert f"\n{heading}\n" in proc.stdout
    for flag in ("--dispatch MODE", "--interface KIND", "--lifespan MODE", "--header-timeout",
                 "--body-timeout", "--max-worker-memory MB", "--access-log-json",
                 "--inline-body-max", "--websocket-max-size", "--proxy-allow-from"):
        assert flag in proc.stdout


def test_print_config_prints_every_setting_and_exits_0(tmp_path):
    proc = run("--print-config", "-w", "3", "--dispatch", "inline", "app:app", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    values = settings_of(proc.stdout)
    assert values["workers"].strip() == "3"
    assert values["dispatch"].strip() == "inline"
    assert values["bind"].strip() == "['127.0.0.1:8000']"
    assert values["post_fork"].strip() == "<post_fork()>"
    assert len(values) > 90


@pytest.mark.parametrize("args, message", [
    (["-w", "-1"], "argument -w/--workers: must be an integer >= 1, got -1"),
    (["--workers=many"], "argument -w/--workers: must be an integer >= 1, got 'many'"),
    (["-b", "host:notaport"], "argument -b/--bind: 'host:notaport' has an invalid port 'notaport'"),
    (["--log-level", "loud"], "argument --log-level: must be one of debug, info, warning, error, "
                              "critical; got 'loud'"),
    (["--dispatch", "fibers"], "argument --dispatch: must be one of threads, inline; got 'fibers'"),
    (["--strip-header-spaces"], "argument --strip-header-spaces: unicorn_aio never strips header "
                                "spaces (request smuggling risk)"),
    (["--unknown-flag"], "unrecognized arguments: --unknown-flag"),
    (["--timeout"], "argument -t/--timeout: expected one argument"),
    (["--http-protocols", "h1,h3"], "argument --http-protocols: Invalid protocol 'h3'. Valid "
                                    "protocols: h1, h2"),  # gunicorn 27's words
    (["--http-protocols", "h2,h1,h2"], "argument --http-protocols: Duplicate protocols specified"),
    (["--control-socket-mode", "660"], "argument --control-socket-mode: '660' is 0o1224, not a "
                                       "permission mode: write it in octal with a leading 0 "
                                       "(0660 or 0o660)"),
])
def test_bad_values_exit_2_with_one_line(tmp_path, args, message):
    proc = run("app:app", *args, cwd=tmp_path)
    assert single_error(proc, 2).startswith(message)


def test_missing_app_is_a_usage_error(tmp_path):
    proc = run("-w", "2", cwd=tmp_path)
    assert "no application given" in single_error(proc, 2)
    assert proc.stderr.startswith("usage: unicorn_aio")


def test_gunicorn_cmd_args_are_honoured(tmp_path):
    proc = run("--print-config", "app:app", cwd=tmp_path,
               env={"GUNICORN_CMD_ARGS": "--workers 4 --threads 8",
                    "UNICORN_AIO_CMD_ARGS": "--threads 6"})
    values = settings_of(proc.stdout)
    assert (values["workers"].strip(), values["threads"].strip()) == ("4", "6")


def test_gunicorn_cmd_args_errors_name_the_variable(tmp_path):
    proc = run("app:app", cwd=tmp_path, env={"GUNICORN_CMD_ARGS": "--workers -2"})
    assert single_error(proc, 2).startswith("GUNICORN_CMD_ARGS: argument -w/--workers")


def test_default_config_file_with_hooks(tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text(textwrap.dedent("""\
        import multiprocessing

        bind = ["0.0.0.0:8080", "unix:/tmp/app.sock"]
        workers = 2
        worker_class = "uvicorn.workers.UvicornWorker"
        worker_tmp_dir = "/dev/shm"

        def post_fork(server, worker):
            server.log.info("Worker spawned (pid: %s)", worker.pid)

        def when_ready(server):
            pass
    """))
    proc = run("--print-config", "-w", "5", "app:app", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    values = settings_of(proc.stdout)
    assert values["bind"].strip() == "['0.0.0.0:8080', 'unix:/tmp/app.sock']"
    assert values["workers"].strip() == "5"
    assert values["interface"].strip() == "asgi"
    assert values["config"].strip() == "gunicorn.conf.py"
    assert proc.stderr == ""  # worker_tmp_dir = "/dev/shm" is harmless: no heartbeat files


def test_config_file_that_fails_exits_1_naming_file_and_line(tmp_path):
    (tmp_path / "conf.py").write_text("workers = 2\nraise RuntimeError('no database url')\n")
    proc = run("-c", "conf.py", "--print-config", "app:app", cwd=tmp_path)
    assert single_error(proc, 1) == "config file conf.py, line 2: RuntimeError: no database url"


def test_config_file_syntax_error_exits_1(tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text("workers = = 2\n")
    proc = run("--print-config", "app:app", cwd=tmp_path)
    assert single_error(proc, 1).startswith("config file gunicorn.conf.py, line 1: ")


def test_config_file_bad_value_exits_2_naming_file(tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text("loglevel = 'chatty'\n")
    proc = run("--print-config", "app:app", cwd=tmp_path)
    assert single_error(proc, 2).startswith("config file gunicorn.conf.py: loglevel: must be one of")


def test_missing_config_file_exits_1(tmp_path):
    proc = run("-c", "nowhere.py", "app:app", cwd=tmp_path)
    assert single_error(proc, 1).startswith("config file 'nowhere.py' cannot be read")


def test_check_config_loads_the_app(tmp_path):
    (tmp_path / "goodapp.py").write_text("def app(environ, start_response):\n    return []\n")
    proc = run("--check-config", "goodapp:app", cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_check_config_fails_1_on_a_broken_app(tmp_path):
    (tmp_path / "badapp.py").write_text("import no_such_module_anywhere\napp = None\n")
    proc = run("--check-config", "badapp:app", cwd=tmp_path)
    single_error(proc, 1)


INTERFACE_APPS = textwrap.dedent("""
    def wsgi(environ, start_response):
        return []

    async def asgi(scope, receive, send):
        pass

    def asgi_factory_style(scope, receive, send):  # sync, returning an awaitable: taken as is
        return asgi(scope, receive, send)

    class Flaskish:
        def __call__(self, environ, start_response):
            return []

    class Starletteish:
        async def __call__(self, scope, receive, send):
            pass

    flaskish, starletteish = Flaskish(), Starletteish()
""")


@pytest.mark.parametrize("args, app, message", [
    (("-k", "uvicorn.workers.UvicornWorker"), "wsgi",
     "app 'ifaces:wsgi': it is a WSGI app (app(environ, start_response)), but the interface is "
     "ASGI (implied by worker_class 'uvicorn.workers.UvicornWorker'; drop it or give "
     "--interface wsgi)"),
    (("--interface", "asgi"), "flaskish",
     "app 'ifaces:flaskish': it is a WSGI app (app(environ, start_response)), but the interface "
     "is ASGI (--interface asgi; give --interface wsgi or auto)"),
    (("-k", "gthread"), "asgi",
     "app 'ifaces:asgi': it is an ASGI app (async), but the interface is WSGI (implied by "
     "worker_class 'gthread'; drop it or give --interface asgi)"),
    (("--interface", "wsgi"), "starletteish",
     "app 'ifaces:starletteish': it is an ASGI app (async), but the interface is WSGI "
     "(--interface wsgi; give --interface asgi or auto)"),
])
def test_check_config_refuses_an_app_of_the_other_interface(tmp_path, args, app, message):
    (tmp_path / "ifaces.py").write_text(INTERFACE_APPS)
    proc = run("--check-config", *args, f"ifaces:{app}", cwd=tmp_path)
    assert single_error(proc, 1) == message


@pytest.mark.parametrize("args, app", [
    (("-k", "uvicorn.workers.UvicornWorker"), "asgi"), (("--interface", "asgi"), "starletteish"),
    (("--interface", "asgi"), "asgi_factory_style"), (("-k", "gthread"), "flaskish"),
    ((), "wsgi"), ((), "asgi"),
])
def test_check_config_takes_apps_that_fit_their_interface(tmp_path, args, app):
    (tmp_path / "ifaces.py").write_text(INTERFACE_APPS)
    proc = run("--check-config", *args, f"ifaces:{app}", cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_check_config_uses_chdir_and_raw_env(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "envapp.py").write_text(
        "import os\nassert os.environ['APP_MODE'] == 'test'\n"
        "def app(environ, start_response):\n    return []\n")
    proc = run("--check-config", "--chdir", str(project), "-e", "APP_MODE=test", "envapp:app",
               cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_unbalanced_quote_in_env_args_is_one_line(tmp_path):
    proc = run("app:app", cwd=tmp_path, env={"GUNICORN_CMD_ARGS": "--bind '127.0.0.1:8000"})
    assert single_error(proc, 2) == "GUNICORN_CMD_ARGS: No closing quotation"


@pytest.mark.parametrize("flag", ["--access-logfile", "--error-logfile"])
def test_a_log_file_that_cannot_open_stops_the_start(tmp_path, flag):
    # Falling back to stdout would lose the log unseen under --daemon or systemd (gunicorn
    # refuses too); a log that breaks while serving still falls back, see test_logs.
    (tmp_path / "app.py").write_text(HELLO_APP)
    proc = run("app:app", flag, str(tmp_path / "missing" / "x.log"), "--bind", "127.0.0.1:0",
               cwd=tmp_path)
    message = single_error(proc, 1)
    assert message.startswith(f"cannot open {flag[2:-8]} log ") and "No such file" in message


@pytest.mark.parametrize("args", [["--log-config", "/nonexistent.ini"],
                                  ["--log-config-json", "broken.json"]])
def test_a_bad_log_config_is_one_line(tmp_path, args):
    (tmp_path / "app.py").write_text(HELLO_APP)
    (tmp_path / "broken.json").write_text("{not json")
    for extra in ([], ["--check-config"]):
        proc = run("app:app", *args, *extra, "--bind", "127.0.0.1:0", cwd=tmp_path)
        assert "log config" in single_error(proc, 1)


FILE_CONFIG = ("[loggers]\nkeys=root\n[handlers]\nkeys=h\n[formatters]\nkeys=\n"
               "[logger_root]\nhandlers=h\n[handler_h]\n")


@pytest.mark.parametrize("name, text, reason", [
    ("handler.ini", FILE_CONFIG + "class=NoSuchHandler\nargs=()\n",
     "No module named 'NoSuchHandler'"),
    ("nosection.ini", "[loggers]\nkeys=root\n", "no section or key named 'formatters'"),
    ("garbage.ini", "garbage\n", "garbage.ini is invalid: File contains no section headers. "
                                  "file: 'garbage.ini', line: 1 'garbage\\n'"),
    ("nodir.ini", FILE_CONFIG + "class=FileHandler\nargs=('/nonexistent/x.log',)\n",
     "No such file or directory: '/nonexistent/x.log'"),
    ("handler.json", '{"version": 1, "handlers": {"h": {"class": "nope.Nope"}}}',
     "Unable to configure handler 'h': Cannot resolve 'nope.Nope': No module named 'nope'"),
])
def test_a_log_config_that_cannot_be_applied_says_why_in_one_line(tmp_path, name, text, reason):
    (tmp_path / "app.py").write_text(HELLO_APP)
    (tmp_path / name).write_text(text)
    flag = "--log-config-json" if name.endswith(".json") else "--log-config"
    for extra in ([], ["--check-config"]):
        proc = run("app:app", flag, name, *extra, "--bind", "127.0.0.1:0", cwd=tmp_path)
        assert single_error(proc, 1) == f"log config {name!r} cannot be applied: {reason}"


@pytest.mark.parametrize("hook", ["on_starting", "when_ready", "pre_fork", "post_fork"])
def test_a_failing_startup_hook_stops_the_start_in_one_line(tmp_path, hook):
    (tmp_path / "app.py").write_text(HELLO_APP)
    args = "server" if hook in ("on_starting", "when_ready") else "server, worker"
    (tmp_path / "conf.py").write_text(f"def {hook}({args}):\n    raise RuntimeError('boom')\n")
    proc = run("app:app", "-c", "conf.py", "--bind", "127.0.0.1:0", cwd=tmp_path)
    # post_fork fails in the worker: gunicorn's "worker failed to boot", exit 3
    assert proc.returncode == (3 if hook == "post_fork" else 1), proc.stderr
    assert f"{hook} hook failed: RuntimeError: boom (conf.py:2)" in proc.stderr
    assert "Traceback" not in proc.stderr


# The helper names of common config files (tiangolo's uvicorn-gunicorn image, Heroku's PORT,
# Django's settings style): module-level names that are not settings, as gunicorn allows.
HELPER_NAMES = ("import multiprocessing, os\nport = 8000\nhost = '0.0.0.0'\nenv = 'prod'\n"
                "name = 'shop'\nDEBUG = False\nWORKERS = 2\ncores = multiprocessing.cpu_count()\n"
                "cpu_count = 4\nworkers_per_core = 1.0\nmax_workers = 8\nweb_concurrency = 2\n"
                "use_loglevel = 'info'\nuse_bind = 'unix:/tmp/x'\naccesslog_var = '-'\n"
                "timeout_str = '30'\nkeepalive_str = '5'\nlog_data = {'loglevel': 'info'}\n"
                "graceful = True\nbind_host = 'a'\nlog_dir = '/var/log'\n"
                "def helper(server):\n    pass\n")


def test_a_setting_misspelt_in_a_config_file_is_warned_and_fails_check_config(tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text(HELPER_NAMES + "workerz = 3\n")
    (tmp_path / "app.py").write_text(HELLO_APP)
    proc = run("--print-config", "app:app", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ("unicorn_aio: warning: config file gunicorn.conf.py: unknown setting "
                           "'workerz' (did you mean 'workers'?); it is ignored\n")
    proc = run("--check-config", "app:app", cwd=tmp_path)
    assert single_error(proc, 1) == ("config file gunicorn.conf.py: unknown setting 'workerz' "
                                     "(did you mean 'workers'?)")


@pytest.mark.parametrize("line, meant", [
    ("workres = 2", "workers"), ("max_request = 100", "max_requests"),
    ("keep_alive = 5", "keepalive"), ("log_level = 'debug'", "loglevel"),
    ("preload = True", "preload_app"), ("error_logfile = '-'", "errorlog"),
    ("def post_frok(server, worker):\n    pass", "post_fork"),
])
def test_check_config_fails_on_each_kind_of_slip(tmp_path, line, meant):
    (tmp_path / "conf.py").write_text(line + "\n")
    (tmp_path / "app.py").write_text(HELLO_APP)
    proc = run("-c", "conf.py", "--check-config", "app:app", cwd=tmp_path)
    assert single_error(proc, 1).endswith(f"(did you mean {meant!r}?)")


def test_helper_names_in_a_config_file_pass_check_config(tmp_path):
    (tmp_path / "gunicorn.conf.py").write_text(HELPER_NAMES)
    (tmp_path / "app.py").write_text(HELLO_APP)
    proc = run("--check-config", "app:app", cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (0, "")


@pytest.mark.parametrize("args, message", [
    (["--workres", "2"], "unrecognized arguments: --workres app:app (did you mean --workers?)"),
    (["--acess-logfile=-"], "unrecognized arguments: --acess-logfile=- (did you mean "
                            "--access-logfile?)"),
    (["--zzz"], "unrecognized arguments: --zzz"),
])
def test_a_misspelt_flag_gets_did_you_mean(tmp_path, args, message):
    proc = run(*args, "app:app", cwd=tmp_path)
    assert single_error(proc, 2) == message
    proc = run("app:app", cwd=tmp_path, env={"GUNICORN_CMD_ARGS": " ".join(args)})
    assert single_error(proc, 2).startswith("GUNICORN_CMD_ARGS: unrecognized arguments: " + args[0])


def test_log_level_warn_is_warning(tmp_path):
    proc = run("--print-config", "--log-level", "WARN", "app:app", cwd=tmp_path)
    assert settings_of(proc.stdout)["loglevel"].strip() == "warning"


def test_a_missing_config_module_names_no_import_machinery(tmp_path):
    proc = run("-c", "python:no_such_conf_module", "app:app", cwd=tmp_path)
    message = single_error(proc, 1)
    assert "no_such_conf_module" in message and "frozen" not in message


@pytest.mark.parametrize("worker_class, message", [
    ("gthraed", "worker_class 'gthraed' is not a gunicorn worker class (did you mean 'gthread'?); "
                "use sync, gthread, asgi, gevent, eventlet, tornado or a dotted path to a class"),
    ("nosuchmod.Worker", "worker_class 'nosuchmod.Worker' cannot be loaded: ModuleNotFoundError: "
                         "No module named 'nosuchmod'"),
    ("gunicorn.workers.gthread.ThreadWorkr", "worker_class 'gunicorn.workers.gthread.ThreadWorkr' "
     "cannot be loaded (did you mean 'gunicorn.workers.gthread.ThreadWorker'?): "
     "ModuleNotFoundError: No module named 'gunicorn'"),
])
def test_a_worker_class_gunicorn_could_not_load_stops_the_start_in_one_line(tmp_path,
                                                                            worker_class, message):
    # gunicorn exits 1 on a worker class it cannot load; we used to warn and serve on.
    (tmp_path / "app.py").write_text(HELLO_APP)
    assert single_error(run("-k", worker_class, "--check-config", "app:app", cwd=tmp_path),
                        1) == message
    proc = run("-k", worker_class, "-b", "127.0.0.1:0", "--no-control-socket", "app:app",
               cwd=tmp_path)
    assert single_error(proc, 1) == message


@pytest.mark.parametrize("worker_class", ["gthread", "#gthread", "egg:gunicorn#sync", "gevent",
                                          "mywork.Special"])
def test_gunicorns_worker_classes_and_custom_ones_that_import_pass(tmp_path, worker_class):
    (tmp_path / "app.py").write_text(HELLO_APP)
    (tmp_path / "mywork.py").write_text("class Special:\n    pass\n")
    proc = run("-k", worker_class, "--check-config", "app:app", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    custom = worker_class == "mywork.Special"
    assert ("own worker is used" in proc.stderr) == custom, proc.stderr


def test_a_missing_module_of_a_config_package_is_named_not_our_line(tmp_path):
    (tmp_path / "confpkg").mkdir()
    (tmp_path / "confpkg" / "__init__.py").write_text("")
    proc = run("-c", "python:confpkg.nosuch", "app:app", cwd=tmp_path)
    assert single_error(proc, 1) == ("config module 'confpkg.nosuch' failed to import: "
                                     "ModuleNotFoundError: No module named 'confpkg.nosuch'")


@pytest.mark.parametrize("app, message", [
    ("app:", "app 'app:': cannot parse '' (nothing after ':'); expected module:callable, "
             "e.g. app:app"),
    ("app.py:app", "app 'app.py:app': no module named 'app.py' (looked in {cwd} and the Python "
                   "path); did you mean 'app:app'?"),
])
def test_app_spec_slips_are_one_line_with_gunicorns_hint(tmp_path, app, message):
    # The module has `application` too: "app:" used to load it (gunicorn: Failed to parse '').
    (tmp_path / "app.py").write_text(HELLO_APP + "application = app\n")
    message = message.format(cwd=tmp_path)
    assert single_error(run("--check-config", app, cwd=tmp_path), 1) == message


def test_control_socket_mode_is_octal_in_help_and_values(tmp_path):
    assert "0660 its group too. [0600]" in " ".join(run("--help", cwd=tmp_path).stdout.split())
    for mode in ("0660", "0o660"):
        proc = run("--print-config", "--control-socket-mode", mode, "app:app", cwd=tmp_path)
        assert settings_of(proc.stdout)["control_socket_mode"].strip() == str(0o660)


def test_a_long_flag_with_one_dash_is_named(tmp_path):
    # -workers is -w "orkers" to argparse, and then "3" is stray: say which flag was meant.
    proc = run("app:app", "-workers", "3", cwd=tmp_path)
    assert single_error(proc, 2) == ("unrecognized arguments: 3 (did you mean --workers? long "
                                     "flags take two dashes)")
