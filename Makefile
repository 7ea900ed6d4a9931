PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: install serve test lint bench clean

# Create .venv and install the emulator with its test dependencies (editable).
install: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $@

# Install, then serve the emulator on $(HOST):$(PORT) with the example seed (Ctrl-C stops it).
serve: install
	$(BIN)/python -m dcp_emulator serve --host $(HOST) --port $(PORT) --seed fixtures/example.yaml

# Install, then run the whole test suite.
test: install
	$(BIN)/python -m pytest -q

# Static checks (ruff) over the package, tests and benchmarks.
lint: install
	$(BIN)/ruff check dcp_emulator tests bench

# Print the performance figures (ingest rows/s vs floor, RSS growth, fixture start-up and reset, profile API
# throughput next to a bare Flask app): see docs/performance.md.
bench: install
	$(BIN)/python bench/run.py

# Remove the virtualenv and caches.
clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
