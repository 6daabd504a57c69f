# prodsearch — two commands: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test lint install browser-deps clean soak lock runtime-check

LOCK         := requirements/dev.txt
RUNTIME_LOCK := requirements/runtime.txt
RT_VENV      ?= .venv-runtime
# the model cache the tests and the runtime check use: the product's default, the user's
# cache (each export is checked against its manifest before a load, never blindly reused)
MODEL_CACHE  ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/prodsearch/models

$(STAMP): pyproject.toml $(LOCK)
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# the exact versions of the lock (torch is the CPU build 2.13.0: an unpinned torch pulls
	# a CUDA build), then the project itself without resolving anything again. The bytecode
	# is compiled on every core afterwards (pip compiles on one: 60 of its 85 s here); a
	# file that is not Python 3.11 (torch's py312 test helpers) fails there, as under pip
	$(BIN)/python -m pip install --quiet --no-compile --require-hashes -r $(LOCK)
	-$(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null
	$(BIN)/python -m pip install --quiet --no-deps -e . --config-settings editable_mode=compat
	touch $(STAMP)

# The locks: pyproject.toml's ranges resolved afresh by pip-tools, every package pinned
# with its hashes (a development install with every extra, and the runtime alone; the
# project itself is installed from the work tree with --no-deps). Run after changing a
# dependency; commit both files.
LOCK_FLAGS := -q --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install -q --upgrade pip pip-tools
	CUSTOM_COMPILE_COMMAND="make lock" .venv-lock/bin/pip-compile $(LOCK_FLAGS) --extra dev -o $(LOCK) pyproject.toml
	CUSTOM_COMPILE_COMMAND="make lock" .venv-lock/bin/pip-compile $(LOCK_FLAGS) -o $(RUNTIME_LOCK) pyproject.toml
	# the dev extra names the project itself: it comes from the work tree, not the lock
	$(PYTHON) scripts/strip_self.py $(LOCK) $(RUNTIME_LOCK)
	rm -rf .venv-lock

$(RT_VENV)/.installed: $(RUNTIME_LOCK)
	test -x $(RT_VENV)/bin/python || $(PYTHON) -m venv $(RT_VENV)
	$(RT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(RT_VENV)/bin/python -m pip install --quiet --no-compile --require-hashes -r $(RUNTIME_LOCK)
	-$(RT_VENV)/bin/python -m compileall -q -j 0 $(RT_VENV)/lib >/dev/null
	touch $@

# A runtime-only install (no PyTorch) given a model cache the full install prepared:
# embeds a small catalog, serves /search/hybrid and runs watch --once (scripts/runtime_check.py)
runtime-check: $(STAMP) $(RT_VENV)/.installed
	$(RT_VENV)/bin/python -m pip install --quiet --no-deps --force-reinstall .
	PRODSEARCH_MODEL_CACHE=$(MODEL_CACHE) $(BIN)/prodsearch model export --modes bf16,int8,int8-static
	PRODSEARCH_MODEL_CACHE=$(MODEL_CACHE) $(RT_VENV)/bin/python scripts/runtime_check.py

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

# The lint and the runtime-only install run beside the suite (the suite waits on its own
# subprocesses, restarts and kills for much of its time); their output follows its own.
# Every part must pass; the runtime check needs the model exports the suite made.
test: $(STAMP) browser-deps
	@mkdir -p .make; \
	$(MAKE) --no-print-directory lint > .make/lint.log 2>&1 & lint=$$!; \
	$(MAKE) --no-print-directory $(RT_VENV)/.installed > .make/runtime-install.log 2>&1 & rt=$$!; \
	$(BIN)/python -m pytest -q; tests=$$?; \
	wait $$lint; linted=$$?; cat .make/lint.log; \
	wait $$rt; installed=$$?; [ $$installed -eq 0 ] || cat .make/runtime-install.log; \
	[ $$linted -eq 0 ] || { echo "make test: the lint failed"; exit 1; }; \
	[ $$installed -eq 0 ] || { echo "make test: the runtime-only install failed"; exit 1; }; \
	[ $$tests -eq 0 ] || exit $$tests
	$(MAKE) --no-print-directory runtime-check

# 16 clients for 60 s of mixed search while catalog changes are embedded (docs/RELIABILITY.md)
soak: $(STAMP)
	$(BIN)/prodsearch demo --no-serve
	$(BIN)/prodsearch bench soak --clients 16 --seconds 60

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts docs/experiments
	$(BIN)/ruff format --check src tests scripts docs/experiments
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(RT_VENV) .prodsearch .pytest_cache .make
