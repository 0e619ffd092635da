"""Loading the app named on the command line: every form, and a one-line error for each mistake."""

from __future__ import annotations

import sys
import textwrap

import pytest

from unicorn_aio.apploader import load_app, load_wsgi_app
from unicorn_aio.config.config import Config
from unicorn_aio.errors import AppImportError


@pytest.fixture
def modules(tmp_path, monkeypatch):
    def write(name, source):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield write
    for name in [m for m in sys.modules if m.startswith("ua_")]:
        del sys.modules[name]


APP = """
    def application(environ, start_response):
        return []
    def other(environ, start_response):
        return []
    def factory(*args, **kwargs):
        def app(environ, start_response):
            return []
        app.made_with = (args, kwargs)
        return app
    def failing_factory():
        raise RuntimeError("no database")
    class ns:
        inner = staticmethod(other)
    not_callable = 42
    def none_factory():
        return None
"""


def test_forms(modules):
    modules("ua_app", APP)
    import ua_app
    assert load_app("ua_app") is ua_app.application
    assert load_app("ua_app:other") is ua_app.other
    assert load_app("ua_app:ns.inner") is ua_app.other
    assert load_app("ua_app:factory()").made_with == ((), {})
    assert load_app("ua_app:factory('x', k=1)").made_with == (("x",), {"k": 1})


@pytest.mark.parametrize("uri, message", [
    ("ua_missing", "no module named 'ua_missing'"),
    ("ua_app:nope", "has no attribute 'nope'"),
    ("ua_app:not_callable", "'not_callable' is an int, not a callable app"),
    ("ua_app:none_factory()", "none_factory() returned a NoneType, not a callable app"),
    ("ua_app:failing_factory()", "factory failing_factory() failed: RuntimeError: no database"),
    ("ua_app:factory(open('x'))", "factory arguments must be literals"),
    ("ua_app:factory(**{'k': 1})", "factory arguments must be literals"),
    ("ua_app:1+", "cannot parse"),
    (":app", "expected module:callable"),
    ("ua_broken", "importing ua_broken failed: ZeroDivisionError: division by zero"),
    ("ua_syntax", "importing ua_syntax failed: SyntaxError"),
    ("ua_imports_missing", "importing ua_imports_missing failed: ModuleNotFoundError"),
])
def test_errors_are_one_line(modules, uri, message):
    modules("ua_app", APP)
    modules("ua_broken", "x = 1 / 0\n")
    modules("ua_syntax", "def f(:\n")
    modules("ua_imports_missing", "import ua_not_there\n")
    with pytest.raises(AppImportError) as info:
        load_app(uri)
    text = str(info.value)
    assert message in text and "\n" not in text


def test_no_app_named_is_one_line():
    # The command line refuses it first; a Config built in code reaches the loader without one.
    with pytest.raises(AppImportError, match="^no application given"):
        load_wsgi_app(Config({}))
