# attnflow: the two commands of the README, each bootstrapping its own virtualenv from PyPI.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.attnflow-installed
DEMO   ?= examples/encoder_tiny.yaml
OUT    ?= build/demo
HEAD   ?= examples/sdpa_online.yaml

.PHONY: demo test test-full test-hf regress bench clean

# setuptools prints an "Editable installation" notice for every editable install of a
# package whose folders are mapped (pyproject's package-dir: attnflow.ir = ir, ...) about
# folders named like the package; the one here is the package itself, so it is silenced
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	PYTHONWARNINGS='ignore:Editable installation' $(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## demo: build the bundled tiny encoder (2 layers) and check its RTL bit- and cycle-exactly
## (no stalls, then random stalls); then the same for one attention head (README: measured time)
demo: $(STAMP)
	$(BIN)/attnflow build $(DEMO) -o $(OUT)
	$(BIN)/attnflow verify $(OUT)
	$(BIN)/attnflow verify $(OUT) --stall-seed 1
	$(BIN)/attnflow build $(HEAD) -o $(OUT)_head
	$(BIN)/attnflow verify $(OUT)_head
	$(BIN)/attnflow verify $(OUT)_head --stall-seed 1

## test: everything except the full RTL matrix, the long fuzz profile (`make test-full`)
## and the cross-check against transformers (`make test-hf`)
test: $(STAMP)
	$(BIN)/python -m pytest -m "not rtl_full and not fuzz_long and not hf" -q --durations=15

## test-hf: install torch (CPU) + transformers (the extra hf) and cross-check attnflow
## against the real model families (tiny models of every family; `-m "hf and slow"` adds
## BERT-base and GPT-2 small dimensions)
test-hf: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,hf]'
	$(BIN)/python -m pytest -m "hf and not slow" -q tests/test_hf_crosscheck.py tests/test_onnx_export.py

## test-full: the full RTL matrix (both variants x N x d x stall seeds), ~tens of minutes
test-full: $(STAMP)
	$(BIN)/python -m pytest -m "rtl_full or fuzz_long" -q

## regress: the full RTL matrix (pytest -m rtl_full: every design x stall seed on Verilator),
## one Dask task per test: on a LocalCluster (a worker per core), or on a cluster with
## SCHEDULER=tcp://HOST:PORT (its workers need this checkout at the same path); WORKERS=N,
## MARKS=..., K=... (pytest -k); one row per test in $(REGRESS)/results.csv, per RTL run in runs.csv
REGRESS ?= build/regress
MARKS   ?= rtl_full
regress: $(STAMP)
	$(BIN)/python -m attnflow.sweep_regress -m "$(MARKS)" -o $(REGRESS) \
		$(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(if $(WORKERS),--workers $(WORKERS)) \
		$(if $(K),-k "$(K)")

bench: $(STAMP)
	$(BIN)/python benchmarks/sim_vs_rtl.py
	$(BIN)/python benchmarks/encoder_balance.py

clean:
	rm -rf build .pytest_cache
