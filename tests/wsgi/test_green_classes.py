"""gunicorn's async worker classes (-k gevent, eventlet...) without monkey-patching: an elastic
thread pool that grows to --worker-connections threads as requests need them and shrinks back
when they are idle; -k sync and -k gthread --threads N keep a fixed pool."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import aiohttp
import pytest
from procs import ServerProcess, get, wait_for

from unicorn_aio.config.config import Config
from unicorn_aio.wsgi.threadpool import ElasticThreadPool, ThreadPool, make_pool

pytestmark = pytest.mark.timeout(60)


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


async def _concurrent_gets(url: str, count: int, timeout: float = 30) -> list[int]:
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async def one() -> int:
            async with session.get(url) as resp:
                await resp.read()
                return resp.status
        return await asyncio.gather(*(one() for _ in range(count)))


@pytest.mark.parametrize("worker_class", [
    "gevent", "eventlet", "gevent_wsgi", "gevent_pywsgi", "tornado",
    "gunicorn.workers.ggevent.GeventWorker", "gunicorn.workers.geventlet.EventletWorker"])
def test_async_classes_mean_an_elastic_pool_up_to_worker_connections(worker_class):
    cfg = Config(worker_class=worker_class, worker_connections=300)
    assert cfg.max_threads == 300 and cfg.threads == 1
    assert cfg.warnings == []
    assert cfg.worker_class_note is not None and "no monkey-patching" in cfg.worker_class_note
    assert cfg.interface == "auto"


@pytest.mark.parametrize("worker_class, threads", [("sync", 1), ("gthread", 4),
                                                   ("gunicorn.workers.gthread.ThreadWorker", 2)])
def test_sync_and_gthread_keep_a_fixed_pool(worker_class, threads):
    cfg = Config(worker_class=worker_class, threads=threads, worker_connections=300)
    assert cfg.max_threads == threads
    assert cfg.worker_class_note is None and cfg.warnings == []
    assert cfg.interface == "wsgi"


def test_gevent_worker_serves_300_sleeping_requests_at_once_then_shrinks(tmp_path):
    """The seeds' sleepy-app line: 300 requests that each sleep 1 s took over 60 s on one
    worker with one thread; gevent takes about 1 s."""
    srv = ServerProcess("concurrency_apps:app", "-w", "1", "-k", "gevent",
                        "--worker-connections", "300", log_path=str(tmp_path / "server.log"))
    try:
        srv.wait_ready()
        [worker] = srv.workers()
        idle_threads = _threads(worker)
        started = time.monotonic()
        statuses = asyncio.run(_concurrent_gets(srv.url + "/sleep?1", 300))
        elapsed = time.monotonic() - started
        assert statuses == [200] * 300
        assert elapsed < 10, f"300 concurrent 1 s requests took {elapsed:.1f} s"
        grown = _threads(worker)
        assert grown > idle_threads + 100, (idle_threads, grown)
        # The threads past --threads go once unneeded for IDLE_TIMEOUT (5 s) to twice that.
        wait_for(lambda: _threads(worker) <= idle_threads, 20,
                 what=f"threads back to {idle_threads} (now {_threads(worker)})")
        assert get(srv.url + "/sleep?0")[0] == 200  # and it serves on
        log = srv.log()
        assert "worker_class 'gevent': no monkey-patching" in log
        assert "1 to 300 thread(s) per worker" in log
        assert "WARNING" not in log and "warning" not in log.lower(), log
    finally:
        srv.stop()


def test_gthread_with_two_threads_runs_at_most_two_requests_at_once(tmp_path):
    srv = ServerProcess("concurrency_apps:app", "-w", "1", "-k", "gthread", "--threads", "2",
                        log_path=str(tmp_path / "server.log"))
    try:
        srv.wait_ready()
        started = time.monotonic()
        statuses = asyncio.run(_concurrent_gets(srv.url + "/overlap?0.3", 6))
        assert statuses == [200] * 6
        assert time.monotonic() - started >= 0.85  # three rounds of two
        assert get(srv.url + "/max")[1] == b"2"
        assert "no monkey-patching" not in srv.log()
    finally:
        srv.stop()


# -- the pool itself, on a loop of the test's -------------------------------------------------

def test_make_pool_is_fixed_unless_the_max_is_larger():
    loop = asyncio.new_event_loop()
    try:
        assert type(make_pool(loop, 2)) is ThreadPool
        assert type(make_pool(loop, 2, 2)) is ThreadPool
        pool = make_pool(loop, 2, 8)
        assert isinstance(pool, ElasticThreadPool) and pool.max_size == 8
    finally:
        loop.close()


def _alive(name: str) -> int:
    return sum(t.name.startswith(name + "-") for t in threading.enumerate())


async def _run_blocked(pool: ThreadPool, count: int, release: threading.Event,
                       finished: list) -> None:
    """Submit ``count`` work items that block until ``release``; each reports back."""
    def work() -> None:
        release.wait(10)
        pool.call_on_loop(done)

    def done() -> None:
        pool.task_done()
        finished.append(1)

    for _ in range(count):
        pool.submit(work)


async def test_elastic_pool_grows_to_its_max_and_no_further():
    pool = ElasticThreadPool(asyncio.get_running_loop(), 1, 5, name="grow", idle_timeout=60)
    release, finished = threading.Event(), []
    try:
        await _run_blocked(pool, 8, release, finished)
        await asyncio.sleep(0.1)
        assert _alive("grow") == 5
        release.set()
        for _ in range(100):
            if len(finished) == 8:
                break
            await asyncio.sleep(0.02)
        assert len(finished) == 8 and pool.in_flight == 0  # the 3 queued ran on the 5
    finally:
        release.set()
        pool.shutdown(timeout=5)


async def test_elastic_pool_shrinks_to_its_size_when_idle_and_grows_again():
    pool = ElasticThreadPool(asyncio.get_running_loop(), 2, 20, name="shrink", idle_timeout=0.2)
    release, finished = threading.Event(), []

    def alive() -> int:
        return _alive("shrink")
    try:
        await _run_blocked(pool, 20, release, finished)
        await asyncio.sleep(0.1)
        assert alive() == 20
        # Busy for longer than idle_timeout: no thread in use is let go.
        await asyncio.sleep(0.5)
        assert alive() == 20
        release.set()
        for _ in range(100):
            if alive() == 2:
                break
            await asyncio.sleep(0.05)
        assert alive() == 2 and len(finished) == 20
        # Work again: the pool grows again, and nothing waits on a thread that left.
        release.clear()
        await _run_blocked(pool, 10, release, finished)
        await asyncio.sleep(0.1)
        assert alive() == 10
        release.set()
        for _ in range(100):
            if len(finished) == 30:
                break
            await asyncio.sleep(0.02)
        assert len(finished) == 30
    finally:
        release.set()
        pool.shutdown(timeout=5)


async def test_trimming_keeps_a_thread_for_every_request_in_flight():
    """Load that falls from 20 to 6: the trim keeps 6 threads, and new work beyond them starts
    threads again instead of queueing behind the busy ones."""
    pool = ElasticThreadPool(asyncio.get_running_loop(), 1, 50, name="trim", idle_timeout=0.2)
    long_release, short_release, finished = threading.Event(), threading.Event(), []

    def alive() -> int:
        return _alive("trim")
    try:
        await _run_blocked(pool, 6, long_release, finished)
        await _run_blocked(pool, 14, short_release, finished)
        short_release.set()
        for _ in range(100):  # two windows without more than 6 in flight
            if alive() == 6:
                break
            await asyncio.sleep(0.05)
        assert alive() == 6 and pool.in_flight == 6
        started = time.monotonic()
        quick: list = []
        await _run_blocked(pool, 3, short_release, quick)  # released already: runs at once
        while len(quick) < 3 and time.monotonic() - started < 2:
            await asyncio.sleep(0.01)
        assert len(quick) == 3 and time.monotonic() - started < 1
    finally:
        long_release.set()
        short_release.set()
        pool.shutdown(timeout=5)
