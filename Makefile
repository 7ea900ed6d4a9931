PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: install serve test lint bench clean image

# Create .venv and install the emulator with its test dependencies (editable).
install: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $@

# Install, then serve the emulator on $(HOST):$(PORT) with the example seed (Ctrl-C stops it).
serve: install
	$(BIN)/python -m dcp_emulator serve --host $(HOST) --port $(PORT) --seed example

# Install, then run the whole test suite.
test: install
	$(BIN)/python -m pytest -q

# Static checks (ruff) over the package, tests and benchmarks.
lint: install
	$(BIN)/ruff check dcp_emulator tests bench

# Print the performance figures (ingest rows/s vs floor, RSS growth, fixture start-up and reset).
bench: install
	$(BIN)/python bench/run.py

# Build the container image from ./Dockerfile: docker if a daemon answers, else buildah (docs/ci.md).
# BASE=<image> overrides python:3.12-slim; BASE=debootstrap makes a Debian base without a registry (root).
image:
	BASE="$(BASE)" TAG="$(or $(TAG),localhost/dcp-emulator)" .ci/image.sh

# Remove the virtualenv and caches.
clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
