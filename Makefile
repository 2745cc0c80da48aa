# mpcrnn set-up and entry points.  Every target does the whole set-up it needs, idempotently:
# .venv/.stamp is rebuilt only when the requirements or setup.cfg change.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp

.PHONY: venv test lint demo bench bench-quick clean

venv: $(STAMP)

$(STAMP): requirements.txt setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps crypten==0.4.1
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: $(STAMP) lint
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

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

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/harness.py --quick
	$(BIN)/python benchmarks/dp_rows.py --quick --epsilons 3
	$(BIN)/python benchmarks/learning_rows.py --quick
	$(BIN)/python benchmarks/adversarial_rows.py --quick --seeds 0
	$(BIN)/python benchmarks/bench_gru_step.py --optimizers --quick

clean:
	rm -rf $(VENV) runs bench-out
