"""The app thread pool (wsgi/threadpool.py), with real threads on a real event loop: work goes
out in batches once per loop iteration, in order; results come back through call_on_loop with
one loop wakeup for however many arrive together.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import threading
import time

import pytest

from unicorn_aio.wsgi.threadpool import ThreadPool

_names = itertools.count()


def pool_threads(pool: ThreadPool) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(pool.name + "-")]


@pytest.fixture
async def make_pool():
    """``make_pool(size)`` -> a ThreadPool on the test's loop, its threads named for this test
    alone; each is shut down (threads joined) after the test."""
    pools = []

    def make(size: int = 1) -> ThreadPool:
        pool = ThreadPool(asyncio.get_running_loop(), size, name=f"unit-pool-{next(_names)}")
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.shutdown(wait=True, timeout=5)


async def until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("size", [0, -1])
def test_size_below_one_refused(size):
    with pytest.raises(ValueError, match=f"thread pool size must be at least 1, got {size}"):
        ThreadPool(None, size)


async def test_no_thread_before_the_first_submit(make_pool):
    # A worker that never dispatches (inline, ASGI) pays for no thread, and none exist at fork.
    pool = make_pool(4)
    await asyncio.sleep(0.01)
    assert pool_threads(pool) == []


async def test_submit_runs_on_an_app_thread(make_pool):
    pool = make_pool()
    loop = asyncio.get_running_loop()
    ran = loop.create_future()
    pool.submit(lambda: pool.call_on_loop(ran.set_result, threading.current_thread().name))
    assert await asyncio.wait_for(ran, 5) == pool.name + "-0"


async def test_submit_is_handed_over_on_the_next_loop_iteration(make_pool):
    # Batched: a request parsed mid-iteration does not wake an app thread to fight the loop
    # thread for the GIL; the batch goes out in one call_soon.
    pool = make_pool()
    ran = threading.Event()
    pool.submit(ran.set)
    assert not ran.wait(0.1)  # the loop has not iterated: nothing went out
    await asyncio.sleep(0)
    assert await asyncio.to_thread(ran.wait, 5)


async def test_work_runs_in_submission_order(make_pool):
    pool = make_pool(1)
    order: list[int] = []
    done = threading.Event()
    for i in range(50):
        pool.submit(lambda i=i: order.append(i))
        if i % 7 == 0:
            await asyncio.sleep(0)  # several batches, not one
    pool.submit(done.set)
    assert await asyncio.to_thread(done.wait, 5)
    assert order == list(range(50))


async def test_threads_start_as_needed_up_to_size(make_pool):
    pool = make_pool(3)
    release = threading.Event()
    running = threading.Semaphore(0)

    def work():
        running.release()
        release.wait(5)

    for _ in range(10):
        pool.submit(work)
    await asyncio.sleep(0)
    for _ in range(3):
        assert await asyncio.to_thread(running.acquire, True, 5)
    assert len(pool_threads(pool)) == 3
    release.set()


async def test_an_idle_thread_is_reused(make_pool):
    pool = make_pool(4)
    for _ in range(5):
        done = threading.Event()
        pool.submit(done.set)
        assert await asyncio.to_thread(done.wait, 5)
        pool.task_done()
    assert [t.name for t in pool_threads(pool)] == [pool.name + "-0"]


async def test_threads_are_daemons(make_pool):
    pool = make_pool(1)
    done = threading.Event()
    pool.submit(done.set)
    assert await asyncio.to_thread(done.wait, 5)
    assert all(t.daemon for t in pool_threads(pool))


async def test_in_flight_counts_submitted_until_task_done(make_pool):
    pool = make_pool(2)
    seen: list[int] = []
    pool.on_load_change = lambda: seen.append(pool.in_flight)
    pool.submit(lambda: None)
    pool.submit(lambda: None)
    assert pool.in_flight == 2
    pool.task_done()
    pool.task_done()
    assert pool.in_flight == 0
    # Told when it fills up and when a thread comes free, not at every change: the server's
    # busy-aware accepting looks only at whether it is full.
    assert seen == [2, 1]


async def test_load_change_is_told_only_when_full_or_free_again(make_pool):
    pool = make_pool(1)
    seen: list[int] = []
    pool.on_load_change = lambda: seen.append(pool.in_flight)
    for _ in range(3):  # a batch under load: full from the first, past full after it
        pool.submit(lambda: None)
    for _ in range(3):
        pool.task_done()
    assert seen == [1, 0]


async def test_in_flight_is_not_lowered_by_the_thread_finishing(make_pool):
    # Only task_done (the whole request, response included) lowers it: the app returning is not
    # the request being done.
    pool = make_pool(1)
    done = threading.Event()
    pool.submit(done.set)
    assert await asyncio.to_thread(done.wait, 5)
    await asyncio.sleep(0.01)
    assert pool.in_flight == 1


async def test_call_on_loop_runs_on_the_loop_thread_with_args(make_pool):
    pool = make_pool()
    loop = asyncio.get_running_loop()
    got = loop.create_future()
    pool.submit(lambda: pool.call_on_loop(
        lambda a, b: got.set_result((a, b, threading.get_ident())), 1, "two"))
    assert await asyncio.wait_for(got, 5) == (1, "two", threading.get_ident())


async def test_callbacks_queued_before_the_drain_run_in_it(make_pool):
    # Callbacks queued before the drain runs are run by it: c runs before b, which was
    # scheduled between them.
    pool = make_pool()
    loop = asyncio.get_running_loop()
    order: list[str] = []
    pool.call_on_loop(order.append, "a")
    loop.call_soon(order.append, "b")
    pool.call_on_loop(order.append, "c")
    await asyncio.sleep(0.01)
    assert order == ["a", "c", "b"]


async def test_results_from_a_thread_run_in_one_drain(make_pool):
    # While the loop is busy, an app thread's results pile up for one drain: the marker it
    # schedules between two of them runs after both.
    pool = make_pool()
    loop = asyncio.get_running_loop()
    order: list[str] = []
    finished = threading.Event()

    def app_thread():
        pool.call_on_loop(order.append, "first")
        loop.call_soon_threadsafe(order.append, "marker")
        pool.call_on_loop(order.append, "second")
        finished.set()

    pool.submit(app_thread)
    await asyncio.sleep(0)  # hand the work over, then keep the loop busy until it has run
    assert finished.wait(5)
    await asyncio.sleep(0.01)
    assert order == ["first", "second", "marker"]


class CountingLoop(asyncio.SelectorEventLoop):
    """A real loop that counts its cross-thread wakeups (writes to its self-pipe)."""

    wakeups = 0

    def call_soon_threadsafe(self, *args, **kwargs):
        self.wakeups += 1
        return super().call_soon_threadsafe(*args, **kwargs)


def test_one_wakeup_per_drain_however_many_results():
    # The first result after a drain pays for call_soon_threadsafe; the rest ride on it.
    async def main():
        loop = asyncio.get_running_loop()
        pool = ThreadPool(loop, 1, name=f"unit-pool-{next(_names)}")
        got: list[int] = []
        queued = threading.Event()

        def app_thread():
            for i in range(100):
                pool.call_on_loop(got.append, i)
            queued.set()

        pool.submit(app_thread)
        await asyncio.sleep(0)
        assert queued.wait(5)  # the loop stays busy while the thread queues all 100
        await asyncio.sleep(0.01)
        first = loop.wakeups
        pool.call_on_loop(got.append, 100)  # after the drain: a new wakeup, not a lost one
        await asyncio.sleep(0.01)
        pool.shutdown(wait=True, timeout=5)
        return got, first, loop.wakeups

    with asyncio.Runner(loop_factory=CountingLoop) as runner:
        got, first, total = runner.run(main())
    assert got == list(range(101))
    assert (first, total) == (1, 2)


async def test_call_on_loop_after_a_drain_wakes_again(make_pool):
    pool = make_pool()
    order: list[int] = []
    for i in range(3):
        pool.call_on_loop(order.append, i)
        await asyncio.sleep(0.01)
        assert order == list(range(i + 1))


async def test_many_threads_many_results_none_lost(make_pool):
    pool = make_pool(4)
    loop = asyncio.get_running_loop()
    got: list[int] = []
    all_in = loop.create_future()

    def result(i):
        got.append(i)
        if len(got) == 400 and not all_in.done():
            all_in.set_result(None)

    def work(start):
        for i in range(start, start + 100):
            pool.call_on_loop(result, i)

    for start in range(0, 400, 100):
        pool.submit(lambda start=start: work(start))
    await asyncio.wait_for(all_in, 5)
    assert sorted(got) == list(range(400))


async def test_a_failing_callback_strands_none_behind_it(make_pool):
    pool = make_pool()
    loop = asyncio.get_running_loop()
    reported: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    order: list[str] = []

    def boom():
        raise RuntimeError("boom")

    pool.call_on_loop(order.append, "before")
    pool.call_on_loop(boom)
    pool.call_on_loop(order.append, "after")
    await asyncio.sleep(0.01)
    assert order == ["before", "after"]
    [context] = reported
    assert context["message"] == "unicorn_aio: error in a callback from an app thread"
    assert str(context["exception"]) == "boom"


def test_call_on_loop_after_the_loop_closed_is_dropped():
    loop = asyncio.new_event_loop()
    loop.close()
    ThreadPool(loop, 1).call_on_loop(print, "never")  # no RuntimeError to the app thread


async def test_shutdown_runs_work_submitted_before_it(make_pool):
    pool = make_pool(2)
    done = threading.Event()
    first = threading.Event()
    pool.submit(first.set)
    await asyncio.sleep(0)
    assert await asyncio.to_thread(first.wait, 5)
    pool.submit(done.set)  # still in this iteration's batch
    threads = pool_threads(pool)
    pool.shutdown(wait=True, timeout=5)
    assert done.is_set()
    assert not any(t.is_alive() for t in threads)


async def test_shutdown_stops_every_thread(make_pool):
    pool = make_pool(3)
    release = threading.Event()
    for _ in range(3):
        pool.submit(lambda: release.wait(5))
    await asyncio.sleep(0)
    await until(lambda: len(pool_threads(pool)) == 3)
    threads = pool_threads(pool)
    pool.shutdown(wait=False)
    release.set()
    for t in threads:
        await asyncio.to_thread(t.join, 5)
    assert not any(t.is_alive() for t in threads)


async def test_shutdown_without_threads(make_pool):
    make_pool(2).shutdown(wait=True, timeout=1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_BATCH is Linux's")
async def test_app_threads_run_under_sched_batch(make_pool):
    # Woken, an app thread waits for the loop thread to block instead of preempting it.
    pool = make_pool()
    loop = asyncio.get_running_loop()
    policy = loop.create_future()
    pool.submit(lambda: pool.call_on_loop(policy.set_result, os.sched_getscheduler(0)))
    assert await asyncio.wait_for(policy, 5) == os.SCHED_BATCH
    assert os.sched_getscheduler(0) != os.SCHED_BATCH  # the loop thread is left alone
