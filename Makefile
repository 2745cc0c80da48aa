# mpcrnn set-up and entry points.  Every target does the whole set-up it needs, idempotently:
# .venv/.stamp is rebuilt only when the lock or setup.cfg change.
#
# Dependencies: requirements.in is the input (top-level packages, loosely; edit it), and
# requirements.txt is the lock of exact versions that `make venv` installs, written by
# pip-compile (pip-tools; options in pyproject.toml's [tool.pip-tools]) with `make lock`, never by
# hand.  `make lock-check` (run by `make test`, so by CI) fails, offline, when the lock does not
# satisfy the input; `make lock-diff` recompiles (needs the package index) and shows what differs.
# crypten==0.4.1 is not in the lock: it is installed with --no-deps (see requirements.in).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp

.PHONY: venv test test-fast lint lock lock-check lock-diff demo bench bench-quick clean

venv: $(STAMP)

$(STAMP): requirements.txt setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps crypten==0.4.1
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: $(STAMP) lint lock-check
	$(BIN)/python -m pytest -q tests

# every change: the tests that start no processes and are not slow (under 60 s on 2 cores)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not processes and not slow" tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

lock: $(STAMP)
	$(BIN)/pip-compile --quiet --output-file requirements.txt requirements.in

lock-check: $(STAMP)
	$(BIN)/python .ci/lock_check.py

lock-diff: $(STAMP)
	rm -rf $(VENV)/lock-diff && mkdir $(VENV)/lock-diff
	cp requirements.in requirements.txt pyproject.toml $(VENV)/lock-diff/
	cd $(VENV)/lock-diff && ../bin/pip-compile --quiet --output-file requirements.txt requirements.in
	diff -u requirements.txt $(VENV)/lock-diff/requirements.txt

demo: $(STAMP)
	$(BIN)/mpcrnn train

# Every benchmark writes <name>.md (a header naming command, commit, date, machine and load, then
# its table) and <name>.json through benchmarks/common: full runs into benchmarks/results/ (to be
# committed), --quick runs into bench-out/ (ignored by git).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_config_fix.py
	$(BIN)/python benchmarks/harness.py
	$(BIN)/python benchmarks/dp_rows.py
	$(BIN)/python benchmarks/learning_rows.py
	$(BIN)/python benchmarks/one_bad_step.py
	$(BIN)/python benchmarks/bench_gru_step.py --optimizers
	$(BIN)/python benchmarks/adversarial_rows.py
	$(BIN)/python benchmarks/regression_rows.py --mpc
	$(BIN)/python benchmarks/forecast_sunspots.py --mpc
	$(BIN)/python benchmarks/bench_he.py
	$(BIN)/python benchmarks/prg_cost.py

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/harness.py --quick
	$(BIN)/python benchmarks/dp_rows.py --quick --epsilons 3
	$(BIN)/python benchmarks/learning_rows.py --quick
	$(BIN)/python benchmarks/adversarial_rows.py --quick --seeds 0
	$(BIN)/python benchmarks/bench_gru_step.py --optimizers --quick
	$(BIN)/python benchmarks/regression_rows.py --quick --seeds 0 --epochs 8
	$(BIN)/python benchmarks/forecast_sunspots.py --quick --seeds 0

clean:
	rm -rf $(VENV) runs bench-out
