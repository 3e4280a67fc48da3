# Two commands set everything up: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LINT_PATHS := gateway schemas tests standin
RUFF_OPTS := --line-length 120 --target-version py311

.PHONY: install run test system-deps unit integration lint format image-venv bench bench-routing bench-aiperf soak clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: install
	$(PY) -m gateway.demo

test: lint image-venv system-deps
	$(PY) -m pytest -q

# tests/deploy checks the nginx config with nginx itself and makes a test certificate with
# openssl; the client suite runs the openai Node SDK (node, npm); the Redis response store is
# tested against a real redis-server, and /docs in a headless chromium. Each COMMAND:PACKAGE is
# installed with apt-get when missing (as root, or through sudo), else one line says how.
SYSTEM_DEPS := nginx:nginx openssl:openssl node:nodejs npm:npm redis-server:redis-server chromium:chromium
system-deps:
	@missing=""; for dep in $(SYSTEM_DEPS); do tool=$${dep%%:*}; \
		command -v $$tool >/dev/null || [ -x /usr/sbin/$$tool ] || missing="$$missing $${dep#*:}"; done; \
	if [ -n "$$missing" ]; then \
		if command -v apt-get >/dev/null && { [ "$$(id -u)" -eq 0 ] || command -v sudo >/dev/null; }; then \
			sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
			echo "installing$$missing (apt-get)"; \
			$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		else \
			echo "make test needs$$missing: install it (e.g. sudo apt-get install$$missing) and run make test again"; exit 1; \
		fi; \
	fi

# deploy/Dockerfile's builder stage replayed into .venv-image (pip fetches its dependencies
# here, not in the tests), so tests/deploy can run the image's entry point and health check.
IMAGE_VENV := .venv-image
image-venv: $(IMAGE_VENV)/.built

$(IMAGE_VENV)/.built: deploy/Dockerfile setup.cfg pyproject.toml | $(STAMP)
	$(PY) -m tests.deploy.dockerfile $(IMAGE_VENV)
	@touch $@

unit: install
	$(PY) -m pytest -q tests/unit

integration: install
	$(PY) -m pytest -q tests/integration

lint: install
	$(VENV)/bin/ruff check $(RUFF_OPTS) $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(RUFF_OPTS) $(LINT_PATHS)
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix $(RUFF_OPTS) $(LINT_PATHS)
	$(VENV)/bin/ruff format $(RUFF_OPTS) $(LINT_PATHS)

# The gateway against direct gRPC at several concurrencies (a few minutes); results in bench-results/.
bench: install
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m tests.benchmarks.harness $(BENCH_ARGS)

# --routing round_robin against --routing prefix on two tritonservers with a simulated prefix cache.
bench-routing: install
	$(PY) -m tests.benchmarks.routing $(BENCH_ROUTING_ARGS)

# Streams for SOAK_SECONDS at 64 concurrent clients, 10% of them leaving mid-stream.
SOAK_SECONDS ?= 300
soak: install
	$(PY) -m tests.benchmarks.soak --seconds $(SOAK_SECONDS) $(SOAK_ARGS)

# aiperf against `make run`'s gateway (start `make run` first), from a virtualenv of its own.
AIPERF_VENV ?= .venv-aiperf
AIPERF_ARGS ?= --concurrency 16 --request-count 200
# Output lengths are set outright (and EOS ignored), so every answer has the length measured.
AIPERF_OUTPUT_TOKENS ?= 128
bench-aiperf:
	@test -x $(AIPERF_VENV)/bin/aiperf || ($(PYTHON) -m venv $(AIPERF_VENV) && $(AIPERF_VENV)/bin/pip install --quiet aiperf)
	$(AIPERF_VENV)/bin/aiperf profile --url http://127.0.0.1:9000 --endpoint-type chat --streaming \
		--model vllm-stand-in --tokenizer $(CURDIR)/standin/tokenizer \
		--output-tokens-mean $(AIPERF_OUTPUT_TOKENS) --output-tokens-stddev 0 --extra-inputs ignore_eos:true \
		$(AIPERF_ARGS) \
		--artifact-dir $(CURDIR)/bench-results/aiperf

clean:
	rm -rf $(VENV) $(AIPERF_VENV) $(IMAGE_VENV) .node-clients build *.egg-info .pytest_cache .mypy_cache .ruff_cache bench-results
