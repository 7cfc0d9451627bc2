# The README's two commands: `make test` and `make demo`. Each creates .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export OMP_NUM_THREADS ?= 2
export MPLBACKEND := Agg

.PHONY: test test-slow demo lint bench clean

$(STAMP): pyproject.toml constraints-cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints-cpu.txt -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q

demo: $(STAMP)
	bash scripts/demo.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check medlt tests bench

bench: $(STAMP)
	$(PY) bench/ingest.py
	$(PY) bench/train_step.py
	$(PY) bench/synth.py
	$(PY) bench/evaluate.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache
