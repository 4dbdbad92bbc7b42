# Two commands from a fresh clone: `make demo` (the main job on the built-in mock portal) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint soak bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/fapiao setup-browser
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/fapiao demo $(ARGS)

test: setup
	$(BIN)/python -m pytest $(ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

soak: setup
	$(BIN)/python -m pytest -m soak $(ARGS)

bench: setup
	$(BIN)/python -m bench.run $(ARGS)

clean:
	rm -rf $(VENV) demo-archive .pytest_cache
