"""Apps reach the server's logs by gunicorn's logger names: "gunicorn.error" and
"gunicorn.access" carry the server's handlers and level, in a real server process."""

from __future__ import annotations

import os

import pytest
from procs import ROOT, get, wait_for

pytest.importorskip("flask", reason="flask is in the test extra")
pytestmark = pytest.mark.timeout(60)

ENV = {"PYTHONPATH": os.path.join(ROOT, "tests", "support") + os.pathsep + ROOT}


def read(path) -> str:
    return path.read_text() if path.exists() else ""


@pytest.mark.parametrize("level", ["info", "warning"])
def test_flask_logger_borrowing_gunicorn_error_handlers_writes_the_error_log(
        process_server, tmp_path, level):
    errors, access = tmp_path / "error.log", tmp_path / "access.log"
    srv = process_server("borrowed_log_app:flask_app", "--error-logfile", str(errors),
                         "--access-logfile", str(access), "--log-level", level, env=ENV)
    assert get(srv.url + "/")[0] == 200
    wait_for(lambda: "app line in the access log" in read(access), 10, what="the app's line")
    if level == "warning":  # the level came along: info lines are below it
        assert "flask says hello" not in read(errors)
        return
    line = wait_for(lambda: [ln for ln in read(errors).splitlines() if "flask says hello" in ln],
                    10, what="the Flask line in the error log")[0]
    # gunicorn's error-log line, from the worker that served the request
    assert line.endswith("[INFO] flask says hello"), line
    assert f"[{srv.workers()[0]}]" in line
    assert "flask debug line" not in read(errors)
