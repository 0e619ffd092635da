"""unicorn_aio.log: access lines as gunicorn prints them, log configs, reopen, failure handling.

Expected access lines are written out by hand from gunicorn's glogging semantics (atoms(),
SafeAtoms, now(), _get_user), for a clock pinned at 1700000000 = 2023-11-14 22:13:20 UTC.
"""

import asyncio
import base64
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from types import SimpleNamespace

import pytest

from unicorn_aio.errors import LogConfigError
from unicorn_aio.log import logger as logs
from unicorn_aio.log.logger import DEFAULT_ACCESS_FORMAT, Logger, basic_auth_user, parse_syslog_address

CLOCK = 1700000000.0


@pytest.fixture(autouse=True)
def clean_logging():
    """Each test gets our loggers bare, UTC local time, and root/gunicorn loggers restored."""
    tz = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    root = logging.getLogger()
    saved_root = (list(root.handlers), root.level)
    yield
    names = [logs.ERROR_LOGGER, logs.ACCESS_LOGGER, "gunicorn.error", "gunicorn.access", "routed"]
    for lg in [logging.getLogger(n) for n in names] + [root]:
        for h in list(lg.handlers):
            if type(h).__module__.startswith("_pytest"):
                continue  # pytest attaches its capture handlers to non-propagating loggers
            lg.removeHandler(h)
            if h not in saved_root[0]:
                h.close()
        lg.disabled = False
        lg.filters.clear()
    for h in saved_root[0]:
        root.addHandler(h)
    root.setLevel(saved_root[1])
    if tz is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = tz
    time.tzset()


def make_cfg(**kw):
    cfg = dict(
        accesslog=None, errorlog="-", loglevel="info", access_log_format=DEFAULT_ACCESS_FORMAT,
        access_log_json=False, logconfig=None, logconfig_dict={}, logconfig_json=None,
        capture_output=False, disable_redirect_access_to_syslog=False, proc_name="test",
    )
    cfg.update(kw)
    return SimpleNamespace(**cfg)


def make_logger(tmp_path, **kw):
    kw.setdefault("accesslog", str(tmp_path / "access.log"))
    kw.setdefault("errorlog", str(tmp_path / "error.log"))
    log = Logger(make_cfg(**kw))
    log.clock = lambda: CLOCK
    for lg in (log.error_log, log.access_log):
        for h in [h for h in lg.handlers if type(h).__module__.startswith("_pytest")]:
            lg.removeHandler(h)  # so that the direct write path is what runs, as in production
    return log


def force_logging_path(log):
    """A filter on the access logger sends lines through logging's record machinery."""
    log.access_log.addFilter(lambda record: True)
    assert log._direct_handler() is None


def lines(path):
    with open(path) as f:
        return f.read().splitlines()


def environ(**extra):
    env = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/my/path?foo=bar",
        "PATH_INFO": "/my/path",
        "QUERY_STRING": "foo=bar",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "192.168.0.10",
        "wsgi.url_scheme": "http",
    }
    env.update(extra)
    return env


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


T = "[14/Nov/2023:22:13:20 +0000]"

