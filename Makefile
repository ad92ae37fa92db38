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
	$(VENV)/bin/python scripts/bench_nlu.py --json build/bench/nlu.json
	$(VENV)/bin/python scripts/loadgen.py --preset en --calls 1 4 8 16 --via ws --json build/bench/load_ws_whisper.json
	$(VENV)/bin/python scripts/loadgen.py --preset en --calls 1 4 8 16 --via sip --json build/bench/load_sip_whisper.json
	$(VENV)/bin/python scripts/loadgen.py --preset ko --calls 1 4 8 16 --via ws --json build/bench/load_ws_vosk.json

clean:
	rm -rf build .pytest_cache .ruff_cache
