"""ASGI lifespan: startup before the first request, shutdown after the last, state, failures,
in an embedded Server and in a real worker process."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from procs import ServerProcess, wait_for

from unicorn_aio import Server
from unicorn_aio.asgi.lifespan import LifespanFailure


def recording_app(events: list, startup_reply="lifespan.startup.complete"):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    events.append("startup")
                    scope["state"]["db"] = "connected"
                    await send({"type": startup_reply, "message": "no database"})
                    if startup_reply.endswith("failed"):
                        return
                else:
                    events.append("shutdown")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        events.append(f"request {scope['path']} state={scope['state'].get('db')}")
        await asyncio.sleep(0.3)  # in flight when shutdown begins
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        events.append(f"response {scope['path']}")
    return app


async def test_startup_before_first_request_shutdown_after_last(start_server):
    events = []
    server = await start_server(recording_app(events))
    assert events == ["startup"]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{server.port}/a") as resp:
            assert await resp.text() == "ok"
        # A request still in flight when shutdown starts finishes before lifespan shutdown.
        pending = asyncio.create_task(session.get(f"http://127.0.0.1:{server.port}/b"))
        await asyncio.sleep(0.1)
        await server.shutdown(timeout=5)
        resp = await pending
        assert resp.status == 200 and await resp.text() == "ok"
    assert events == ["startup", "request /a state=connected", "response /a",
                      "request /b state=connected", "response /b", "shutdown"]


async def test_state_is_copied_per_request(start_server):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await receive()
            scope["state"]["counter"] = 0
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        scope["state"]["counter"] += 1  # a request's changes stay in its own copy
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(scope["state"]["counter"]).encode()})

    server = await start_server(app)
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            async with session.get(f"http://127.0.0.1:{server.port}/") as resp:
                assert await resp.text() == "1"


async def test_startup_failed_stops_the_server():
    events = []
    server = Server(recording_app(events, "lifespan.startup.failed"), bind="127.0.0.1:0")
    with pytest.raises(LifespanFailure, match="no database"):
        await server.serve()
    assert events == ["startup"]


async def test_auto_mode_treats_a_raising_app_as_unsupported(start_server, caplog):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"unsupported scope {scope['type']}")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"served"})

    with caplog.at_level(logging.INFO):
        server = await start_server(app)
    assert any("lifespan" in r.getMessage() and "unsupported" in r.getMessage()
               and r.levelno == logging.INFO for r in caplog.records)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{server.port}/") as resp:
            assert await resp.text() == "served"

    strict = Server(app, bind="127.0.0.1:0", lifespan="on")
    with pytest.raises(LifespanFailure, match="ValueError"):
        await strict.serve()


async def test_lifespan_off_never_calls_the_app_with_lifespan(start_server):
    scopes = []

    async def app(scope, receive, send):
        scopes.append(scope["type"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    server = await start_server(app, lifespan="off")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{server.port}/") as resp:
            assert resp.status == 204
    assert scopes == ["http"]


def test_worker_startup_failure_halts_the_master(tmp_path):
    proc = ServerProcess("asgi_apps:failing_startup", log_path=str(tmp_path / "server.log"))
    try:
        wait_for(lambda: proc.proc.poll() is not None, 20, what="the master to halt")
        log = proc.log()
        assert "ASGI lifespan startup failed: database unreachable" in log
        assert "Worker failed to boot" in log  # exit code WORKER_BOOT_ERROR: the master halts
        assert proc.proc.returncode != 0
    finally:
        proc.stop()


def test_a_startup_that_never_ends_is_a_boot_failure_named_as_such(tmp_path):
    # The loop answers meanwhile: not a hung worker to kill and reboot for ever, but a boot
    # that did not finish within --timeout.
    proc = ServerProcess("asgi_apps:endless_startup", "--timeout", "2",
                         log_path=str(tmp_path / "server.log"))
    try:
        wait_for(lambda: proc.proc.poll() is not None, 20, what="the master to halt")
        log = proc.log()
        assert "the app's startup did not finish within --timeout (2s)" in log
        assert "WORKER TIMEOUT" not in log
        assert proc.proc.returncode == 3
    finally:
        proc.stop()
