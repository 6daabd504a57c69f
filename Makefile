# prodsearch — two commands: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test lint install browser-deps clean soak

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch is pinned to the CPU build (torch==2.13.0); an unpinned torch pulls a CUDA build.
	$(BIN)/python -m pip install --quiet -e '.[dev]' --config-settings editable_mode=compat
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/prodsearch demo

# The browser test drives Debian's chromium through chromium-driver (no browser download).
browser-deps:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; else \
	  echo "installing Debian packages chromium + chromium-driver for the browser test"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  ($$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	     chromium chromium-driver >/dev/null) \
	  || { echo "could not install chromium + chromium-driver (Debian packages, needs root)"; exit 1; }; \
	fi

test: $(STAMP) browser-deps lint
	$(BIN)/python -m pytest -q

# 16 clients for 60 s of mixed search while catalog changes are embedded (docs/RELIABILITY.md)
soak: $(STAMP)
	$(BIN)/prodsearch demo --no-serve
	$(BIN)/prodsearch bench soak --clients 16 --seconds 60

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .prodsearch .pytest_cache
