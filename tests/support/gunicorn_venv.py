"""The oracle's venv for the differential test (tests/parity): ROOT/.gunicorn-venv with the
gunicorn pinned in tests/parity/gunicorn-requirements.txt, apart from the project's venv so the
two never share a package.

``python tests/support/gunicorn_venv.py`` builds it (``make test`` does, before the suite); the
test session calls ``ensure()`` too, so a bare ``pytest`` on a fresh clone builds it as well.
A venv whose stamp matches the requirements file is reused as it is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

SUPPORT = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(SUPPORT))
VENV = os.path.join(ROOT, ".gunicorn-venv")
REQUIREMENTS = os.path.join(ROOT, "tests", "parity", "gunicorn-requirements.txt")
STAMP = os.path.join(VENV, ".installed")
PYTHON = os.path.join(VENV, "bin", "python")


def _wanted() -> str:
    with open(REQUIREMENTS) as f:
        return f.read()


def is_current() -> bool:
    try:
        with open(STAMP) as f:
            return f.read() == _wanted() and os.access(PYTHON, os.X_OK)
    except OSError:
        return False


def ensure(timeout: float = 300) -> str | None:
    """Build the venv if it is missing or stale; None when ready, else why it could not be."""
    if is_current():
        return None
    shutil.rmtree(VENV, ignore_errors=True)
    steps = [[sys.executable, "-m", "venv", VENV],
             [PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              "-r", REQUIREMENTS]]
    for argv in steps:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(argv[:3])}: {exc}"
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return f"{' '.join(argv[:3])} exited {done.returncode}: {' / '.join(t[:200] for t in tail)}"
    with open(STAMP, "w") as f:
        f.write(_wanted())
    return None


CORPUS = os.path.join(VENV, "corpus")  # gunicorn's own tests/requests, from its sdist


def ensure_corpus(timeout: float = 300) -> str | None:
    """gunicorn's request corpus (valid/ and invalid/ .http files with the .py settings each
    sets), from the sdist of the pinned release, kept in the venv and never in this project.
    None when ready, else why it could not be had."""
    if os.path.isdir(os.path.join(CORPUS, "valid")):
        return None
    with open(REQUIREMENTS) as f:
        pin = next(line.strip() for line in f if line.startswith("gunicorn=="))
    with tempfile.TemporaryDirectory() as tmp:
        argv = [PYTHON, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                "--no-deps", "--no-binary", ":all:", "--dest", tmp, pin]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"pip download {pin}: {exc}"
        sdists = [n for n in os.listdir(tmp) if n.endswith(".tar.gz")]
        if done.returncode != 0 or not sdists:
            tail = (done.stderr or done.stdout).strip().splitlines()[-2:]
            return f"pip download {pin} exited {done.returncode}: {' / '.join(tail)}"
        with tarfile.open(os.path.join(tmp, sdists[0])) as tar:
            members = [m for m in tar.getmembers() if "/tests/requests/" in m.name and m.isfile()]
            if not members:
                return f"{sdists[0]} holds no tests/requests"
            for m in members:
                m.name = m.name.split("/tests/requests/", 1)[1]
            shutil.rmtree(CORPUS + ".part", ignore_errors=True)
            tar.extractall(CORPUS + ".part", members=members, filter="data")
        os.rename(CORPUS + ".part", CORPUS)
    return None


if __name__ == "__main__":
    reason = ensure() or ensure_corpus()
    if reason:
        # make test goes on: the parity tests skip, naming this reason.
        print(f"WARNING: cannot build {VENV} ({reason}); tests/parity will skip", file=sys.stderr)
    else:
        print(f"{VENV}: ready")
