# Two entry points that work on a fresh machine with only Python 3.11:
#   make run    the main job (vringfuzz campaign)
#   make test   the whole test suite (pytest -n auto, CI Hypothesis profile)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/vringfuzz campaign

test: $(STAMP)
	HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest -n auto -q

bench: $(STAMP)
	$(BIN)/vringfuzz bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
