"""The one place that talks to MLflow.

    with Tracker("experiment", stage="train", profile="quick") as t:
        t.log_config(cfg)                    # params (flattened) + config.yaml artifact
        t.log_metrics({"loss_d": 0.7}, step) # buffered, sent in batches
        t.log_image("samples.png")

The run ends FINISHED, or FAILED if the block raises (KILLED on Ctrl-C): never left RUNNING.
The store is `paths.tracking_uri()` (absolute, so `dvc exp run --temp` runs are kept) and artifacts
go to an absolute folder beside it. DVC metric files stay the source of truth; MLflow is for browsing.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ganrepro import paths
from ganrepro.utils import git_commit

EXPERIMENT_PREFIX = "ganrepro"


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


class Tracker:
    def __init__(self, run_name: str, *, stage: str, profile: str, enabled: bool = True, flush_every: int = 500,
                 resume_run_id: str | None = None):
        """`resume_run_id`: continue that run (a training resumed from its checkpoint), if it still exists."""
        self.run_name, self.stage, self.profile = run_name, stage, profile
        self.enabled = enabled
        self.flush_every = flush_every
        self.resume_run_id = resume_run_id
        self.run_id: str | None = None
        self._buffer: list = []

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> "Tracker":
        if not self.enabled:
            return self
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=paths.tracking_uri())
        name = f"{EXPERIMENT_PREFIX}-{self.profile}"
        exp = self.client.get_experiment_by_name(name)
        exp_id = exp.experiment_id if exp else self.client.create_experiment(
            name, artifact_location=paths.artifact_root().as_uri()
        )
        tags = {
            "profile": self.profile,
            "dvc_stage": self.stage,
            "git_commit": git_commit(),
            "run_name": self.run_name,
            "dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""),
        }
        if self.resume_run_id and self._exists(self.resume_run_id):
            self.run_id = self.resume_run_id
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            self.run_id = self.client.create_run(exp_id, run_name=self.run_name, tags=tags).info.run_id
        return self

    def _exists(self, run_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_run(run_id)
            return True
        except MlflowException:
            return False

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.enabled or self.run_id is None:
            return
        status = "FINISHED" if exc_type is None else "KILLED" if exc_type is KeyboardInterrupt else "FAILED"
        try:
            self.flush()
            if exc is not None:
                self.client.set_tag(self.run_id, "error", f"{exc_type.__name__}: {exc}"[:5000])
        finally:
            self.client.set_terminated(self.run_id, status=status)

    # ------------------------------------------------------------ logging
    def set_tag(self, key: str, value: Any) -> None:
        if self.enabled:
            self.client.set_tag(self.run_id, key, str(value))

    def log_params(self, params: dict[str, Any]) -> None:
        if not self.enabled:
            return
        from mlflow.entities import Param

        flat = flatten(params)
        items = [Param(k, str(v)[:6000]) for k, v in flat.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def log_config(self, config: dict[str, Any]) -> None:
        self.log_params(config)
        if self.enabled:
            self.client.log_dict(self.run_id, config, "config.yaml")

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if not self.enabled:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._buffer += [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        while self.enabled and self._buffer:
            chunk, self._buffer = self._buffer[:1000], self._buffer[1000:]
            self.client.log_batch(self.run_id, metrics=chunk)

    def log_image(self, path: str | Path, artifact_path: str = "samples") -> None:
        if self.enabled:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self.enabled:
            self.client.log_artifact(self.run_id, str(path), artifact_path)
