"""Log rotation under --user: the master (root) recreates the files on USR1, and the workers
(nobody) must be able to reopen them, or every line after a rotation is lost."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import tempfile

import pytest
from procs import ServerProcess, get, wait_for

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.skipif(os.geteuid() != 0, reason="switching user needs root")]


def _ids() -> tuple[int, int]:
    try:
        return pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    except KeyError:
        pytest.skip("no user nobody or group nogroup")


def _open_paths(pid: int) -> set[str]:
    paths = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            paths.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return paths


@pytest.fixture
def logdir():
    # Not tmp_path: its parents are 0700 root, and a worker running as nobody reopens by path.
    path = tempfile.mkdtemp(prefix="unicorn_aio-rotate-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_rotated_logs_are_recreated_for_the_workers_user(logdir, tmp_path):
    uid, gid = _ids()
    access = os.path.join(logdir, "access.log")
    error = os.path.join(logdir, "error.log")
    srv = ServerProcess("master_apps:app", "--user", "nobody", "--group", "nogroup",
                        "--workers", "2", "--access-logfile", access, "--error-logfile", error,
                        "--access-logformat", "%(U)s", log_path=str(tmp_path / "server.log"))
    try:
        srv.wait_ready(workers=2)
        workers = srv.workers()
        get(srv.url + "/before")
        os.rename(access, access + ".1")
        os.rename(error, error + ".1")
        srv.signal(signal.SIGUSR1)
        # Each worker lets go of the renamed file once it has handled its USR1.
        for pid in workers:
            wait_for(lambda pid=pid: access + ".1" not in _open_paths(pid), 10,
                     what=f"worker {pid} to reopen its logs")
        paths = [f"/after-{i}" for i in range(20)]
        for path in paths:
            assert get(srv.url + path)[0] == 200

        def logged():
            with open(access) as f:
                return set(paths) <= set(f.read().split())
        wait_for(logged, 10, what="every request after the rotation in the new access.log")
        for path in (access, error):
            st = os.stat(path)
            assert (st.st_uid, st.st_gid) == (uid, gid), path
        assert "cannot reopen" not in srv.log()
    finally:
        srv.stop()
