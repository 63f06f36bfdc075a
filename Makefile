# The README's two commands: `make run` (install + the main job) and `make test` (install + the test suite).
VENV ?= .venv
PY := $(VENV)/bin/python
# The hashed closure to install: requirements-gpu.lock adds TensorFlow's CUDA libraries (Linux x86_64).
LOCK ?= requirements.lock
LOCK_VENV := .venv-lock
UV_PIN := $(shell sed -n 's/.*"\(uv==[^"]*\)".*/\1/p' pyproject.toml)
UV_COMPILE = $(LOCK_VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command "make lock" --quiet

.PHONY: install run test test-fast lint bench report clean lock envs check-pythons

install: $(VENV)/.installed

# Every package from the lock, each checked against its hash, then alldag itself (editable, code only).
$(VENV)/.installed: $(LOCK) pyproject.toml
	python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install --no-deps -e .
	$(PY) -m pip check
	touch $@

lock:  ## after editing pyproject.toml: re-resolve both locks (needs PyPI) and rewrite envs/
	test -x $(LOCK_VENV)/bin/uv || (python3 -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/pip install --quiet '$(UV_PIN)')
	$(UV_COMPILE) $$(python3 tools/envs.py --lock-extras) -o requirements.lock
	$(UV_COMPILE) $$(python3 tools/envs.py --lock-extras) --extra gpu -o requirements-gpu.lock
	python3 tools/envs.py

envs:  ## rewrite envs/*.yaml from pyproject.toml ([tool.alldag.envs] and the pins)
	python3 tools/envs.py

PYTHONS ?= python3.12 python3.13
check-pythons:  ## does the lock install on Python 3.12 and 3.13? (pip dry run with each interpreter; needs PyPI)
	for py in $(PYTHONS); do \
	  $$py -m pip install --dry-run --quiet --no-deps --ignore-installed --only-binary=:all: \
	    --no-binary=connection-pool,lime --target $$(mktemp -d) --require-hashes -r requirements.lock \
	    && echo "$$py: every locked package installs ($$($$py --version))" || exit 1; \
	done

run: install  ## the study (offline: the synthetic demo, labelled as such)
	$(VENV)/bin/snakemake --cores all
	$(VENV)/bin/snakemake --report results/snakemake-report.html

# pytest-xdist workers (0: one process); tests/conftest.py hands each a whole module (the two MLflow-server
# modules together) and makes the tiny study run once for all of them.
TEST_WORKERS ?= 2

test: install  ## the whole test suite: tests/unit, tests/workflow and tests/e2e (what CI runs)
	$(PY) -m pytest -q -n $(TEST_WORKERS)

test-fast: install  ## the unit tier only (tests/unit, in-process, under 2 minutes)
	$(PY) -m pytest -q -n $(TEST_WORKERS) tests/unit

lint: install  ## ruff (lint and format, settings in pyproject.toml), snakefmt and snakemake --lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules
	$(VENV)/bin/snakemake --lint

bench: install
	$(PY) bench/bench_synthetic.py
	$(PY) bench/bench_workflow.py
	$(PY) bench/bench_explain.py
	$(PY) bench/bench_input_pipeline.py
	$(PY) bench/bench_training_overhead.py
	$(PY) bench/bench_audit.py
	$(PY) bench/bench_model_storage.py
	$(PY) bench/bench_memory.py

clean:
	rm -rf results logs .snakemake
