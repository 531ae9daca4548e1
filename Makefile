# Entry point for users and CI. Only python3 and make are needed: the first target that needs
# the environment creates .venv and installs the project into it.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PRESET ?= default
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
BEFORE_SWEEP := $(filter notebooks/0%,$(filter-out notebooks/06_% notebooks/07_%,$(NOTEBOOKS)))
# 07 before 06: 07 trains VGG16, which 06's table of every trained model shows (a first run would miss it)
AFTER_SWEEP := $(filter notebooks/07_%,$(NOTEBOOKS)) $(filter-out $(BEFORE_SWEEP) notebooks/07_%,$(NOTEBOOKS))
EXECUTED := results/notebooks
comma := ,
PIP := $(PY) -m pip install --disable-pip-version-check -c constraints.txt

.PHONY: help reproduce test lab bench sweep clean clean-stale distclean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# the test stamp also installs the sweep executors' extras, so their tests run in CI
$(VENV)/.stamp-%: pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --quiet -e ".[$(if $(filter test,$*),test$(comma)dask$(comma)slurm,$*)]"
	@touch $@

# papermill each notebook given in $(1) on the preset, into $(EXECUTED); --log-output prints the cells' output
# (training progress included) as they run
define run_notebooks
	@set -e; for nb in $(1); do \
	  echo "== $$nb (preset $(PRESET))"; \
	  $(VENV)/bin/papermill --log-output --cwd notebooks "$$nb" "$(EXECUTED)/$$(basename $$nb)" -p preset $(PRESET); \
	done
endef

reproduce: $(VENV)/.stamp-test  ## the whole paper on params/$(PRESET).yaml: notebooks 01-05, the sweep, 06-07
	@mkdir -p $(EXECUTED) && date +%s > $(EXECUTED)/.started
	$(call run_notebooks,$(BEFORE_SWEEP))
	$(PY) -m fer_utils sweep --preset $(PRESET)
	$(call run_notebooks,$(AFTER_SWEEP))
	$(PY) -m fer_utils publish-notebooks --preset $(PRESET) --executed $(EXECUTED)
	@echo "make reproduce (preset $(PRESET)): $$(( ($$(date +%s) - $$(cat $(EXECUTED)/.started)) / 60 )) min after set-up"

test: $(VENV)/.stamp-test  ## ruff (settings in pyproject.toml), then unit tests + notebooks under nbval on the quick preset
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest --nbval-lax --durations=20 tests $(NOTEBOOKS)

# JupyterLab exits at once when run as root (most containers) unless given --allow-root, so the
# recipe passes it only then; LAB_ARGS adds options (tests/test_lab.py: --no-browser, port, ...).
# The test extra holds JupyterLab, so after `make test` the server starts without installing anything.
LAB_ARGS ?=
lab: $(VENV)/.stamp-test  ## open JupyterLab on the notebooks (LAB_ARGS: more options)
	$(VENV)/bin/jupyter lab $$(test "$$(id -u)" = 0 && echo --allow-root) $(LAB_ARGS) notebooks/

bench: $(VENV)/.stamp-test  ## every speed benchmark, as ratios to a baseline run alongside
	@set -e; for t in $$($(PY) -c "from fer_utils.benchmarks import available; print(*available())"); do \
	  $(PY) -m fer_utils bench $$t --preset $(PRESET); \
	done

# EXECUTOR=local WORKERS=4, or EXECUTOR=dask SCHEDULER=tcp://host:8786, or EXECUTOR=slurm (docs/running.md)
EXECUTOR ?=
WORKERS ?=
SCHEDULER ?=
SWEEP_ARGS = $(if $(EXECUTOR),--executor $(EXECUTOR)) $(if $(WORKERS),--workers $(WORKERS)) \
	$(if $(SCHEDULER),--scheduler $(SCHEDULER))
sweep: $(VENV)/.stamp-test  ## every arm over every ratio and seed of the preset (EXECUTOR, WORKERS, SCHEDULER)
	$(PY) -m fer_utils sweep --preset $(PRESET) $(SWEEP_ARGS)

clean:  ## remove run outputs and caches: results/ (every preset's runs), .pytest_cache (not .venv, data/, figures/)
	rm -rf results .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

clean-stale: $(VENV)/.stamp-test  ## remove the crop-cache folders of the preset that `check` names stale (docs/datasets.md)
	$(PY) -m fer_utils clean-cache --preset $(PRESET)

distclean: clean  ## clean, and remove .venv (data/ stays: delete data/<preset> to write the world again)
	rm -rf $(VENV)