# (name, format, environ, status, response headers, sent, request_time, expected line)
ACCESS_CASES = [
    (
        "combined, no referer or agent",
        DEFAULT_ACCESS_FORMAT, environ(), "200 OK", [], 1024, 0.01,
        f'192.168.0.10 - - {T} "GET /my/path?foo=bar HTTP/1.1" 200 1024 "-" "-"',
    ),
    (
        "combined with referer, agent; quotes in values are escaped",
        DEFAULT_ACCESS_FORMAT,
        environ(HTTP_REFERER="http://example.com/", HTTP_USER_AGENT='curl/8.0 "x"', RAW_URI='/a"b'),
        "404 Not Found", [], 9, 0.01,
        f'192.168.0.10 - - {T} "GET /a\\"b HTTP/1.1" 404 9 "http://example.com/" "curl/8.0 \\"x\\""',
    ),
    (
        "combined over a unix socket, a Basic auth user with a quote",
        DEFAULT_ACCESS_FORMAT, environ(REMOTE_ADDR="", HTTP_AUTHORIZATION=basic('a"b:pw')),
        "200 OK", [], 5, 0.0,
        f' - a\\"b {T} "GET /my/path?foo=bar HTTP/1.1" 200 5 "-" "-"',
    ),
    (
        "empty body: gunicorn prints b as 0",
        DEFAULT_ACCESS_FORMAT, environ(REQUEST_METHOD="HEAD"), "204 No Content", [], 0, 0.0,
        f'192.168.0.10 - - {T} "HEAD /my/path?foo=bar HTTP/1.1" 204 0 "-" "-"',
    ),
    (
        "Basic auth user",
        "%(u)s", environ(HTTP_AUTHORIZATION=basic("brk0v:secret")), "200 OK", [], 1, 0.0,
        "brk0v",
    ),
    (
        "Basic auth: scheme is case-insensitive, empty password is fine",
        "%(u)s", environ(HTTP_AUTHORIZATION="BASIC YnJrMHY6"), "200 OK", [], 1, 0.0,
        "brk0v",
    ),
    (
        "malformed Basic auth reads as -",
        "%(u)s", environ(HTTP_AUTHORIZATION="Basic ixsTtkKzIpVTncfQjbBcnoRNoDfbnaXG"), "200 OK", [], 1, 0.0,
        "-",
    ),
    (
        "Bearer token is not a user",
        "%(u)s", environ(HTTP_AUTHORIZATION="Bearer abc"), "200 OK", [], 1, 0.0,
        "-",
    ),
    (
        "request parts, sizes and durations",
        "%(m)s|%(U)s|%(q)s|%(H)s|%(s)s|%(b)s|%(B)s|%(T)s|%(D)s|%(M)s|%(L)s|%(l)s",
        environ(REQUEST_METHOD="POST"), "201 Created", [], 5, 1.234567,
        "POST|/my/path|foo=bar|HTTP/1.1|201|5|5|1|1234567|1234|1.234567|-",
    ),
    (
        "integer formatting of numeric atoms",
        "%(D)06d %(B)d %(T)d", environ(), "200 OK", [], 7, 0.000042,
        "000042 7 0",
    ),
    (
        "request headers, any case; Content-Type is not under HTTP_",
        "%({x-request-id}i)s %({X-Request-ID}i)s %({content-type}i)s %({host}i)s %({missing}i)s",
        environ(HTTP_X_REQUEST_ID="abc-1", CONTENT_TYPE="text/plain", HTTP_HOST="example.com"),
        "200 OK", [], 1, 0.0,
        "abc-1 abc-1 text/plain example.com -",
    ),
    (
        "response headers, any case, last one wins",
        "%({content-type}o)s %({Set-Cookie}o)s %({x-none}o)s",
        environ(), "200 OK", [("Content-Type", "text/html"), ("Set-Cookie", "a=1"), ("set-cookie", "b=2")], 1, 0.0,
        "text/html b=2 -",
    ),
    (
        "environ variables, any case",
        "%({REMOTE_ADDR}e)s %({wsgi.url_scheme}e)s %({nope}e)s",
        environ(), "200 OK", [], 1, 0.0,
        "192.168.0.10 http -",
    ),
    (
        "unknown atoms and literal percent",
        "%(zz)s %(X)s 100%% %(s)s", environ(), "500 Internal Server Error", [], 1, 0.0,
        "- - 100% 500",
    ),
    (
        "no RAW_URI: the request line is rebuilt from PATH_INFO and QUERY_STRING",
        "%(r)s", {k: v for k, v in environ().items() if k != "RAW_URI"}, "200 OK", [], 1, 0.0,
        "GET /my/path?foo=bar HTTP/1.1",
    ),
]


