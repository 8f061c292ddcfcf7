# dipcourse — the two set-up commands of the README are `make lab` and `make test`.
# Both create the virtual environment .venv when it is missing (or pyproject.toml changed).
#
#   make lab                      open the lessons in JupyterLab
#   make test                     every test: unit tests, lessons under nbval (quick profile, offline),
#                                 committed-output checks, student notebooks, browser tests
#   make run PROFILE=teaching     run the whole course headless into build/<profile>/ (times, HTML)
#   make refresh                  same in the teaching profile, writing outputs back into notebooks/
#   make student                  student notebooks (solutions stubbed) into student/
#   make test-latest              fresh .venv-latest with the newest releases, then the tests
#   make bench                    run every benchmarks/bench_*.py
#
# torch: by default the CPU wheel torch==2.13.0 from PyTorch's CPU index (small; where that index is
# unreachable pip falls back to PyPI or the machine's own wheel files). For an NVIDIA GPU pick a
# CUDA build instead, e.g.  make lab TORCH_INDEX=https://download.pytorch.org/whl/cu128
# To keep a torch you installed yourself: make lab TORCH=

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= teaching
TORCH ?= torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_LATEST ?= torch
PYTEST_ARGS ?=
# torch thread counts the lessons are tested at (the first also runs the unit and browser tests)
LESSON_THREADS ?= 2 1
LAB_ARGS ?=
LATEST_VENV ?= .venv-latest

PY := $(VENV)/bin/python
READY := $(VENV)/.dipcourse-ready
TORCH_INSTALL = $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
NBVAL := --nbval-lax --nbval-current-env --nbval-cell-timeout=900

.PHONY: env lab test run refresh student test-latest bench clean

env: $(READY)

# Create the venv and install the package with every optional backend that builds here.
# $(1) = venv folder, $(2) = torch requirement, $(3) = extra pip options.
define make_env
	@if [ ! -x $(1)/bin/python ]; then \
	  echo ">>> creating $(1) with $(PYTHON)"; \
	  $(PYTHON) -m venv $(1) || { rm -rf $(1); \
	    echo "!!! '$(PYTHON) -m venv' failed. On Debian/Ubuntu install the venv module first:"; \
	    echo "!!!     sudo apt install python3-venv     (then run the make command again)"; exit 1; }; \
	fi
	$(if $(2),$(1)/bin/python -m pip install -q $(3) "$(2)" $(TORCH_INSTALL))
	$(1)/bin/python -m pip install -q $(3) -e ".[test]"
	@$(1)/bin/python -m pip install -q $(3) -e ".[tv]" || { \
	  echo "!!! prox-tv could not be built, so the TV prox uses the built-in torch backend (same results, slower on CPU)."; \
	  echo "!!! To get it: sudo apt install liblapacke-dev build-essential python3-dev, then make again."; }
	@$(1)/bin/python -m pip install -q $(3) -e ".[bm3d]" || { \
	  echo "!!! bm3d could not be installed, so the BM3D prior is unavailable. Retry: $(1)/bin/pip install -e '.[bm3d]'"; }
endef

$(READY): pyproject.toml
	$(call make_env,$(VENV),$(TORCH),)
	@touch $@
	@echo ">>> environment ready: $(VENV)"

lab: $(READY)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# One pytest run: tests/ (unit, mutation, committed outputs, student, Colab, environment, browser,
# site) and every lesson under nbval in the quick profile; then the lessons again at the other thread
# counts of LESSON_THREADS. tests/conftest.py blocks the network inside every kernel, so the nbval run is
# also the offline test. CI=true turns skips of optional pieces into failures.
test: $(READY)
	DIPCOURSE_PROFILE=quick OMP_NUM_THREADS=$(firstword $(LESSON_THREADS)) \
	  $(PY) -m pytest tests notebooks $(NBVAL) --durations=15 $(PYTEST_ARGS)
	@set -e; for threads in $(wordlist 2,9,$(LESSON_THREADS)); do \
	  echo ">>> the lessons again with OMP_NUM_THREADS=$$threads (their claims must not depend on it)"; \
	  DIPCOURSE_PROFILE=quick OMP_NUM_THREADS=$$threads $(PY) -m pytest notebooks $(NBVAL) -q $(PYTEST_ARGS); \
	done

run: $(READY)
	$(PY) -m dipcourse.authoring.course run --profile $(PROFILE)

refresh: $(READY)
	$(PY) -m dipcourse.authoring.course run --profile teaching --inplace

student: $(READY)
	$(PY) -m dipcourse.authoring.student --out student

# "Latest" = the newest release of every dependency that pip may install here. torch: the newest
# from PyTorch's CPU index where it is reachable; on machines with a pip cap (/etc/xdg/pip, e.g.
# torch<=2.14.1) the newest the cap allows. Override with TORCH_LATEST='torch==X.Y'.
test-latest:
	rm -rf $(LATEST_VENV)
	$(call make_env,$(LATEST_VENV),$(TORCH_LATEST),--upgrade --upgrade-strategy eager)
	$(LATEST_VENV)/bin/python -m pip list
	DIPCOURSE_PROFILE=quick $(LATEST_VENV)/bin/python -m pytest tests notebooks $(NBVAL) $(PYTEST_ARGS)

bench: $(READY)
	@set -e; for script in benchmarks/bench_*.py; do \
	  echo ">>> $$script"; $(PY) $$script; done

clean:
	rm -rf build student test-output $(LATEST_VENV)

include site/site.mk
