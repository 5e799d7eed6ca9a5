# make reproduce     set up if needed, then execute every notebook (quick profile, ~10 min on 2 cores)
# make test          set up if needed, then run the test suite (< 10 min on 2 cores)
# make study         the multi-seed study, seed by seed, keeping run records (hours on 2 cores)
# make study-tables  rebuild results/study/'s tables and figures from its run records (minutes)
# make regime        the study in the paper's regime, seed by seed, keeping run records (hours)
# make regime-tables rebuild results/regime/'s tables and figures from its run records (minutes)
# make paper-check   score the paper's network (and regime's) without training: results/regime/paper_network/
# make setup       create .venv and install cutlib with its dependencies
# make lab         open JupyterLab on the notebooks
# make book        build the companion website into build/book/ (offline, under a minute)
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= quick
BIN := $(VENV)/bin
STAMP := $(VENV)/.cutlib-installed

.PHONY: setup test reproduce study study-tables regime regime-tables paper-check lab book lint \
	strip clean-runs

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,book,cluster]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

reproduce: $(STAMP)
	$(BIN)/cutlib reproduce --profile $(PROFILE)
	test "$(PROFILE)" != quick || $(BIN)/python -m cutlib.readme

study: $(STAMP)
	for seed in 0 1 2 3 4; do \
		$(BIN)/cutlib grid --profile study --jobs 2 --seeds $$seed --records || exit 1; \
	done
	$(BIN)/cutlib reproduce --profile study --only 07

study-tables: $(STAMP)
	$(BIN)/cutlib reproduce --profile study --only 07 -p model_figures=false
	$(BIN)/python -m cutlib.readme

regime: $(STAMP)
	for seed in 0 1 2 3 4; do \
		$(BIN)/cutlib grid --profile regime --jobs 2 --seeds $$seed --records || exit 1; \
	done
	$(BIN)/cutlib reproduce --profile regime --only 07 -p model_figures=false

regime-tables: $(STAMP)
	$(BIN)/cutlib reproduce --profile regime --only 07 -p model_figures=false
	$(BIN)/python -m cutlib.readme

paper-check: $(STAMP)
	$(BIN)/python -m cutlib.allocation results/regime/paper_network

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

book: $(STAMP)
	$(BIN)/python -m cutlib.book

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/nbstripout --verify notebooks/*.ipynb

strip: $(STAMP)
	$(BIN)/nbstripout notebooks/*.ipynb

clean-runs:
	rm -rf results/runs results/executed data/cache
