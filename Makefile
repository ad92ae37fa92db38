# `make demo` and `make test` set everything up on a fresh machine first (scripts/setup.sh).
VENV := .venv
STAMP := $(VENV)/.ivr-installed

.PHONY: setup demo test test-fast lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

demo: setup
	$(VENV)/bin/python scripts/demo.py

lint: setup
	$(VENV)/bin/ruff check ivr tests scripts

test: lint
	$(VENV)/bin/pytest -q

test-fast: lint
	$(VENV)/bin/pytest -q -m "not slow"

bench: setup
	$(VENV)/bin/python scripts/bench_replay.py
	$(VENV)/bin/python scripts/bench_asr.py

clean:
	rm -rf build .pytest_cache .ruff_cache
