"""Shared fixtures: an in-process Server on the test's loop, and a raw HTTP/1.1 client.

The raw client exists because aiohttp normalises exactly what the protocol tests look at
(framing, pipelining, malformed bytes); it parses responses strictly from the wire.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import tempfile

import pytest
import uvloop

import unicorn_aio
from unicorn_aio import Server


def _stale_builds() -> list[str]:
    """Sources changed since the compiled build (make compile) was made: the build is what
    imports, so the suite would test the old code."""
    package = os.path.dirname(os.path.abspath(unicorn_aio.__file__))
    library = glob.glob(os.path.join(package, "_compiled__mypyc.*.so"))  # all compiled code
    if not library:
        return []
    built = os.path.getmtime(library[0])
    return [os.path.relpath(source, os.path.dirname(package))
            for shim in glob.glob(os.path.join(package, "**", "*.so"), recursive=True)
            if os.path.exists(source := os.path.join(
                os.path.dirname(shim), os.path.basename(shim).split(".")[0] + ".py"))
            and os.path.getmtime(source) > built]


def pytest_configure(config):
    config.addinivalue_line("markers", "both_loops: run the async test under asyncio and uvloop")
    # Servers the tests start open their default control socket here, not in the user's
    # runtime directory, where another test run (or a real server) may have one already.
    os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="ua-run-")
    stale = _stale_builds()
    if stale:
        pytest.exit(f"{', '.join(stale)} changed since the request path was compiled: "
                    "run make compile (or make pure, to test it interpreted)", returncode=2)


def pytest_report_header(config):
    return "unicorn_aio request path: " + ("compiled (mypyc)" if unicorn_aio.compiled()
                                          else "interpreted")


def pytest_unconfigure(config):
    shutil.rmtree(os.environ["XDG_RUNTIME_DIR"], ignore_errors=True)


def pytest_asyncio_loop_factories(config, item):
    # uvloop is the production loop; the default loop is what embedders may use.
    if item.get_closest_marker("both_loops"):
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


@pytest.fixture
async def start_server():
    """``await start_server(app, **settings)`` -> a running Server; shut down after the test."""
    started = []

    async def start(app, **settings):
        settings.setdefault("bind", "127.0.0.1:0")
        server = Server(app, **settings)
        task = asyncio.create_task(server.serve())
        started.append((server, task))
        await asyncio.wait_for(server.ready.wait(), 5)
        host, port = server.addresses[0].rsplit(":", 1)
        server.host, server.port = host, int(port)
        return server

    yield start
    for server, task in started:
        await asyncio.wait_for(server.shutdown(timeout=2), 10)
        await asyncio.wait_for(task, 5)


@pytest.fixture
def process_server(tmp_path):
    """``start(app, *args, workers=1, ready=True, **kw)`` -> a ``python -m unicorn_aio`` in its
    own session (procs.ServerProcess), logging to tmp_path; every one is stopped after the test."""
    from procs import ServerProcess

    started = []

    def start(app, *args, workers=1, ready=True, **kw):
        kw.setdefault("log_path", str(tmp_path / f"server{len(started)}.log"))
        proc = ServerProcess(app, *args, **kw)
        started.append(proc)
        return proc.wait_ready(workers) if ready else proc

    yield start
    for proc in started:
        proc.stop()
        assert proc.proc.returncode is not None
