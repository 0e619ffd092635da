"""The master's tests that reap, respawn, stop or re-exec run twice: under the pidfd child
watcher (Linux's default) and under the portable waitpid sweep that macOS and the BSDs use,
forced here with UNICORN_AIO_CHILD_WATCHER, so both stay tested on Linux."""

from __future__ import annotations

import os

import pytest

WATCHERS = ("pidfd", "poll")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "both_watchers: run under the pidfd and the poll child watcher")


def pytest_generate_tests(metafunc):
    if metafunc.definition.get_closest_marker("both_watchers"):
        metafunc.parametrize("child_watcher", WATCHERS, indirect=True)


@pytest.fixture(autouse=True)
def child_watcher(request, monkeypatch):
    """The watcher forced on every master the test starts; None: the master's own choice."""
    kind = getattr(request, "param", None)
    if kind == "pidfd" and not hasattr(os, "pidfd_open"):
        pytest.skip("no pidfd_open on this platform")
    if kind:
        monkeypatch.setenv("UNICORN_AIO_CHILD_WATCHER", kind)
    return kind
