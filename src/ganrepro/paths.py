"""Where things live: the project root, the MLflow store and the data folders."""
from __future__ import annotations

import os
from pathlib import Path


def project_root(start: Path | None = None) -> Path:
    """The project's root: the nearest folder, from `start` (default: cwd) up, holding dvc.yaml.

    `dvc exp run --temp` and `dvc queue` run stages in a copy under <root>/.dvc/tmp/exps/...;
    for those we return the outer project, so that their MLflow runs land in the user's store.
    `GANREPRO_ROOT` overrides the search.
    """
    if os.environ.get("GANREPRO_ROOT"):
        return Path(os.environ["GANREPRO_ROOT"]).resolve()
    start = (start or Path.cwd()).resolve()
    if ".dvc" in start.parts:
        start = Path(*start.parts[: start.parts.index(".dvc")])
    for folder in (start, *start.parents):
        if (folder / "dvc.yaml").exists():
            return folder
    return start


def tracking_uri() -> str:
    """MLflow's tracking URI: $MLFLOW_TRACKING_URI, else an absolute sqlite file at the root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


def artifact_root() -> Path:
    """Where MLflow artifacts (sample grids, configs) go for a new experiment: absolute too."""
    return project_root() / "mlartifacts"


def torch_home() -> Path:
    """torch's cache, where pretrained weights are looked for (hub/checkpoints/<file>)."""
    import torch.hub

    return Path(torch.hub.get_dir()).parent


# Folders, relative to the stage's working directory (the project root under DVC).
DATA = Path("data")
RAW = DATA / "raw"
PROCESSED = DATA / "processed"
FEATURE_NETS = DATA / "feature_nets"
FID_STATS = DATA / "fid_stats"
RUNS = DATA / "runs"
REPORTS = Path("reports")
METRICS = REPORTS / "metrics"
PLOTS = REPORTS / "plots"
