# Two entry points, both from a fresh machine with only Python 3.11:
#   make run   venv + install + serve examples/hello.py on 127.0.0.1:8000
#   make test  venv + install + system tools + gunicorn's venv + mypy and ruff + the whole suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint venv compile pure systools oracle bench bench-quick bench-baseline bench-pathcost clean soak fuzz-long

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 'setuptools>=77'
	UNICORN_AIO_COMPILE=0 $(PY) -m pip install --quiet -e '.[test]'
	touch $@

# The request path compiled with mypyc, next to its sources (setup.py says which and why);
# rebuilt when one of them changes, and the suite refuses to run a stale build.
# make pure: remove it, and run the same sources interpreted.
COMPILED_SRC := $(shell sed -n 's/^    "\(unicorn_aio\/[^"]*\.py\)".*/\1/p' setup.py)
COMPILED := $(VENV)/.compiled
compile: $(COMPILED)
$(COMPILED): $(STAMP) setup.py $(COMPILED_SRC)
	@echo "compiling the request path with mypyc (build/compile.log)"
	@mkdir -p build
	@find unicorn_aio -name '*.so' -delete
	@rm -rf build/lib.*  # a module no longer compiled must not leave its stub in a wheel
	@$(PY) setup.py build_ext --inplace >build/compile.log 2>&1 || { tail -30 build/compile.log; exit 1; }
	@find unicorn_aio -name '*.so' -exec touch {} +  # copied from build/ with their old times
	@touch $@

pure:
	rm -f $(COMPILED)
	find unicorn_aio -name '*.so' -delete

run: venv compile
	$(PY) -m unicorn_aio examples.hello:app --bind 127.0.0.1:8000

# System tools some tests drive for real (wrk for load, nginx in front).
# Installed with apt-get when missing; tests skip loudly only if this fails.
# command:package pairs (the package is named after the command where no colon is given).
SYSTOOLS := wrk nginx systemd-socket-activate:systemd h2load:nghttp2-client
systools:
	@missing=""; for pair in $(SYSTOOLS); do cmd=$${pair%%:*}; pkg=$${pair#*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system tools:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi; \
	  ($$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null) \
	    || echo "WARNING: could not install$$missing; tests needing them will skip"; \
	fi

# gunicorn in its own venv (.gunicorn-venv), and its own request corpus from its sdist, the oracles
# of the differential tests (tests/parity),
# pinned in tests/parity/gunicorn-requirements.txt; reused while the pin is unchanged. If pip
# cannot install it, make test goes on and tests/parity skips, saying why.
oracle: venv
	@$(PY) tests/support/gunicorn_venv.py

# Types and lint first (seconds), then the suite.
test: venv compile systools oracle lint
	UNICORN_AIO_BUILD=compiled $(PY) -m pytest

lint: venv
	$(PY) -m mypy
	$(PY) -m ruff check unicorn_aio tests bench tools examples

clean: pure
	rm -rf $(VENV) .gunicorn-venv build *.egg-info

# Side-by-side benchmark against gunicorn, granian, bjoern, waitress and uvicorn (bench/README.md).
# BENCH_ARGS passes options through, e.g. make bench BENCH_ARGS="--only hello,idle".
bench: compile
	bash bench/setup.sh
	.bench-venv/bin/python -m bench.run $(BENCH_ARGS)

bench-quick: compile
	bash bench/setup.sh
	.bench-venv/bin/python -m bench.run --quick --out quick $(BENCH_ARGS)

# This tree against an earlier revision of itself (hello, thread pool and inline), same run:
# make bench-baseline BASE=HEAD~3
BASE ?= HEAD
bench-baseline: compile
	bash bench/setup.sh
	.bench-venv/bin/python -m bench.run --only baseline --baseline $(BASE) --out baseline $(BENCH_ARGS)

# Hello over HTTP/2 cleartext (issue #20): h2load -c 10 -m 10 against unicorn_aio (both engines),
# granian, gunicorn 27 gthread and hypercorn, one worker each (bench/results/h2c.md); about 2 minutes.
.PHONY: bench-h2c
bench-h2c: compile
	bash bench/setup.sh
	.bench-venv/bin/python -m bench.run --only h2c --out h2c $(BENCH_ARGS)

# CPU time per h2c hello request in our own layers, no sockets, both engines (bench/h2pathcost.py):
# steady where the h2c scenario swings; --profile for cProfile's shares.
.PHONY: bench-h2pathcost
bench-h2pathcost: venv compile
	taskset -c 1 $(PY) -m bench.h2pathcost $(BENCH_ARGS)

# Python time per request in our own layers, no sockets: steady to a tenth of a microsecond,
# for judging a hot-path change before a full bench run.
bench-pathcost: venv compile
	$(PY) -m bench.pathcost

# -k gevent without gevent: the seeds' sleepy-app line with 1 worker, 300 concurrent requests
# that sleep 1 s; wall time and RSS per extra thread (bench/results/green.md).
.PHONY: bench-green
bench-green: venv compile
	$(PY) -m bench.green $(BENCH_ARGS)

# Stuck requests on 1 worker with --threads 4 (spinning, sleeping): hello rps, the longest stall,
# the 500s, the retirement (bench/results/stuck.md); about a minute.
.PHONY: bench-stuck
bench-stuck: venv compile
	$(PY) -m bench.stuck $(BENCH_ARGS)

# slowhttptest's slow headers, slow body and slow read, 1000 connections for 20 s each, against
# 1 worker while two probes ask for / (bench/results/slowclients.md); under 2 minutes, loopback.
.PHONY: bench-slowclients
bench-slowclients: venv compile
	@$(MAKE) --no-print-directory systools SYSTOOLS=slowhttptest
	$(PY) -m bench.slowclients $(BENCH_ARGS)

# The HTTP/2 libraries compared (bench/results/h2engines.md): server CPU per hello request,
# sans-IO on one connection, pinned to one core; h2, zttp (pinned to the version measured) and
# our libnghttp2 engine. About a minute.
.PHONY: bench-h2engines
bench-h2engines: venv
	$(PY) -m pip install --quiet 'zttp==0.0.35'
	taskset -c 1 $(PY) -m bench.h2engines $(BENCH_ARGS)

# Hardening runs (not part of make test): a soak under mixed hostile load, fds and RSS must stay
# flat (SOAK_ARGS="--minutes 3"); the request fuzz test with 20 000 random examples.
soak: compile
	bash bench/setup.sh
	.bench-venv/bin/python -m bench.soak $(SOAK_ARGS)

fuzz-long: venv
	$(PY) -m bench.fuzz_long $(FUZZ_ARGS)
