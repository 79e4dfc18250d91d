"""The one place that talks to MLflow: one MLflow run per trained model.

    with Tracker("experiment", stage="train", profile="quick", tags=run_tags(cfg)) as t:
        t.log_config(cfg)                    # params (flattened) + config.yaml artifact, once
        t.log_metrics({"loss_d": 0.7}, step) # buffered, sent in batches
        t.log_image("samples.png")
        t.log_generator(G)                   # an MLflow PyTorch model: z -> images

    with EvaluationTracker(load_checkpoint("data/runs/experiment/checkpoint.pt")) as t:
        results, curve = ...                 # computed before anything is logged
        t.log_evaluation(results, curve)     # onto the training run above

A training run ends FINISHED, or FAILED if the block raises (KILLED on Ctrl-C): never left RUNNING.
The store is `paths.tracking_uri()` (absolute, so `dvc exp run --temp` runs are kept) and artifacts
go to an absolute folder beside it. DVC metric files stay the source of truth; MLflow is for browsing.

**Evaluation writes onto the training run**, not into a run of its own or a nested child run:
MLflow's runs table shows one row per run, and what its users do with it is sort the models by FID
and read their learning rate, family and loss curves on the same row (`metrics.fid.digit_classifier`
beside `params.lr_g`). A child run holding the FID would sit on another row, without the params,
and the chart comparing runs would need both. So each trained model is one run: its params (logged
once, by training), per-step losses, sample grids, the generator, then evaluation's headline numbers
(`fid.<backend>`, `kid.<backend>`, ..., and `fid_seeds.<backend>.mean`/`.std`, the spread over the
training seeds, which train their own runs `<run>-seed<k>`) and the FID curve `fid_curve.<backend>`
at each snapshot's generator step.

The run to write onto is the `mlflow_run_id` stored in the checkpoint being evaluated, not a file of
its own: the checkpoint is written atomically together with the weights it names, so the id always
belongs to the training that made them (a side file could survive a restarted training), and
evaluation reads that checkpoint anyway. When that run is gone from the store (mlflow.db deleted or
the run purged), evaluation creates a run of the same name and tags, with the params and the losses
the checkpoint holds, and writes onto it (a second evaluation finds it again by its
`checkpoint_run_id` tag).

**A failed evaluation** leaves the training run's status as the training left it (FINISHED): FAILED
would claim the training failed, for good, since nothing sets it back. The error goes to the tag
`eval_error` instead, which the next successful evaluation removes. All of evaluation's numbers are
computed before the first one is logged, so a bad input (a corrupt file, a metric that raises)
leaves no half-written evaluation, and, for a run missing from the store, no run at all.

**In the UI** (docs/mlflow.md) the experiment is tagged as a model-training one (EXPERIMENT_KIND),
and evaluation keeps a view of the runs table sorted by FID (MODELS_VIEW).
"""
from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from ganrepro import paths
from ganrepro.utils import git_commit

EXPERIMENT_PREFIX = "ganrepro"
# The MLflow 3 UI's experiment kinds (its JS bundle): "custom_model_development" is "Machine
# learning", the model-training view (runs, charts, logged models); "genai_development" the GenAI one
# (traces, prompts). MLflow 3.17.2's UI does not read this tag (checked in headless Chromium): it
# shows every experiment in the view of its global "GenAI | Model training" switch (default GenAI,
# remembered by the browser) or of the URL's `workflowType=machine_learning`. Set for UIs that do.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
# The runs table as docs/mlflow.md opens it (#/experiments/<id>/runs?viewStateShareKey=models): a
# shared view of the UI, whose state it reads from this experiment tag (compressed, or plain JSON).
MODELS_VIEW = "mlflow.sharedViewState.models"
MODEL_NAME = "generator"
MODEL_REQUIREMENTS = ("torch", "torchvision", "torchdeq")  # what the pickled generators import
EVAL_ERROR = "eval_error"


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def run_tags(cfg, name: str | None = None) -> dict[str, str]:
    """The tags of a model's run, to filter the runs table by (`tags.paper LIKE '%DEQ%'`).

    `cfg`: a RunConfig or its dict (a checkpoint's `config`); `name`: the run's name when it is not
    the config's own (an extra seed's `<run>-seed1`). `paper` is the preset's `paper` text.
    """
    c = cfg if isinstance(cfg, dict) else cfg.model_dump(mode="json")
    return {"paper": c["paper"], "family": c["family"], "preset": c["preset"], "run_name": name or c["name"],
            "profile": c["profile"], "dataset": c["dataset"], "data": c["data"], "seed": str(c["seed"])}


def evaluation_metrics(results: dict) -> dict[str, float]:
    """Evaluation's headline numbers, as the DVC metric files name them: a backend's `value` under
    the metric's name (`fid.digit_classifier`), FID's spread over seeds as `fid_seeds.<backend>.mean`
    and `.std` (std only with 2+ seeds). Protocols, per-seed values and skipped backends are left out."""
    out = {}
    for key, v in flatten(results).items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or ".protocol." in key:
            continue
        if key.endswith(".value"):
            out[key.removesuffix(".value")] = float(v)
        elif key.startswith("fid_seeds.") and key.endswith((".mean", ".std")):
            out[key] = float(v)
    return out


