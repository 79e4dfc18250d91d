# make repro   create .venv if missing, install the pinned stack, run the DVC pipeline
# make test    create .venv if missing, run the test suite
# make ui      browse the MLflow runs at http://127.0.0.1:5000
# make paper          run the whole pipeline at the papers' scale (GPU, downloads)
# make paper-data     download the paper profile's datasets (PAPER=deq-gan for one paper's)
# make paper-dryrun   the paper profile's whole DAG on this CPU: paper shapes and protocols, 2 steps, synthetic data
# make compare the experiments side by side: the knobs and the experiment's headline metrics (dvc exp show)
# make bench   run the benchmarks at quick scale on the CPU, write reports/benchmarks.md and .json
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: repro test ui compare paper paper-data paper-dryrun bench install

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e ".[dev]"
	touch $@

repro: $(STAMP)
	dvc repro

test: $(STAMP)
	python -m pytest

# `dvc exp show` lists every column of every stage; keep the knobs (params the configure stage
# declares) and the experiment's headline metrics: a table for a 200-column terminal
COMPARE_KEEP := '^(Experiment|profile|model|dataset|lr|steps|seed)$$' '^(fid|inception_score|lpips_diversity)\.' '^train_seconds$$'
compare: $(STAMP)
	dvc exp show --param-deps --drop '.*' $(foreach k,$(COMPARE_KEEP),--keep $(k)) $(ARGS)

ui: $(STAMP)
	@echo "models by FID: http://127.0.0.1:5000/#/experiments/1/runs?viewStateShareKey=models&workflowType=machine_learning"
	mlflow ui --backend-store-uri "sqlite:///$(CURDIR)/mlflow.db" --host 127.0.0.1 --port 5000

paper: $(STAMP)
	dvc exp run --name paper -S profile=paper

# workspace build/paper-dryrun/ (its pages under the dry-run banner); writes reports/paper-plan.md
paper-dryrun: $(STAMP)
	python -m ganrepro.dryrun

# one line per failed dataset, past failures; sets already complete are not fetched again
paper-data: $(STAMP)
	python stages/download.py --profile paper $(if $(PAPER),--paper $(PAPER))

bench: $(STAMP)
	python benchmarks/deq_vs_wgan.py --quick
	python benchmarks/pipeline_overhead.py --quick
	python benchmarks/eval_cost.py --quick
	python benchmarks/scaling.py --quick
	python benchmarks/collect.py
