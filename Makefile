# The two commands of the README. Both create ./.venv on first use (about 6 minutes: pip pulls the
# standard torch build, which runs on CPU-only machines too) and reuse it afterwards.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo_output

.PHONY: setup demo benchmark test clean-demo

setup: $(VENV)/.installed

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

## the main job: the paper's experiment on synthetic data (teachers, pseudo-labels, students, report)
## SCENARIO=scarce|vast; EPOCHS=N trains every network N x 25 iterations into its own folder;
## rerunning resumes, `make clean-demo` starts afresh
SCENARIO ?= scarce
EPOCHS ?=
SEEDS ?= 3
DEMO_OUT = $(if $(EPOCHS),--epochs $(EPOCHS) --out $(DEMO_DIR)/$(SCENARIO)-cpu-e$(EPOCHS),--out $(DEMO_DIR)/$(SCENARIO)-cpu)
demo: setup
	$(BIN)/nnunet_ts demo --scenario $(SCENARIO) --scale cpu $(DEMO_OUT)

## the repeat study: the demo with baseline, SO and DO trained with SEEDS training seeds (default 3),
## BENCH_EPOCHS x 25 iterations each (default 160; the teachers keep the demo's budget), in its own folder
BENCH_EPOCHS ?= 160
benchmark: setup
	$(BIN)/nnunet_ts demo --scenario $(SCENARIO) --scale cpu --train-seeds $(SEEDS) \
		--student-epochs $(BENCH_EPOCHS) --out $(DEMO_DIR)/$(SCENARIO)-cpu-seeds$(SEEDS)-e$(BENCH_EPOCHS)

## the test suite (what CI runs): the linter, then the tests in two worker processes (tests that share
## a trained model or planned datasets run in one worker: tests/conftest.py)
test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup tests

clean-demo:
	rm -rf $(DEMO_DIR)