@pytest.mark.parametrize("path", ["direct", "logging"])
@pytest.mark.parametrize(
    "fmt, env, status, headers, sent, request_time, expected",
    [case[1:] for case in ACCESS_CASES],
    ids=[case[0] for case in ACCESS_CASES],
)
def test_access_line_matches_gunicorn(tmp_path, fmt, env, status, headers, sent, request_time, expected, path):
    log = make_logger(tmp_path, access_log_format=fmt)
    assert log.access_enabled
    if path == "direct":
        assert log._direct_handler() is not None
    else:
        force_logging_path(log)
    log.access(env, status, headers, sent, request_time)
    assert lines(tmp_path / "access.log") == [expected]


def test_time_and_pid_atoms(tmp_path):
    os.environ["TZ"] = "EST+5"  # POSIX: five hours west of UTC, no DST
    time.tzset()
    log = make_logger(tmp_path, access_log_format="%(t)s %(p)s")
    log.access(environ(), "200 OK", [], 1, 0.0)
    assert lines(tmp_path / "access.log") == [f"[14/Nov/2023:17:13:20 -0500] <{os.getpid()}>"]


def test_now_is_formatted_once_per_second(tmp_path):
    log = make_logger(tmp_path)
    ticks = iter([CLOCK, CLOCK + 0.5, CLOCK + 1.0])
    log.clock = lambda: next(ticks)
    first, second, third = log.now(), log.now(), log.now()
    assert first is second
    assert first == T and third == "[14/Nov/2023:22:13:21 +0000]"


def test_only_used_atoms_are_computed(tmp_path):
    log = make_logger(tmp_path)
    atoms = log.atoms(environ(), "200 OK", [], 1, 0.0)
    assert "%(h)s %(s)s" % atoms == "192.168.0.10 200"
    assert set(atoms) == {"l", "h", "s"}


@pytest.mark.parametrize("path", ["direct", "logging"])
def test_json_access_line(tmp_path, path):
    env = environ(HTTP_USER_AGENT='curl "8"', HTTP_REFERER="http://r/", HTTP_AUTHORIZATION=basic("ann:pw"))
    log = make_logger(tmp_path, access_log_json=True)
    if path == "logging":
        force_logging_path(log)
    log.access(env, "200 OK", [], 12, 0.5)
    [line] = lines(tmp_path / "access.log")
    assert json.loads(line) == {
        "remote_addr": "192.168.0.10",
        "ident": "-",
        "user": "ann",
        "time": T,
        "request": "GET /my/path?foo=bar HTTP/1.1",
        "status": "200",
        "response_length": "12",
        "referer": "http://r/",
        "user_agent": 'curl "8"',
    }


def test_json_access_line_fields_follow_the_format(tmp_path):
    log = make_logger(
        tmp_path, access_log_json=True,
        access_log_format="%(m)s %(U)s %(s)s %(D)s %({x-id}i)s %({Content-Type}o)s 100%%",
    )
    log.access(environ(HTTP_X_ID="7", PATH_INFO="/100%"), "200 OK", [("Content-Type", "text/plain")], 1, 0.25)
    [line] = lines(tmp_path / "access.log")
    assert json.loads(line) == {
        "method": "GET", "path": "/100%", "status": "200", "request_time_us": 250000,
        "request_header.x-id": "7", "response_header.Content-Type": "text/plain",
    }


def test_access_disabled_without_access_log(tmp_path):
    log = Logger(make_cfg(errorlog=str(tmp_path / "error.log")))
    assert not log.access_enabled
    log.access(environ(), "200 OK", [], 1, 0.0)  # a no-op, but must not fail


def test_access_log_to_stdout(tmp_path, capsys):
    log = Logger(make_cfg(accesslog="-", errorlog=str(tmp_path / "error.log")))
    log.clock = lambda: CLOCK
    log.access(environ(), "200 OK", [], 3, 0.0)
    assert capsys.readouterr().out == f'192.168.0.10 - - {T} "GET /my/path?foo=bar HTTP/1.1" 200 3 "-" "-"\n'


