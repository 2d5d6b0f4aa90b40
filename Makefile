# The two commands: `make run` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Debian packages the tests drive as real peers; `make test` installs the missing ones (as root).
# libnss3-tools (certutil) and default-jre-headless (keytool) are trust stores `ca install` writes;
# systemd only for systemd-analyze verify of the printed units (it runs without booting systemd);
# zsh and fish run the completion scripts; postgresql and redis-server are the shared stores of several instances.
TEST_DEBS := openssl curl pebble nginx-light wrk testssl.sh apache2-utils libnss3-tools default-jre-headless systemd zsh fish postgresql redis-server
BENCH_DEBS := $(TEST_DEBS) hyperfine lego caddy

.PHONY: run test test-fast mutation bench venv test-deps bench-deps clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
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
	$(PY) -m pip install --quiet -e '.[test,bench]'

# Six workers on two cores: many tests wait on a server, a handshake or a timeout, not on the CPU
# (measured: -n 6 keeps the CPU ~97% busy, -n 4 ~88%).
# loadfile: a module-scoped fixture (a scan, a wheel, a PKI) is built once, not once per interleaving;
# --no-loadscope-reorder: modules go out in conftest's order (slow ones first), not by their test count.
# pytest keeps its assertion-rewritten test modules only where bytecode may be written (~7 s of CPU
# per worker otherwise, and each worker collects every module): two collections warm that cache side by
# side before the workers start.
TEST_ENV := env -u PYTHONDONTWRITEBYTECODE
test: venv test-deps
	@$(TEST_ENV) sh -c '$(PY) -m pytest -q -p no:cacheprovider --collect-only tests/unit tests/cli >/dev/null & \
		$(PY) -m pytest -q -p no:cacheprovider --collect-only tests/integration tests/attacks >/dev/null; wait'
	$(TEST_ENV) $(PY) -m pytest -q -p no:cacheprovider -n 6 --dist loadfile --no-loadscope-reorder tests

# The in-process tests only: no servers, no peers, no Debian packages.
test-fast: venv
	$(PY) -m pytest -q -p no:cacheprovider -n 2 tests/unit

mutation: venv
	$(PY) -m pip install --quiet --config-settings editable_mode=compat -e '.[test,mutation]'
	$(PY) scripts/mutation

bench: bench-deps
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache bench/out mutants
