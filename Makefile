PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080
WORKERS ?= 2

.PHONY: install serve test lint bench clean browser image screenshots vendor-swagger-ui fuzz

# Create .venv and install the emulator with its test dependencies (editable); safe to run concurrently.
install:
	@$(PY) tools/ensure_venv.py --venv $(VENV)

# Install, then serve the emulator on $(HOST):$(PORT) with the example seed (Ctrl-C stops it).
serve: install
	$(BIN)/python -m dcp_emulator serve --host $(HOST) --port $(PORT) --seed example

# Install Debian's chromium and chromium-driver when missing: the consent page's browser test needs them
# (it is skipped without them). Uses apt-get, as root or through sudo.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
		echo "browser: chromium and chromedriver are installed"; \
	elif ! command -v apt-get >/dev/null; then \
		echo "browser: apt-get not found; install chromium and its chromedriver yourself" >&2; exit 1; \
	else \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update -q && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	fi

# Install, then run the whole test suite, in $(WORKERS) processes (pytest-xdist; WORKERS=0 runs it in one).
test: install
	$(BIN)/python -m pytest -q -n $(WORKERS)

# Fuzz a served emulator from its OpenAPI document with schemathesis, fixed seed, ~1 min (docs/contract.md).
fuzz: install
	$(BIN)/python tools/fuzz_api.py

# Static checks (ruff) over the package, tests and benchmarks.
lint: install
	$(BIN)/ruff check dcp_emulator tests bench

# Print the performance figures (ingest rows/s vs floor, RSS growth, fixture start-up and reset, memory soak,
# profile API throughput next to a bare Flask app): see docs/performance.md.
bench: install
	$(BIN)/python bench/run.py

# Build the container image from ./Dockerfile: docker if a daemon answers, else buildah (docs/ci.md).
# BASE=<image> overrides python:3.12-slim; BASE=debootstrap makes a Debian base without a registry (root).
image:
	BASE="$(BASE)" TAG="$(or $(TAG),localhost/dcp-emulator)" .ci/image.sh

# Regenerate docs/dashboard.png (the README's screenshot of the dashboard) and docs/apidocs.png (the API
# reference) with the system chromium.
screenshots: install browser
	$(BIN)/python tools/screenshots.py
	$(BIN)/python tools/screenshots.py --path /_emulator/docs --wait-for ".swagger-ui .info .title" --out docs/apidocs.png

# Refresh the vendored Swagger UI of /_emulator/docs from npm (swagger-ui-dist@5; SPEC=swagger-ui-dist@5.x.y pins one).
vendor-swagger-ui:
	$(PY) tools/vendor_swagger_ui.py --spec "$(or $(SPEC),swagger-ui-dist@5)"

# Remove the virtualenv and caches.
clean:
	rm -rf $(VENV) $(VENV).lock .pytest_cache .ruff_cache *.egg-info