def models_view(fid_keys: list[str]) -> str:
    """The runs table with one row per model sorted by FID (the first of `fid_keys`), its FID columns,
    learning rate, family and paper beside it, and its logged generator."""
    columns = ["attributes.`Models`", *(f"metrics.`{k}`" for k in fid_keys), "params.`lr_g`", "tags.`family`",
               "tags.`paper`"]
    return json.dumps({"orderByKey": f"metrics.`{fid_keys[0]}`", "orderByAsc": True, "selectedColumns": columns})


def pinned_requirements() -> list[str]:
    """pip pins of what a logged generator needs, from this environment (so MLflow does not spend
    seconds inferring them by loading the model in a subprocess)."""
    pins = []
    for name in MODEL_REQUIREMENTS:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pass
    return pins


@contextmanager
def _env(**values: str):
    """These environment variables set for the block, then restored."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def _quiet(logger: str):
    """That logger's warnings off for the block."""
    import logging

    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


class Tracker:
    def __init__(self, run_name: str, *, stage: str, profile: str, enabled: bool = True, flush_every: int = 500,
                 resume_run_id: str | None = None, tags: dict[str, str] | None = None):
        """`resume_run_id`: continue that run (a training resumed from its checkpoint), if it still exists.
        `tags`: set on a new run, beside profile, run name, stage, git commit and DVC experiment name."""
        self.run_name, self.stage, self.profile = run_name, stage, profile
        self.enabled = enabled
        self.flush_every = flush_every
        self.resume_run_id = resume_run_id
        self.tags = tags or {}
        self.run_id: str | None = None
        self._buffer: list = []

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> "Tracker":
        if not self.enabled:
            return self
        self._open_experiment()
        if self.resume_run_id and self._exists(self.resume_run_id):
            self.run_id = self.resume_run_id
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            self._create_run()
        return self

    def _open_experiment(self) -> None:
        """The profile's experiment `ganrepro-<profile>`, created if missing, opening in the UI's
        model-training view (EXPERIMENT_KIND, also set on an older experiment that lacks it)."""
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        self.client = MlflowClient(tracking_uri=paths.tracking_uri())
        name, (kind, value) = f"{EXPERIMENT_PREFIX}-{self.profile}", EXPERIMENT_KIND
        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            try:
                self.experiment_id = self.client.create_experiment(
                    name, artifact_location=paths.artifact_root().as_uri(), tags={kind: value})
                return
            except MlflowException:  # created meanwhile by a stage running in parallel
                exp = self.client.get_experiment_by_name(name)
        self.experiment_id = exp.experiment_id
        if kind not in exp.tags:
            self.client.set_experiment_tag(self.experiment_id, kind, value)

    def _create_run(self) -> None:
        tags = {
            **self.tags,
            "profile": self.profile,
            "dvc_stage": self.stage,
            "git_commit": git_commit(),
            "run_name": self.run_name,
            "dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""),
        }
        self.run_id = self.client.create_run(self.experiment_id, run_name=self.run_name, tags=tags).info.run_id

    def _exists(self, run_id: str) -> bool:
        """True for a run in the store that can be logged to (not deleted)."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(run_id).info.lifecycle_stage == "active"
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

    def log_generator(self, G, name: str = MODEL_NAME) -> str | None:
        """Log `G` (a models.export.ExportedGenerator: z -> images) as an MLflow PyTorch model of this
        run; returns its `models:/<model_id>` URI, or None if MLflow failed (a warning and the tag
        `log_model_error`: days of training are not thrown away for a browsing aid).

        Pickled: MLflow's other format, torch.export ("pt2", its default outside Databricks), traces
        the model at the input example's shapes, so would fix the batch size, and specialise the
        DEQ solver's data-dependent loop. Explicit pip pins, and a 2-row input example from G's prior.
        """
        if not self.enabled:
            return None
        try:
            return self._log_generator(G, name)
        except Exception as e:
            message = f"{type(e).__name__}: {e}"
            print(f"warning: the generator was not logged to MLflow ({message.splitlines()[0]})", file=sys.stderr)
            self.set_tag("log_model_error", message[:5000])
            return None

    def _log_generator(self, G, name: str) -> str:
        import mlflow.pytorch
        import torch
        from mlflow.tracking._tracking_service.utils import _use_tracking_uri

        from mlflow.models import ModelSignature
        from mlflow.types import Schema, TensorSpec

        example = G.sample_z(2, generator=torch.Generator().manual_seed(0)).cpu().numpy()  # (2, z_dim) float32
        signature = ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, G.z_dim))]),
                                   outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *G.image_shape))]))
        # The logged model must belong to this run's experiment: MLflow takes it from the active
        # run or experiment otherwise, so the model is created first, with the experiment named.
        # MLflow checks the input example by reloading the file it just wrote, which needs pickle
        # allowed; a user loading it later sets MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true (docs/mlflow.md).
        # Its warning that pickle files can run code is for loading files of unknown origin (ours are
        # not); it would be printed once per model.
        with _use_tracking_uri(paths.tracking_uri()), _env(MLFLOW_ALLOW_PICKLE_DESERIALIZATION="true"), \
                _quiet("mlflow.pytorch"):
            model = mlflow.initialize_logged_model(name=name, source_run_id=self.run_id,
                                                   experiment_id=self.experiment_id, tags=self.tags or None)
            info = mlflow.pytorch.log_model(G, name=name, model_id=model.model_id, run_id=self.run_id,
                                            signature=signature, input_example=example,
                                            pip_requirements=pinned_requirements(), serialization_format="pickle")
        return info.model_uri


class EvaluationTracker(Tracker):
    """Evaluation's numbers onto the training run of a checkpoint (see the module docstring).

    The training run's status is left as it is; an exception in the block becomes its `eval_error`
    tag. If the run is gone from the store, a run of the same name and tags is created when
    `log_evaluation` first has something to log (and ends FINISHED, or FAILED, as its own).
    """

    def __init__(self, checkpoint: dict, *, enabled: bool = True):
        cfg = checkpoint["config"]
        self.copied = checkpoint.get("copied_from") or {}  # a copy of another run's training (ganrepro.reuse)
        copy_tags = {"same_training_as": self.copied["run"],
                     "same_training_run_id": self.copied.get("mlflow_run_id") or "none"} if self.copied else {}
        super().__init__(cfg["name"], stage="evaluate", profile=cfg["profile"], enabled=enabled,
                         resume_run_id=checkpoint.get("mlflow_run_id"), tags=run_tags(cfg) | copy_tags)
        self.checkpoint = {k: checkpoint.get(k) for k in ("config", "mlflow_run_id", "step", "history")}  # not G, D
        self.created = False

    def __enter__(self) -> "EvaluationTracker":
        if not self.enabled:
            return self
        self._open_experiment()
        if self.resume_run_id and self._exists(self.resume_run_id):
            self.run_id = self.resume_run_id
        elif self.resume_run_id:  # recreated by an earlier evaluation?
            found = self.client.search_runs([self.experiment_id], max_results=1,
                                            filter_string=f"tags.checkpoint_run_id = '{self.resume_run_id}'")
            self.run_id = found[0].info.run_id if found else None
        elif self.copied:  # a copied training's own run, made by an earlier evaluation of it
            found = self.client.search_runs([self.experiment_id], max_results=1, filter_string=(
                f"tags.run_name = '{self.run_name}' and "
                f"tags.same_training_run_id = '{self.tags['same_training_run_id']}'"))
            self.run_id = found[0].info.run_id if found else None
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.enabled or self.run_id is None:
            return  # nothing was logged: a missing run is created only when there are numbers
        if self.created:
            return super().__exit__(exc_type, exc, tb)
        if exc is not None:
            self._buffer = []  # none of a failed evaluation's numbers
            self.client.set_tag(self.run_id, EVAL_ERROR, f"{exc_type.__name__}: {exc}"[:5000])
        elif EVAL_ERROR in self.client.get_run(self.run_id).data.tags:
            self.client.delete_tag(self.run_id, EVAL_ERROR)  # an earlier evaluation's failure, now fixed

    def _recreate(self) -> None:
        """A run standing in for the vanished training run: its name, tags, params and losses."""
        ckpt = self.checkpoint
        self.tags = {**self.tags, "checkpoint_run_id": ckpt.get("mlflow_run_id") or "none"}
        self._create_run()
        self.created = True
        self.log_params(ckpt["config"] | {"resolved_steps": ckpt["step"]})  # as training logged them
        for row in ckpt["history"] or []:
            self.log_metrics({k: v for k, v in row.items() if k != "step"}, row["step"])

    def log_evaluation(self, results: dict, curve) -> None:
        """The results of ganrepro.evaluation.evaluate (as `evaluation_metrics` names them, at the
        checkpoint's final step), the full results as evaluation.json, and the FID curve (a frame of
        step, fid_<backend>) as `fid_curve.<backend>` at each snapshot's generator step."""
        if not self.enabled:
            return
        if self.run_id is None:
            self._recreate()
        self.client.log_dict(self.run_id, results, "evaluation.json")
        metrics = evaluation_metrics(results)
        self.log_metrics(metrics, self.checkpoint["step"])
        for row in curve.to_dict("records"):
            self.log_metrics({f"fid_curve.{k.removeprefix('fid_')}": v for k, v in row.items() if k != "step"},
                             int(row["step"]))
        self.flush()
        fid = [k for k in metrics if k.startswith("fid.")]
        view = models_view(fid) if fid else None
        if view and self.client.get_experiment(self.experiment_id).tags.get(MODELS_VIEW) != view:
            self.client.set_experiment_tag(self.experiment_id, MODELS_VIEW, view)
