"""The pieces under /metrics, each on its own: the STATS message cut anywhere on its way, a
worker's channel that is full, the fleet's totals across exits, and the exposition as
prometheus_client's parsers read it."""

from __future__ import annotations

import asyncio
import random
import socket

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from unicorn_aio.prefork.children import BEAT, BOOTED, RETIRE, WorkerProcess
from unicorn_aio.prefork.fleet import Fleet
from unicorn_aio.prefork.metrics import render
from unicorn_aio.prefork.stats import BUCKETS, CLASSES, MessageReader, Outbox, RequestStats, encode


def message(n: int, **more) -> dict:
    stats = RequestStats()
    for _ in range(n):
        stats.record("200 OK", 0.003, 10, 100)
    return {"n": n, "h": stats.histogram, "s": stats.sums, "bi": stats.bytes_in,
            "bo": stats.bytes_out, "f": 0, "c": 1, **more}


def test_messages_cut_anywhere_read_whole():
    stream = BOOTED + encode(message(3)) + BEAT + encode(message(4, l=["GET", "/ü", 1.5])) + RETIRE
    rng = random.Random(7)
    for _ in range(200):
        reader, words, got = MessageReader(), b"", []
        i = 0
        while i < len(stream):
            j = i + rng.randint(1, 40)
            w, ms = reader.feed(stream[i:j])
            words, got, i = words + w, got + ms, j
        assert words == BOOTED + BEAT + RETIRE
        assert [m["n"] for m in got] == [3, 4] and got[1]["l"] == ["GET", "/ü", 1.5]


def test_a_full_channel_drops_stats_never_half_a_message_nor_a_retire():
    worker, master = socket.socketpair()
    worker.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    worker.setblocking(False)
    outbox = Outbox(worker)
    # Larger than the buffer, so the socket takes part of one (a real STATS message is ~500
    # bytes and the channel's buffer 200 KB: rare, but a cut message would derail the master).
    big = encode(message(1, l=["GET", "/" + "p" * 10000, 0.1]))
    for i in range(200):  # far more than the buffer holds: the master reads nothing meanwhile
        outbox.send(big + BEAT, droppable=True)
        if i == 100:
            outbox.send(encode(message(2)) + RETIRE)
    assert outbox.unsent  # it filled up
    master.setblocking(False)
    reader, words, got = MessageReader(), b"", []
    for _ in range(100000):
        try:
            data = master.recv(65536)
        except BlockingIOError:
            outbox.send(b"", droppable=True)  # the next beat flushes what waits
            if not outbox.unsent:
                try:
                    data = master.recv(65536)
                except BlockingIOError:
                    break
            else:
                continue
        w, ms = reader.feed(data)
        words, got = words + w, got + ms
    assert words.count(RETIRE) == 1 and set(words) <= set(BEAT + RETIRE)
    assert len(got) == words.count(BEAT) + 1  # each beat came whole with its message
    worker.close()
    master.close()


class Master:
    def __init__(self) -> None:
        self.workers: dict[int, WorkerProcess] = {}
        self.num_workers = 2
        self.loop = asyncio.new_event_loop()


@pytest.fixture
def fleet():
    master = Master()
    yield Fleet(master)
    master.loop.close()


def spawn(fleet: Fleet, pid: int) -> tuple[WorkerProcess, socket.socket]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    w = WorkerProcess(pid, 0, ours)
    w.pid = pid
    fleet.master.workers[pid] = w  # type: ignore[attr-defined]
    return w, theirs


def exit_(fleet: Fleet, w: WorkerProcess, master_stopping: bool = False) -> str | None:
    del fleet.master.workers[w.pid]  # type: ignore[attr-defined]
    reason = fleet.exited(w, -9, master_stopping)
    w.channel.close()
    return reason


def test_totals_never_go_backwards_across_exits(fleet):
    a, a_end = spawn(fleet, 101)
    b, b_end = spawn(fleet, 102)
    assert fleet.feed(a, BOOTED + encode(message(5))) == BOOTED
    fleet.feed(b, encode(message(3)))
    assert fleet.totals().counters.requests == 8
    # a's last message is still in its channel when its exit is reaped: read before folding.
    a_end.send(encode(message(7)) + BEAT)
    a_end.close()
    assert exit_(fleet, a) == "crash"
    totals = fleet.totals()
    assert totals.counters.requests == 10 and totals.counters.statuses["2xx"] == 10
    assert totals.counters.bytes_out == 1000 and totals.workers == 1
    c, _ = spawn(fleet, 103)
    assert fleet.totals().counters.requests == 10  # a newcomer with nothing said adds nothing
    fleet.feed(c, encode(message(2)))
    assert fleet.totals().counters.requests == 12
    assert [w.pid for w in fleet.workers()] == [102, 103]
    assert fleet.workers()[1].counters.requests == 2


def test_restarts_by_reason(fleet):
    w, _ = spawn(fleet, 1)
    w.aborted = True
    assert exit_(fleet, w) == "timeout"
    w, _ = spawn(fleet, 2)
    fleet.feed(w, encode(message(1, r="memory")) + RETIRE)
    w.retiring = w.stopping = True
    assert exit_(fleet, w) == "memory"
    w, _ = spawn(fleet, 3)
    w.stopping = True  # a HUP's or TTOU's: asked for, not a restart
    assert exit_(fleet, w) is None
    w, _ = spawn(fleet, 4)
    assert exit_(fleet, w, master_stopping=True) is None
    w, _ = spawn(fleet, 5)
    assert exit_(fleet, w) == "crash"
    assert fleet.totals().restarts == {"timeout": 1, "memory": 1, "max-requests": 0,
                                       "crash": 1, "reload": 0, "stuck": 0}


def families(text: str, openmetrics: bool) -> dict:
    parse = parse_openmetrics if openmetrics else parse_text
    return {f.name: f for f in parse(text)}


@pytest.mark.parametrize("openmetrics", [False, True])
def test_the_exposition_parses_in_both_formats(fleet, openmetrics):
    w, _ = spawn(fleet, 1)
    stats = RequestStats()
    for seconds in (0.001, 0.005, 0.006, 0.3, 20.0):
        stats.record("200 OK", seconds, 0, 1)
    stats.record("404 Not Found", 0.001, 5, 0)
    stats.record("999 Odd", 0.001, 0, 0)
    fleet.feed(w, encode({"n": 7, "h": stats.histogram, "s": stats.sums, "bi": 5, "bo": 5}))
    text = render(fleet.totals(), openmetrics).decode() + ("# EOF\n" if openmetrics else "")
    found = families(text, openmetrics)
    prefix = "unicorn_aio_"
    requests = found[prefix + "requests"]  # both parsers name a counter without its _total
    assert requests.type == "counter"
    by_status = {s.labels["status"]: s.value for s in requests.samples
                 if s.name.endswith("_total")}
    assert by_status == {"1xx": 0, "2xx": 5, "3xx": 0, "4xx": 1, "5xx": 0, "other": 1}
    hist = found[prefix + "request_duration_seconds"]
    buckets = {s.labels["le"]: s.value for s in hist.samples
               if s.name.endswith("_bucket") and s.labels["status"] == "2xx"}
    le = (lambda b: str(float(b))) if not openmetrics else (lambda b: repr(b))
    assert buckets[le(0.005)] == 2 and buckets[le(0.01)] == 3 and buckets[le(10.0)] == 4
    assert buckets["+Inf"] == 5 and len(buckets) == len(BUCKETS) + 1
    assert "other" in CLASSES
