# The two commands: `make run` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Debian packages the tests drive as real peers; `make test` installs the missing ones (as root).
TEST_DEBS := openssl curl pebble nginx-light wrk testssl.sh
BENCH_DEBS := $(TEST_DEBS) hyperfine lego caddy

.PHONY: run test bench venv test-deps bench-deps clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --config-settings editable_mode=compat -e '.[test]'
	touch $@

# Byte-compile here: with PYTHONDONTWRITEBYTECODE set (as on some CI images) every run would recompile.
venv: $(VENV)/.installed
	@$(PY) -m compileall -q tlskit >/dev/null

run: venv
	$(VENV)/bin/tlskit serve

test-deps:
	@scripts/install-debs $(TEST_DEBS)

bench-deps: venv
	@scripts/install-debs $(BENCH_DEBS)
	$(PY) -m pip install --quiet --config-settings editable_mode=compat -e '.[test,bench]'

test: venv test-deps
	$(PY) -m pytest -q -p no:cacheprovider tests

bench: bench-deps
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache bench/out
