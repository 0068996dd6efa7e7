# Two commands on a fresh machine:  make demo   and   make test
# Each sets up .venv from nothing (idempotent: redone only when the packaging changes).

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
DEMO_OUT ?= demo-out

.PHONY: venv demo test test-all lint bench clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[dev,bench,gaze]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/masked-gatys demo --out $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check masked_gatys tests benchmarks examples scripts

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ""

bench: $(STAMP)
	$(BIN)/masked-gatys bench --json benchmarks/results/bench-cpu.json --plot benchmarks/results/bench-cpu.png

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache $(DEMO_OUT)
