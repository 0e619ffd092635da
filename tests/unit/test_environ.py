"""The WSGI environ (wsgi/environ.py) for given request bytes, built by the real classes: the
bytes go over a real 127.0.0.1 socket into an ``HttpProtocol`` (with no ``Server``: a stand-in
host keeps its connections), and each parsed request's environ is built by a ``WSGICycle`` - no
app runs.

Trusted-proxy keys are left to the forwarded tests: what they read is moving.
"""

from __future__ import annotations

import asyncio
from functools import partial

import pytest

from unicorn_aio.config.config import Config
from unicorn_aio.http.options import HttpOptions
from unicorn_aio.http.protocol import HttpProtocol
from unicorn_aio.http.response import ServerHeaders
from unicorn_aio.http.services import HostServices
from unicorn_aio.log import logger_for
from unicorn_aio.wsgi import environ as environ_module
from unicorn_aio.wsgi.handler import WSGICycle, WSGIHandler
from unicorn_aio.wsgi.threadpool import ThreadPool


def app(environ, start_response):  # never called: the environ is built, the app not run
    raise AssertionError("the app is not run here")


class Host:
    """The connections' host (http/contract.ConnectionHost) where no Server runs."""

    shutting_down = False

    def __init__(self, loop, log) -> None:
        self.loop, self.log = loop, log
        self.services = HostServices(log)
        self.services.loop = loop

    def connection_made(self, conn) -> None:
        pass

    def connection_lost(self, conn) -> None:
        pass

    def request_refused(self, status, seconds, peer, line) -> None:
        pass


class EnvironOnly:
    """The connections' handler for these tests: builds each request's environ, as
    WSGIHandler.start's cycle would before calling the app, and hands it over."""

    eof_is_disconnect = False

    def __init__(self, wsgi: WSGIHandler) -> None:
        self.wsgi = wsgi
        self.loop_callback = wsgi.loop_callback
        self.environs: asyncio.Queue = asyncio.Queue()

    def start(self, protocol, req) -> None:
        self.environs.put_nowait(WSGICycle(self.wsgi, protocol, req).build_environ())


@pytest.fixture
async def environ_for():
    """``await environ_for(raw, **settings)`` -> (environ, client (host, port), server port)."""
    listeners, writers = [], []

    async def build(raw: bytes, **settings):
        loop = asyncio.get_running_loop()
        cfg = Config(**settings)
        log = logger_for(cfg)
        options = HttpOptions.from_config(cfg)
        handler = EnvironOnly(WSGIHandler(
            app, cfg, log=log, pool=ThreadPool(loop, cfg.threads),
            headers=ServerHeaders("unicorn_aio/test"), is_ssl=cfg.is_ssl,
            body_timeout=options.body_timeout))
        listener = await loop.create_server(partial(HttpProtocol, Host(loop, log), handler, options),
                                            "127.0.0.1", 0)
        listeners.append(listener)
        port = listener.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
        writer.write(raw)
        env = await asyncio.wait_for(handler.environs.get(), 5)
        return env, writer.get_extra_info("sockname"), port

    yield build
    for writer in writers:
        writer.close()
    for listener in listeners:
        listener.close()
        await listener.wait_closed()


async def test_request_line_and_connection(environ_for):
    env, (client_host, client_port), port = await environ_for(
        b"GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: example.org:8080\r\n\r\n")
    assert {k: env[k] for k in ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING",
                                "RAW_URI", "SERVER_PROTOCOL", "SERVER_NAME", "SERVER_PORT",
                                "REMOTE_ADDR", "REMOTE_PORT", "HTTP_HOST")} == {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/a/b",
        "QUERY_STRING": "x=1&y=%20",  # PEP 3333: the query string stays encoded
        "RAW_URI": "/a/b?x=1&y=%20", "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": str(port),
        "REMOTE_ADDR": client_host, "REMOTE_PORT": str(client_port),
        "HTTP_HOST": "example.org:8080"}