# ---- error log ---------------------------------------------------------------------------------

def test_error_log_format_and_level(tmp_path):
    log = make_logger(tmp_path, loglevel="warning")
    log.info("not shown")
    log.warning("disk at %d%%", 91)
    log.error("boom")
    out = lines(tmp_path / "error.log")
    assert len(out) == 2
    assert out[0].endswith(f"] [{os.getpid()}] [WARNING] disk at 91%")
    assert out[0][:1] == "[" and time.strptime(out[0][1:26], "%Y-%m-%d %H:%M:%S %z")
    assert out[1].endswith("[ERROR] boom")


def test_unwritable_error_log_falls_back_to_stderr(tmp_path, capsys):
    path = tmp_path / "missing-dir" / "error.log"
    log = Logger(make_cfg(errorlog=str(path)))
    log.error("still here")
    err = capsys.readouterr().err
    assert f"cannot open error log {str(path)!r}" in err
    assert "[ERROR] still here" in err


# ---- never raise into the server ---------------------------------------------------------------

def test_unwritable_access_log_warns_once_and_goes_to_stdout(tmp_path, capsys):
    path = tmp_path / "missing-dir" / "access.log"
    log = make_logger(tmp_path, accesslog=str(path))
    log.access(environ(), "200 OK", [], 1, 0.0)
    warnings = [ln for ln in lines(tmp_path / "error.log") if "[WARNING]" in ln]
    assert len(warnings) == 1 and f"cannot open access log {str(path)!r}" in warnings[0]
    assert "GET /my/path?foo=bar HTTP/1.1" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["%(h)d", "%(h", "%s %s"])
def test_broken_access_format_warns_and_uses_default(tmp_path, fmt):
    log = make_logger(tmp_path, access_log_format=fmt)
    log.access(environ(), "200 OK", [], 1, 0.0)
    warnings = [ln for ln in lines(tmp_path / "error.log") if "[WARNING]" in ln]
    assert len(warnings) == 1 and "access_log_format" in warnings[0]
    assert lines(tmp_path / "access.log") == [f'192.168.0.10 - - {T} "GET /my/path?foo=bar HTTP/1.1" 200 1 "-" "-"']


@pytest.mark.parametrize("path", ["direct", "logging"])
def test_failing_writes_warn_once_and_never_raise(tmp_path, path):
    log = make_logger(tmp_path)
    if path == "logging":
        force_logging_path(log)

    class Broken:
        def write(self, _):
            raise OSError(28, "No space left on device")

        def flush(self):
            pass

        def close(self):
            pass

    [handler] = [h for h in log.access_log.handlers if getattr(h, "unicorn_aio", False)]
    handler.stream = Broken()
    for _ in range(3):
        log.access(environ(), "200 OK", [], 1, 0.0)
    log.access({}, None, None, None, None)  # garbage in: still no exception
    warnings = [ln for ln in lines(tmp_path / "error.log") if "[WARNING]" in ln]
    assert len(warnings) == 1 and "No space left on device" in warnings[0]


# ---- reopen (USR1) -----------------------------------------------------------------------------

