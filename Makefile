# The README's two commands: `make test` and `make demo`. Each creates .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export OMP_NUM_THREADS ?= 2
export MPLBACKEND := Agg

.PHONY: test test-slow demo lint bench bench-evidence clean

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
	$(PY) bench/synth.py --section throughput
	$(PY) bench/synth.py --section quality
	$(PY) bench/evaluate.py

# `make bench-evidence`: the evidence benchmark on 2 CPU cores (docs/benchmark.md): a 32 px phantom,
# then `medlt bench --preset cpu` (plain, cbdm, overlap, ccua x generator seeds 0,1, controls, oracle),
# then the table (printed; BENCH_OUT/bench/bench.{json,md,html}). Re-running resumes: finished cells
# are kept. BENCH_ARGS adds `medlt bench` options (e.g. BENCH_ARGS="--seeds 0,1,2").
BENCH_OUT ?= runs/bench-evidence
bench-evidence: $(STAMP)
	@test -f $(BENCH_OUT)/phantom/medlt_phantom.json || \
	  $(PY) -m medlt phantom --layout nih-cxr-lt --out $(BENCH_OUT)/phantom --image-size 32 --seed 0
	MEDLT_PROGRESS=$${MEDLT_PROGRESS:-lines} $(PY) -m medlt bench recipes/phantom/bench_cpu.yaml --preset cpu \
	  --out $(BENCH_OUT)/bench --set data.root=$(BENCH_OUT)/phantom --set data.labels=$(BENCH_OUT)/phantom $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo_out .pytest_cache
