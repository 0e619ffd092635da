"""Access and error logs of a real server process, line for line against gunicorn's glogging.

The expected lines are computed here the way gunicorn's ``Logger.atoms`` + ``SafeAtoms`` compute
them for the same requests; only the time-dependent atoms (t T M D L) and the pid (p) are matched
by pattern.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import time

import aiohttp
import pytest
import yarl
from procs import ROOT, ServerProcess, get, wait_for

pytestmark = pytest.mark.timeout(60)

TESTS = os.path.join(ROOT, "tests", "support")
ENV = {"PYTHONPATH": TESTS + os.pathsep + ROOT}
FORMAT = ('%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(m)s %(U)s %(q)s %(H)s %(b)s %(B)s "%(f)s" '
          '"%(a)s" %(T)s %(M)s %(D)s %(L)s %(p)s %({x-req}i)s %({X-Resp}o)s '
          '%({wsgi.url_scheme}e)s %({remote_addr}e)s %({Missing}i)s %(nonsense)s')
MASKS = {"t": r"\[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\]", "T": r"\d+",
         "M": r"\d+", "D": r"\d+", "L": r"\d+\.\d{6}", "p": r"<\d+>"}
AUTH = "Basic " + base64.b64encode(b"alice:secret").decode()

# (method, raw target, HTTP version, request headers, body) -> (status, response headers, sent)
REQUESTS = [
    (("GET", "/hello?x=1&y=%22q%22", "1.1",
      {"Referer": "http://ref.example/p", "User-Agent": 'agent "quoted"', "Authorization": AUTH,
       "X-Req": "abc"}, b""),
     ("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5"), ("X-Resp", 'de"f')], 5)),
    (("POST", "/created", "1.1", {"User-Agent": "ua2"}, b"data"),
     ("201 Created", [("Content-Length", "7"), ("X-Resp", "made")], 7)),
    (("GET", "/nothing/%C3%A9", "1.1", {"User-Agent": "ua3"}, b""),
     ("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "4")], 4)),
    (("GET", "/empty", "1.1", {"User-Agent": "ua4", "X-Req": ""}, b""),
     ("204 No Content", [], 0)),
    (("GET", "/hello", "1.0", {"User-Agent": "ua5"}, b""),
     ("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5"), ("X-Resp", 'de"f')], 5)),
]


class SafeAtoms(dict):
    """gunicorn's: '"' escaped in str values, unknown atoms "-", {..} lookups case-insensitive."""

    def __init__(self, atoms):
        super().__init__({k: v.replace('"', '\\"') if isinstance(v, str) else v
                          for k, v in atoms.items()})

    def __getitem__(self, k):
        if k.startswith("{"):
            k = k.lower()
        return super().__getitem__(k) if k in self else "-"


def gunicorn_atoms(request, response) -> dict:
    method, target, version, headers, _ = request
    status, resp_headers, sent = response
    path, _, query = target.partition("?")
    path_info = re.sub(b"%([0-9A-F]{2})", lambda m: bytes([int(m.group(1), 16)]),
                       path.encode()).decode("latin-1")
    environ = {"REMOTE_ADDR": "127.0.0.1", "REQUEST_METHOD": method, "RAW_URI": target,
               "PATH_INFO": path_info, "QUERY_STRING": query,
               "SERVER_PROTOCOL": "HTTP/" + version, "wsgi.url_scheme": "http"}
    environ.update({"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()})
    user = base64.b64decode(headers["Authorization"][6:]).decode().split(":")[0] \
        if "Authorization" in headers else None
    atoms = {
        "h": environ["REMOTE_ADDR"], "l": "-", "u": user or "-",
        "r": f"{method} {target} HTTP/{version}", "s": status.split(None, 1)[0],
        "m": method, "U": path_info, "q": query, "H": "HTTP/" + version,
        "b": str(sent), "B": sent, "f": environ.get("HTTP_REFERER", "-"),
        "a": environ.get("HTTP_USER_AGENT", "-"),
    }
    atoms.update({k: f"\0{k}\0" for k in MASKS})
    atoms.update({"{%s}i" % k.lower(): v for k, v in headers.items()})
    atoms.update({"{%s}o" % k.lower(): v for k, v in resp_headers})
    atoms.update({"{%s}e" % k.lower(): v for k, v in environ.items()})
    return atoms


def expected_pattern(request, response) -> re.Pattern:
    line = FORMAT % SafeAtoms(gunicorn_atoms(request, response))
    parts = re.split("\0(.)\0", line)
    return re.compile("".join(re.escape(p) if i % 2 == 0 else MASKS[p]
                              for i, p in enumerate(parts)) + r"\Z")


async def send_all(port: int) -> None:
    for (method, target, version, headers, body), _ in REQUESTS:
        url = yarl.URL(f"http://127.0.0.1:{port}{target}", encoded=True)
        async with aiohttp.ClientSession(
                version=aiohttp.HttpVersion10 if version == "1.0" else aiohttp.HttpVersion11,
                skip_auto_headers=("User-Agent",)) as session:
            async with session.request(method, url, headers=headers, data=body or None) as resp:
                await resp.read()


def lines_of(path: str, count: int) -> list[str]:
    def ready():
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return None
        return lines if len(lines) >= count else None
    return wait_for(ready, 10, what=f"{count} lines in {path}")


@pytest.fixture
def servers():
    started = []

    def start(*args, **kw):
        srv = ServerProcess("access_app:app", *args, env=ENV, **kw)
        started.append(srv)
        return srv.wait_ready()
    yield start
    for srv in started:
        srv.stop()


async def test_access_lines_equal_gunicorns(servers, tmp_path):
    access = str(tmp_path / "access.log")
    srv = servers("--access-logfile", access, "--access-logformat", FORMAT,
                  log_path=str(tmp_path / "out"))
    # wait_ready's probe is a request too: its line comes first
    probe_lines = len(lines_of(access, 1))
    await send_all(srv.port)
    lines = lines_of(access, probe_lines + len(REQUESTS))[probe_lines:]
    pids = {"<%d>" % pid for pid in srv.workers()}
    for line, (request, response) in zip(lines, REQUESTS):
        assert expected_pattern(request, response).match(line), (line, request[1])
        assert re.search(r"<\d+>", line).group(0) in pids
    assert "Traceback" not in srv.log()


async def test_no_access_line_is_lost_under_load_or_at_shutdown(servers, tmp_path):
    """Lines are written once per loop iteration: every request still gets exactly one, in
    thread-pool and inline mode, including those answered just before the workers stop."""
    for dispatch in ("threads", "inline"):
        access = str(tmp_path / f"access-{dispatch}.log")
        srv = servers("--access-logfile", access, "--workers", "2", "--threads", "4",
                      "--dispatch", dispatch, log_path=str(tmp_path / f"out-{dispatch}"))
        srv.wait_ready(workers=2)
        connector = aiohttp.TCPConnector(limit=50)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def one(n):
                async with session.get(f"http://127.0.0.1:{srv.port}/hello?n={n}") as resp:
                    assert resp.status == 200
                    await resp.read()
            await asyncio.gather(*(one(n) for n in range(400)))
        assert srv.stop() == 0
        with open(access, encoding="utf-8") as f:
            numbers = re.findall(r"/hello\?n=(\d+) ", f.read())
        assert sorted(map(int, numbers)) == list(range(400)), dispatch


async def test_access_log_json(servers, tmp_path):
    access = str(tmp_path / "access.json")
    srv = servers("--access-logfile", access, "--access-logformat", FORMAT, "--access-log-json",
                  log_path=str(tmp_path / "out"))
    probe_lines = len(lines_of(access, 1))
    await send_all(srv.port)
    line = lines_of(access, probe_lines + len(REQUESTS))[probe_lines]
    got = json.loads(line)
    request, response = REQUESTS[0]
    atoms = gunicorn_atoms(request, response)
    for name in ("request_time_s", "request_time_ms", "request_time_us"):
        assert isinstance(got.pop(name), int)
    assert re.fullmatch(MASKS["L"], got.pop("request_time"))
    assert re.fullmatch(MASKS["t"], got.pop("time"))
    assert re.fullmatch(MASKS["p"], got.pop("pid"))
    # JSON carries raw values: quotes are JSON's to escape, not glogging's.
    assert got == {
        "remote_addr": "127.0.0.1", "ident": "-", "user": "alice",
        "request": atoms["r"], "status": "200", "method": "GET", "path": "/hello",
        "query": "x=1&y=%22q%22", "protocol": "HTTP/1.1", "response_length": "5",
        "bytes_sent": 5, "referer": "http://ref.example/p", "user_agent": 'agent "quoted"',
        "request_header.x-req": "abc", "response_header.X-Resp": 'de"f',
        "environ.wsgi.url_scheme": "http", "environ.remote_addr": "127.0.0.1",
        "request_header.Missing": "-", "nonsense": "-",
    }


async def test_logs_that_break_while_serving_warn_once_and_serve(servers, tmp_path):
    # At startup a log that cannot open stops the start (test_cli); once serving, losing the
    # log's directory (then USR1 from logrotate) must not stop the serving.
    logs = tmp_path / "logs"
    logs.mkdir()
    out = str(tmp_path / "out")
    srv = servers("--access-logfile", str(logs / "access.log"), "--workers", "2", log_path=out)
    srv.wait_ready(workers=2)
    (logs / "access.log").unlink()
    logs.rmdir()
    srv.signal(signal.SIGUSR1)
    # the master and each worker reopen, and say so once each
    wait_for(lambda: srv.log().count(f"cannot reopen log file {str(logs / 'access.log')!r}") == 3,
             10, what="the reopen warnings")
    await send_all(srv.port)
    assert get(srv.url + "/")[0] == 200
    assert "Traceback" not in srv.log()


INI = """\
[loggers]
keys=root,gerror,gaccess

[handlers]
keys=errfile,accfile

[formatters]
keys=plain

[logger_root]
level=WARNING
handlers=

[logger_gerror]
level=INFO
handlers=errfile
propagate=0
qualname=gunicorn.error

[logger_gaccess]
level=INFO
handlers=accfile
propagate=0
qualname=gunicorn.access

[handler_errfile]
class=FileHandler
formatter=plain
args=({err!r},)

[handler_accfile]
class=FileHandler
formatter=plain
args=({acc!r},)

[formatter_plain]
format=routed %(message)s
"""


def dict_config(err: str, acc: str) -> dict:
    return {
        "version": 1,
        "formatters": {"plain": {"format": "routed %(message)s"}},
        "handlers": {
            "errfile": {"class": "logging.FileHandler", "filename": err, "formatter": "plain"},
            "accfile": {"class": "logging.FileHandler", "filename": acc, "formatter": "plain"},
        },
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["errfile"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["accfile"], "propagate": False},
        },
    }


@pytest.mark.parametrize("kind", ["ini", "dict", "json"])
async def test_log_config_routes_records(servers, tmp_path, kind):
    err, acc = str(tmp_path / "err.log"), str(tmp_path / "acc.log")
    if kind == "ini":
        path = tmp_path / "logging.ini"
        path.write_text(INI.format(err=err, acc=acc))
        args = ["--log-config", str(path)]
    elif kind == "json":
        path = tmp_path / "logging.json"
        path.write_text(json.dumps(dict_config(err, acc)))
        args = ["--log-config-json", str(path)]
    else:
        path = tmp_path / "conf.py"
        path.write_text(f"logconfig_dict = {dict_config(err, acc)!r}\n")
        args = ["-c", str(path)]
    srv = servers(*args, log_path=str(tmp_path / "out"))
    await send_all(srv.port)
    access = lines_of(acc, len(REQUESTS) + 1)
    assert all(line.startswith("routed 127.0.0.1 - ") for line in access), access
    assert any('"POST /created HTTP/1.1" 201 7' in line for line in access)
    errors = lines_of(err, 2)
    assert any(line.startswith("routed Booting worker with pid") for line in errors), errors
    assert "Booting worker" not in srv.log()  # routed away from stderr
    time.sleep(0.1)