def test_access_lines_of_a_loop_iteration_are_written_together(tmp_path):
    """Lines wait for the loop to turn, then land in one write, in order; lines logged from an
    app thread are flushed by the loop too; and with batching off a line is written at once."""
    log = make_logger(tmp_path, access_log_format="%(U)s")
    path = tmp_path / "access.log"
    writes = []
    stream = log._access_handler.stream
    real_write = stream.write
    stream.write = lambda text: writes.append(text) or real_write(text)

    async def main():
        log.batch_access_lines(asyncio.get_running_loop())
        for n in range(5):
            log.access(environ(PATH_INFO=f"/loop{n}"), "200 OK", [], 1, 0.0)
        assert lines(path) == []  # nothing before the loop turns
        await asyncio.sleep(0)
        assert lines(path) == [f"/loop{n}" for n in range(5)]
        assert len(writes) == 1
        thread = threading.Thread(target=lambda: [
            log.access(environ(PATH_INFO=f"/thread{n}"), "200 OK", [], 1, 0.0) for n in range(3)])
        thread.start()
        thread.join()
        for _ in range(50):  # the app thread woke the loop; it flushes on its next turn
            await asyncio.sleep(0.01)
            if len(lines(path)) == 8:
                break
        assert lines(path)[5:] == ["/thread0", "/thread1", "/thread2"]
        log.access(environ(PATH_INFO="/pending"), "200 OK", [], 1, 0.0)
        log.batch_access_lines(None)  # what a shutting-down server does: flush, then direct
        assert lines(path)[-1] == "/pending"
        log.access(environ(PATH_INFO="/direct"), "200 OK", [], 1, 0.0)
        assert lines(path)[-1] == "/direct"

    asyncio.run(main())


def test_pending_access_lines_go_to_the_file_they_were_logged_for(tmp_path):
    log = make_logger(tmp_path, access_log_format="%(U)s")

    async def main():
        log.batch_access_lines(asyncio.get_running_loop())
        log.access(environ(PATH_INFO="/before"), "200 OK", [], 1, 0.0)
        os.rename(tmp_path / "access.log", tmp_path / "access.log.1")
        log.reopen_files()  # USR1 after logrotate
        log.access(environ(PATH_INFO="/after"), "200 OK", [], 1, 0.0)
        await asyncio.sleep(0)
        log.batch_access_lines(None)

    asyncio.run(main())
    assert lines(tmp_path / "access.log.1") == ["/before"]
    assert lines(tmp_path / "access.log") == ["/after"]


def test_reopen_files_after_rotation(tmp_path):
    log = make_logger(tmp_path, access_log_format="%(U)s")
    log.info("error one")
    log.access(environ(PATH_INFO="/one"), "200 OK", [], 1, 0.0)
    os.rename(tmp_path / "access.log", tmp_path / "access.log.1")
    os.rename(tmp_path / "error.log", tmp_path / "error.log.1")
    log.access(environ(PATH_INFO="/two"), "200 OK", [], 1, 0.0)  # still the renamed file
    log.reopen_files()
    log.access(environ(PATH_INFO="/three"), "200 OK", [], 1, 0.0)
    log.info("error two")
    assert lines(tmp_path / "access.log.1") == ["/one", "/two"]
    assert lines(tmp_path / "access.log") == ["/three"]
    assert lines(tmp_path / "error.log.1")[0].endswith("error one")
    assert lines(tmp_path / "error.log")[0].endswith("error two")
    log.close_on_exec()


