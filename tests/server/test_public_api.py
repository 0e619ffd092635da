"""The public API is unicorn_aio.__all__, imported lazily so the command line starts fast."""

from __future__ import annotations

import subprocess
import sys

import pytest

import unicorn_aio


def test_every_public_name_resolves():
    assert set(unicorn_aio.__all__) == {"Config", "ConfigError", "Server", "serve", "__version__"}
    for name in unicorn_aio.__all__:
        assert getattr(unicorn_aio, name) is not None
    assert set(unicorn_aio.__all__) <= set(dir(unicorn_aio))


def test_public_names_are_the_implementations():
    from unicorn_aio.config.config import Config
    from unicorn_aio.errors import ConfigError
    from unicorn_aio.server import Server, serve

    assert (unicorn_aio.Config, unicorn_aio.ConfigError, unicorn_aio.Server, unicorn_aio.serve) == \
        (Config, ConfigError, Server, serve)


def test_config_error_is_raised_for_a_bad_setting():
    with pytest.raises(unicorn_aio.ConfigError, match="threads"):
        unicorn_aio.Config(threads="many")


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Arbiter'"):
        unicorn_aio.Arbiter  # noqa: B018


def test_importing_the_package_loads_no_server_code():
    # `python -m unicorn_aio --help` and config errors must not pay for uvloop and the server.
    code = ("import sys, unicorn_aio; "
            "print(sorted(m for m in sys.modules if m.startswith(('unicorn_aio.', 'uvloop'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
