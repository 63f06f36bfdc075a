# The README's two commands: `make run` (install + the main job) and `make test` (install + the test suite).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install run test lint bench report clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[test]'
	touch $@

run: install  ## the study (offline: the synthetic demo, labelled as such)
	$(VENV)/bin/snakemake --cores all
	$(VENV)/bin/snakemake --report results/snakemake-report.html

test: install  ## the whole test suite, end-to-end run included
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules
	$(VENV)/bin/snakemake --lint

bench: install
	$(PY) bench/bench_synthetic.py
	$(PY) bench/bench_workflow.py
	$(PY) bench/bench_explain.py
	$(PY) bench/bench_input_pipeline.py
	$(PY) bench/bench_training_overhead.py
	$(PY) bench/bench_memory.py

clean:
	rm -rf results logs .snakemake
