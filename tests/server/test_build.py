"""The request path as built: compiled by ``make compile`` (setup.py), and the same sources
interpreted, as ``UNICORN_AIO_COMPILE=0`` installs them or wherever the build is missing."""

from __future__ import annotations

import importlib
import os
import runpy
import shutil
import subprocess
import sys
import zipfile

import pytest
from procs import ROOT, SUPPORT, ServerProcess, get

import unicorn_aio


def compiled_modules() -> list[str]:
    setup = runpy.run_path(os.path.join(ROOT, "setup.py"), run_name="setup")
    return [path[:-3].replace("/", ".") for path in setup["COMPILED"]]


def test_make_test_runs_the_compiled_build():
    if os.environ.get("UNICORN_AIO_BUILD") != "compiled":
        pytest.skip("UNICORN_AIO_BUILD=compiled is set by make test, after make compile")
    assert unicorn_aio.compiled()
    interpreted = [name for name in compiled_modules()
                   if importlib.import_module(name).__file__.endswith(".py")]
    assert not interpreted, f"setup.py compiles these, yet they imported from source: {interpreted}"


def test_the_same_sources_serve_interpreted(tmp_path):
    shutil.copytree(os.path.join(ROOT, "unicorn_aio"), tmp_path / "unicorn_aio",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    srv = ServerProcess("master_apps:hello", "--workers", "1", cwd=str(tmp_path),
                        env={"PYTHONPATH": SUPPORT + os.pathsep + str(tmp_path)},
                        log_path=str(tmp_path / "server.log"))
    try:
        srv.wait_ready()
        assert get(srv.url + "/")[0] == 200
        log = srv.log()
        assert "The request path runs interpreted" in log, log
    finally:
        srv.stop()


@pytest.mark.timeout(600)
def test_a_wheel_holds_the_compiled_modules(tmp_path):
    # As pip installs it for a user: built in an isolated environment with only the build
    # requirements, where httptools and the optional libraries are absent.
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        "*.so", "__pycache__", ".*", "build", "*.egg-info", "bench", "docs", "tests"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
                           "-w", str(tmp_path / "dist"), str(src)],
                          capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = (tmp_path / "dist").glob("unicorn_aio-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    missing = [name for name in compiled_modules()
               if not any(n.startswith(name.replace(".", "/") + ".cpython-") and n.endswith(".so")
                          for n in names)]
    assert not missing, f"setup.py compiles these, the wheel has no build of them: {missing}"
    assert any(n.startswith("unicorn_aio/_compiled__mypyc.") for n in names), names