def test_capture_output_redirects_and_reopens(tmp_path):
    errorlog = tmp_path / "error.log"
    script = textwrap.dedent(f"""
        import os, sys
        from types import SimpleNamespace
        from unicorn_aio.log.logger import Logger
        cfg = SimpleNamespace(errorlog={str(errorlog)!r}, capture_output=True, loglevel="info")
        log = Logger(cfg)
        print("from print", flush=True)
        os.write(2, b"from fd 2\\n")
        os.rename({str(errorlog)!r}, {str(errorlog) + ".1"!r})
        log.reopen_files()
        print("after reopen", flush=True)
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=20)
    assert lines(str(errorlog) + ".1") == ["from print", "from fd 2"]
    assert lines(errorlog) == ["after reopen"]


# ---- log configs -------------------------------------------------------------------------------

def test_log_config_ini_routes_access_to_file(tmp_path):
    ini = tmp_path / "logging.ini"
    ini.write_text(textwrap.dedent("""
        [loggers]
        keys=root,access

        [handlers]
        keys=file

        [formatters]
        keys=plain

        [logger_root]
        level=WARNING
        handlers=

        [logger_access]
        level=INFO
        handlers=file
        propagate=0
        qualname=unicorn_aio.access

        [handler_file]
        class=FileHandler
        formatter=plain
        args=('%(here)s/routed.log', 'a')

        [formatter_plain]
        format=INI %(message)s
    """))
    log = make_logger(tmp_path, accesslog=None, logconfig=str(ini))
    assert log.access_enabled
    log.access(environ(), "200 OK", [], 1, 0.0)
    assert lines(tmp_path / "routed.log") == [f'INI 192.168.0.10 - - {T} "GET /my/path?foo=bar HTTP/1.1" 200 1 "-" "-"']


def dict_config(path, logger_name, prefix):
    return {
        "formatters": {"plain": {"format": prefix + " %(levelname)s %(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(path), "formatter": "plain"}},
        "loggers": {logger_name: {"level": "INFO", "handlers": ["file"], "propagate": False}},
    }


def test_log_config_dict_routes_error_to_file(tmp_path):
    routed = tmp_path / "routed.log"
    log = make_logger(tmp_path, logconfig_dict=dict_config(routed, "unicorn_aio.error", "DICT"))
    log.info("hello %s", "dict")
    assert lines(routed) == ["DICT INFO hello dict"]


def test_log_config_json_routes_access_to_file(tmp_path):
    routed = tmp_path / "routed.log"
    conf = tmp_path / "logging.json"
    conf.write_text(json.dumps(dict_config(routed, "unicorn_aio.access", "JSON")))
    log = make_logger(tmp_path, accesslog=None, logconfig_json=str(conf), access_log_format="%(s)s %(U)s")
    assert log.access_enabled
    log.access(environ(), "200 OK", [], 1, 0.0)
    assert lines(routed) == ["JSON INFO 200 /my/path"]


def test_gunicorn_log_config_applies_to_our_loggers(tmp_path):
    routed = tmp_path / "routed.log"
    log = make_logger(tmp_path, accesslog=None, logconfig_dict=dict_config(routed, "gunicorn.access", "G"),
                      access_log_format="%(m)s")
    assert log.access_enabled
    log.access(environ(), "200 OK", [], 1, 0.0)
    assert lines(routed) == ["G INFO GET"]


def test_gunicorn_names_carry_our_handlers_and_level(tmp_path):
    # Flask's idiom: app.logger.handlers = logging.getLogger("gunicorn.error").handlers
    log = make_logger(tmp_path, loglevel="warning")
    app_logger = logging.getLogger("test_app")
    app_logger.propagate = False
    app_logger.handlers = logging.getLogger("gunicorn.error").handlers
    app_logger.setLevel(logging.getLogger("gunicorn.error").level)
    app_logger.warning("from the app")
    app_logger.info("below the level")
    logging.getLogger("gunicorn.access").info("into the access log")
    assert [ln.split("] ", 2)[2] for ln in lines(tmp_path / "error.log")] == ["[WARNING] from the app"]
    assert lines(tmp_path / "access.log") == ["into the access log"]
    # Set up again (HUP) with another file: the borrowed list follows, as under gunicorn.
    log.setup(make_cfg(errorlog=str(tmp_path / "error2.log"), loglevel="info"))
    app_logger.warning("after the reload")
    assert lines(tmp_path / "error2.log")[0].endswith("[WARNING] after the reload")
    assert logging.getLogger("gunicorn.error").level == logging.INFO
    app_logger.handlers = []


def test_gunicorn_names_configured_apart_are_left_so(tmp_path):
    ours, theirs = tmp_path / "ours.log", tmp_path / "theirs.log"
    conf = dict_config(ours, "unicorn_aio.error", "OURS")
    conf["handlers"]["theirs"] = {"class": "logging.FileHandler", "filename": str(theirs),
                                  "formatter": "plain"}
    conf["loggers"]["gunicorn.error"] = {"level": "INFO", "handlers": ["theirs"], "propagate": False}
    make_logger(tmp_path)  # an earlier setup lent gunicorn.error our list
    log = make_logger(tmp_path, logconfig_dict=conf)
    log.info("server line")
    logging.getLogger("gunicorn.error").info("app line")
    assert lines(ours) == ["OURS INFO server line"] and lines(theirs) == ["OURS INFO app line"]


def test_log_config_formatters_can_read_atoms_from_record_args(tmp_path):
    routed = tmp_path / "routed.log"
    conf = dict_config(routed, "unicorn_aio.access", "")
    conf["formatters"]["plain"] = {"format": "%(message)s"}
    log = make_logger(tmp_path, accesslog=None, logconfig_dict=conf)
    records = []
    log.access_log.addFilter(lambda r: records.append(r) or True)
    log.access(environ(), "200 OK", [], 1, 0.0)
    assert records[0].args["h"] == "192.168.0.10" and records[0].args["{host}i"] == "-"


@pytest.mark.parametrize("kw, message", [
    ({"logconfig": "/nonexistent/logging.ini"}, "not found"),
    ({"logconfig_json": "/nonexistent/logging.json"}, "cannot be read"),
    ({"logconfig_dict": {"handlers": {"h": {"class": "no.such.Handler"}}}}, "cannot be applied"),
])
def test_bad_log_config_is_a_clear_error(tmp_path, kw, message):
    with pytest.raises(LogConfigError, match=message):
        make_logger(tmp_path, **kw)


def test_log_config_json_must_be_json(tmp_path):
    conf = tmp_path / "logging.json"
    conf.write_text("{not json")
    with pytest.raises(LogConfigError, match="not valid JSON"):
        make_logger(tmp_path, logconfig_json=str(conf))


def test_syslog_receives_error_and_access_lines(tmp_path):
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        port = sock.getsockname()[1]
        log = make_logger(tmp_path, accesslog=None, access_log_format="%(m)s %(U)s", syslog=True,
                          syslog_addr=f"udp://127.0.0.1:{port}", syslog_facility="local0", proc_name="app:web")
        assert log.access_enabled
        log.info("up")
        log.access(environ(), "200 OK", [], 1, 0.0)
        pid = os.getpid()
        # local0 = 16, info = 6: priority 16 * 8 + 6
        assert sock.recv(4096) == f"<134>unicorn_aio.app.web.error: [{pid}] up\x00".encode()
        assert sock.recv(4096) == f"<134>unicorn_aio.app.web.access: [{pid}] GET /my/path\x00".encode()


def test_syslog_can_skip_access_lines(tmp_path):
    log = make_logger(tmp_path, accesslog=None, syslog=True, syslog_addr="udp://127.0.0.1:9",
                      disable_redirect_access_to_syslog=True)
    assert not log.access_enabled


# ---- helpers -----------------------------------------------------------------------------------

@pytest.mark.parametrize("header, user", [
    (basic("alice:pw:with:colons"), "alice"),
    ("basic YnJrMHY6", "brk0v"),
    (basic("nocolon"), None),
    ("Basic", None),
    ("Basic !!!", None),
    (None, None),
])
def test_basic_auth_user(header, user):
    assert basic_auth_user(header) == user


@pytest.mark.parametrize("addr, expected", [
    ("udp://localhost:514", ("DGRAM", ("localhost", 514))),
    ("tcp://Log.Example:6514", ("STREAM", ("log.example", 6514))),
    ("udp://[::1]:5514", ("DGRAM", ("::1", 5514))),
    ("udp://", ("DGRAM", ("localhost", 514))),
    ("unix:///dev/log", (None, "/dev/log")),
    ("unix:///dev/log#dgram", ("DGRAM", "/dev/log")),
])
def test_parse_syslog_address(addr, expected):
    socktype, address = parse_syslog_address(addr)
    assert (socktype and socktype.name.removeprefix("SOCK_"), address) == expected


def test_parse_syslog_address_rejects_garbage():
    with pytest.raises(ValueError, match="must start with"):
        parse_syslog_address("localhost:514")
    with pytest.raises(ValueError, match="not a port"):
        parse_syslog_address("udp://host:http")