async def test_wsgi_keys(environ_for):
    env, _, _ = await environ_for(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert env["wsgi.version"] == (1, 0)
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.run_once"] is False
    assert env["wsgi.multithread"] is False and env["wsgi.multiprocess"] is False  # 1 and 1
    assert env["wsgi.input_terminated"] is True  # wsgi.input ends at the body's end
    assert env["SERVER_SOFTWARE"].startswith("unicorn_aio/")
    assert callable(env["wsgi.file_wrapper"])


async def test_multithread_with_threads(environ_for):
    env, _, _ = await environ_for(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", threads=4)
    assert env["wsgi.multithread"] is True


async def test_headers(environ_for):
    env, _, _ = await environ_for(
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
        b"X-Custom: one\r\nx-custom: two\r\nAccept-Language: fr\r\n\r\nhello")
    # PEP 3333 / CGI: Content-Type and Content-Length without HTTP_; the rest HTTP_, dash to
    # underscore; 9110 5.3: a repeated field is one comma-separated list.
    assert env["CONTENT_TYPE"] == "text/plain" and env["CONTENT_LENGTH"] == "5"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["HTTP_X_CUSTOM"] == "one,two"
    assert env["HTTP_ACCEPT_LANGUAGE"] == "fr"
    assert env["wsgi.input"].read() == b"hello"


async def test_underscore_header_never_poses_as_a_dash_one(environ_for):
    env, _, _ = await environ_for(
        b"GET / HTTP/1.1\r\nHost: t\r\nX_Real_IP: 6.6.6.6\r\nX-Other: 1\r\n\r\n")
    assert "HTTP_X_REAL_IP" not in env and env["HTTP_X_OTHER"] == "1"


async def test_obs_text_value_as_latin1(environ_for):
    env, _, _ = await environ_for(b"GET / HTTP/1.1\r\nHost: t\r\nX-A: caf\xe9\r\n\r\n")
    assert env["HTTP_X_A"] == "caf\xe9"  # PEP 3333: native strings hold latin-1 bytes


@pytest.mark.parametrize("target, path_info, query", [
    (b"/caf%C3%A9/x%2Fy", "/caf\xc3\xa9/x/y", ""),  # decoded bytes as latin-1, %2F too (gunicorn)
    (b"/a%20b?c=%20", "/a b", "c=%20"),
    (b"http://example.org/p/q?r=1", "/p/q", "r=1"),  # 9112 3.2.2: absolute-form, path only
    (b"http://example.org", "/", ""),
    (b"http://example.org?r=1", "/", "r=1"),
    (b"//a", "//a", ""),
])
async def test_path_info(environ_for, target, path_info, query):
    env, _, _ = await environ_for(b"GET " + target + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (env["PATH_INFO"], env["QUERY_STRING"]) == (path_info, query)
    assert env["RAW_URI"] == target.decode("latin-1")


async def test_asterisk_form(environ_for):
    env, _, _ = await environ_for(b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (env["REQUEST_METHOD"], env["PATH_INFO"]) == ("OPTIONS", "*")


async def test_http10_and_other_method(environ_for):
    env, _, _ = await environ_for(b"PROPFIND /dav HTTP/1.0\r\n\r\n")
    assert (env["REQUEST_METHOD"], env["SERVER_PROTOCOL"]) == ("PROPFIND", "HTTP/1.0")
    assert "HTTP_HOST" not in env


@pytest.mark.parametrize("target, script_name, path_info", [
    (b"/app/x", "/app", "/x"),
    (b"/app", "/app", ""),
    (b"/app/", "/app", "/"),
    (b"/application", "", "/application"),  # a "/" bounds the mount point
    (b"/other", "", "/other"),
])
async def test_root_path(environ_for, target, script_name, path_info):
    env, _, _ = await environ_for(b"GET " + target + b" HTTP/1.1\r\nHost: t\r\n\r\n",
                                  root_path="/app/")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == (script_name, path_info)


# -- split_target: RAW_URI, PATH_INFO and QUERY_STRING, kept for repeated targets --------------

@pytest.mark.parametrize("url, expected", [
    (b"/", ("/", "/", "")),
    (b"/a/b?x=1&y=2", ("/a/b?x=1&y=2", "/a/b", "x=1&y=2")),
    (b"/caf%C3%A9?q=%20", ("/caf%C3%A9?q=%20", "/caf\xc3\xa9", "q=%20")),
    (b"/p#frag", ("/p#frag", "/p", "")),
    (b"http://example.com/x?y", ("http://example.com/x?y", "/x", "y")),
    (b"http://example.com", ("http://example.com", "/", "")),
    (b"*", ("*", "*", "")),
])
def test_split_target(url, expected):
    assert environ_module.split_target(url) == expected
    assert environ_module.split_target(url) == expected  # from the cache this time


def test_split_target_cache_is_bounded_and_skips_long_targets():
    cache = environ_module._TARGETS
    for n in range(environ_module._TARGETS_MAX + 10):
        environ_module.split_target(b"/n%d" % n)
    assert 0 < len(cache) <= environ_module._TARGETS_MAX
    long = b"/" + b"x" * environ_module._TARGET_KEPT
    assert environ_module.split_target(long)[1] == long.decode()
    assert long not in cache
