# mpcrnn set-up and entry points.  Every target does the whole set-up it needs, idempotently:
# .venv/.stamp is rebuilt only when the requirements or setup.cfg change.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp

.PHONY: venv test test-fast lint demo bench bench-quick clean

venv: $(STAMP)

$(STAMP): requirements.txt setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps crypten==0.4.1
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: $(STAMP) lint
	$(BIN)/python -m pytest -q tests

# every change: the tests that start no processes and are not slow (under 60 s on 2 cores)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not processes and not slow" tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

demo: $(STAMP)
	$(BIN)/mpcrnn train

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_config_fix.py
	$(BIN)/python benchmarks/harness.py --out bench-out
	$(BIN)/python benchmarks/learning_rows.py --out bench-out
	$(BIN)/python benchmarks/one_bad_step.py
	$(BIN)/python benchmarks/bench_gru_step.py --optimizers
	$(BIN)/python benchmarks/adversarial_rows.py --out bench-out

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/harness.py --quick --out bench-out
	$(BIN)/python benchmarks/learning_rows.py --quick --out bench-out
	$(BIN)/python benchmarks/adversarial_rows.py --quick --seeds 0 --out bench-out
	$(BIN)/python benchmarks/bench_gru_step.py --optimizers --quick

clean:
	rm -rf $(VENV) runs bench-out
