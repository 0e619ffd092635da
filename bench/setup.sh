#!/usr/bin/env bash
# Prepares what `make bench` needs: wrk, libev-dev, slowhttptest and h2load (nghttp2-client) from Debian, and .bench-venv with the peers,
# matplotlib and unicorn_aio itself (a regular install of this tree, redone every run). A peer that fails to install is written to
# .bench-venv/unavailable.txt ("name: reason") and reported as unavailable, not fatal.
set -u
cd "$(dirname "$0")/.."

VENV=.bench-venv
PY="$VENV/bin/python"
STAMP="$VENV/.installed"
PYTHON="$(command -v python3.11 || command -v python3)"
# name|pip requirement; the versions are the ones the published numbers were measured with.
PEERS="gunicorn|gunicorn[http2]==27.0.1
granian|granian==2.8.7
waitress|waitress==3.0.2
uvicorn+a2wsgi|uvicorn==0.54.0 a2wsgi==1.10.10
bjoern|bjoern==3.2.2
flask+django|flask==3.1.3 django==5.2.19
hypercorn|hypercorn==0.18.0
matplotlib|matplotlib==3.11.2"

if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi
missing=""
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
dpkg -s libev-dev >/dev/null 2>&1 || missing="$missing libev-dev"
command -v slowhttptest >/dev/null 2>&1 || missing="$missing slowhttptest"  # bench/slowclients.py
command -v h2load >/dev/null 2>&1 || missing="$missing nghttp2-client"  # the h2c scenario
if [ -n "$missing" ]; then
  echo "bench: installing$missing with apt-get"
  ($SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null) \
    || echo "bench: WARNING: apt-get could not install$missing"
fi
command -v wrk >/dev/null 2>&1 || { echo "bench: wrk is required and could not be installed" >&2; exit 1; }

# unicorn_aio as users get it (a regular install, not -e: an editable install's import hook
# costs every process about 1 MB), reinstalled each run so the bench measures this tree.
install_self() {
  "$PY" -m pip install --quiet --no-deps --force-reinstall . >"$VENV/pip-self.log" 2>&1 \
    || { tail -20 "$VENV/pip-self.log"; echo "bench: cannot install unicorn_aio itself" >&2; exit 1; }
}
if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ] && [ "$STAMP" -nt bench/setup.sh ]; then
  install_self
  exit 0
fi
[ -x "$PY" ] || "$PYTHON" -m venv "$VENV" || exit 1
log="$VENV/pip.log"
"$PY" -m pip install --quiet --upgrade pip >"$log" 2>&1
"$PY" -m pip install --quiet ".[http2]" >"$log" 2>&1 || { tail -20 "$log"; echo "bench: cannot install unicorn_aio itself" >&2; exit 1; }

: > "$VENV/unavailable.txt"
while IFS='|' read -r name reqs; do
  # shellcheck disable=SC2086  # reqs is a word list on purpose
  if ! "$PY" -m pip install --quiet $reqs >"$log" 2>&1; then
    reason="$(grep -iE 'error' "$log" | tail -1 | tr -s ' ' | cut -c1-200)"
    if [ "$name" = bjoern ] && ! dpkg -s libev-dev >/dev/null 2>&1; then
      reason="libev-dev missing, build failed: $reason"
    fi
    echo "bench: $name unavailable: ${reason:-pip install $reqs failed}"
    [ "$name" = gunicorn ] && { echo "gunicorn-sync: ${reason:-install failed}"; echo "gunicorn-gthread: ${reason:-install failed}"; } >>"$VENV/unavailable.txt"
    [ "$name" != gunicorn ] && echo "$name: ${reason:-install failed}" >>"$VENV/unavailable.txt"
  fi
done <<< "$PEERS"
touch "$STAMP"
