"""What ``pip install`` reads from pyproject.toml: the console script, and a license that
setuptools takes without a deprecation banner (an SPDX string, PEP 639)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_is_an_spdx_string_and_the_build_backend_reads_it():
    # A TOML table ({text = "MIT"}) makes setuptools >= 77 print a deprecation banner on every
    # install; a string needs setuptools >= 77 to be read at all.
    assert PYPROJECT["project"]["license"] == "MIT"
    requires = PYPROJECT["build-system"]["requires"]
    setuptools = [r for r in requires if r.startswith("setuptools")]
    assert setuptools and re.fullmatch(r"setuptools>=(\d+)", setuptools[0])
    assert int(setuptools[0].split(">=")[1]) >= 77


def test_the_console_scripts_are_the_server_and_its_control_client():
    assert PYPROJECT["project"]["scripts"] == {"unicorn_aio": "unicorn_aio.cli:main",
                                               "unicorn_aioc": "unicorn_aio.ctl.cli:main"}
