"""One training and one evaluation per distinct configuration (ganrepro.reuse).

The groups of runs that share a training at each profile, read from the project's params.yaml; and,
in a scratch project (stages in-process, as test_corrupt_files.py runs them), that a second run of the
same config copies the first's training and evaluation, marks them, gets its own MLflow run with the
source's losses, and trains or evaluates itself when the source is stale or its settings differ.
"""
from __future__ import annotations

import collections
import json
import shutil
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from conftest import ROOT
from ganrepro import pipeline, records, reuse
from ganrepro.config import load_params
from test_corrupt_files import edit, run_stage
from test_corrupt_files import trained  # noqa: F401  (a module fixture: experiment trained, fid_stats)
from test_tracking import store_runs as store, use_project as use

SOURCE, COPY = "experiment", "dcgan_cifar10"  # the same training at the quick profile


def groups(profile: str) -> list[list[str]]:
    params = load_params(ROOT / "params.yaml").model_copy(update={"profile": profile})
    by_key = collections.defaultdict(list)
    for run in pipeline.runs(params):
        by_key[json.dumps(reuse.key(run), sort_keys=True)].append(run.name)
    return sorted(names for names in by_key.values() if len(names) > 1)


def test_the_quick_profile_trains_13_configurations_for_19_runs_and_the_paper_profile_each_run():
    assert groups("quick") == [
        ["began_celeba_g05", "began_cifar10"],
        ["deq_pokemon_1b_lr1e4", "deq_mnist_1b", "deq_fashion_mnist_1b"],
        ["experiment", "dcgan_cifar10"],
        ["wgan_pokemon", "wgan_mnist", "wgan_fashion_mnist"],
    ]
    assert groups("paper") == [["experiment", "dcgan_cifar10"]]  # the experiment starts as the DCGAN run


# ---------------------------------------------------------------- the stages, in a scratch project
@pytest.fixture
def project(trained, tmp_path, monkeypatch) -> Path:
    """test_corrupt_files' trained project (experiment trained, fid_stats cached), without
    dcgan_cifar10's outputs and with an empty MLflow store but the experiment's training run."""
    root = tmp_path / "project"
    shutil.copytree(trained, root)
    shutil.rmtree(root / "data" / "runs" / COPY)
    for f in root.glob(f"reports/*/*/{COPY}*"):
        f.unlink()
    use(monkeypatch, root)
    return root


def evaluation(root: Path, run: str) -> dict:
    return records.read(root / "reports" / "metrics" / "evaluate" / f"{run}.json", pipeline.metrics_key(run))


def test_a_second_run_of_the_same_config_copies_the_training_and_the_evaluation(project, capsys):
    assert run_stage("train", ["--run", COPY]) == 0
    assert f"the same training as {SOURCE}" in capsys.readouterr().out
    src, dst = (torch.load(project / "data" / "runs" / r / "checkpoint.pt", weights_only=False) for r in (SOURCE, COPY))
    assert dst["config"]["name"] == COPY and dst["copied_from"]["run"] == SOURCE and dst["mlflow_run_id"] is None
    assert all(torch.equal(a, b) for a, b in zip(src["G"].values(), dst["G"].values()))
    assert sorted(p.name for p in (project / "data/runs" / COPY / "snapshots").iterdir()) == \
        sorted(p.name for p in (project / "data/runs" / SOURCE / "snapshots").iterdir())
    train = records.read(project / "reports/metrics/train" / f"{COPY}.json", COPY)
    assert train[reuse.SAME] == SOURCE and train["train_seconds"] == \
        records.read(project / "reports/metrics/train" / f"{SOURCE}.json")["train_seconds"]
    assert COPY not in store(project)  # no MLflow run of its own for a copied training...

    for run in (SOURCE, COPY):
        assert run_stage("evaluate", ["--run", run]) == 0
    assert "evaluate dcgan_cifar10: the same evaluation as experiment's" in capsys.readouterr().out
    ours, theirs = evaluation(project, COPY), evaluation(project, SOURCE)
    assert ours["fid"]["digit_classifier"]["value"] == theirs["fid"]["digit_classifier"]["value"]
    assert ours["fid"]["digit_classifier"]["protocol"][reuse.SAME] == SOURCE
    assert reuse.SAME not in theirs["fid"]["digit_classifier"]["protocol"]
    assert (project / "reports/plots" / f"{COPY}_fid.csv").read_text() == \
        (project / "reports/plots" / f"{SOURCE}_fid.csv").read_text()

    runs = store(project)  # ... until evaluation gives it one: the source's losses, its own FID, tagged
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    mine = runs[COPY]
    assert mine.data.tags["same_training_as"] == SOURCE
    assert mine.data.tags["same_training_run_id"] == src["mlflow_run_id"]
    assert "fid.digit_classifier" in mine.data.metrics
    assert len(client.get_metric_history(mine.info.run_id, "loss_g")) == \
        len(client.get_metric_history(runs[SOURCE].info.run_id, "loss_g")) > 0
    assert run_stage("evaluate", ["--run", COPY]) == 0  # evaluated again: still one run of that name
    store(project)


def test_a_stale_source_is_not_copied(project):
    fingerprint = project / "data" / "runs" / SOURCE / reuse.FINGERPRINT
    fingerprint.write_text(json.dumps({"training_fingerprint": "trained by other code", reuse.SAME: None}))
    assert run_stage("train", ["--run", COPY]) == 0
    ckpt = torch.load(project / "data" / "runs" / COPY / "checkpoint.pt", weights_only=False)
    assert "copied_from" not in ckpt and ckpt["mlflow_run_id"] in {r.info.run_id for r in store(project).values()}
    assert reuse.SAME not in records.read(project / "reports/metrics/train" / f"{COPY}.json", COPY)


def test_a_copy_with_other_eval_settings_evaluates_itself(project):
    edit(project, lambda d: d["runs"][COPY].update(eval={"fid": {"n_fake": 48}}))
    for stage, run in (("train", COPY), ("evaluate", SOURCE), ("evaluate", COPY)):
        assert run_stage(stage, ["--run", run]) == 0
    ours, theirs = evaluation(project, COPY), evaluation(project, SOURCE)
    assert ours["fid"]["digit_classifier"]["protocol"]["n_fake"] == 48 != \
        theirs["fid"]["digit_classifier"]["protocol"]["n_fake"]
    assert ours["fid"]["digit_classifier"]["protocol"][reuse.SAME] == SOURCE  # the training is still a copy


def test_only_a_finished_training_of_the_same_config_and_fingerprint_is_a_source(project):
    params = load_params(project / "params.yaml")
    run, others = pipeline.run(params, COPY), pipeline.runs(params)
    fp = reuse.training_fingerprint(run, params.active.seeds, pipeline.processed_file(run))
    assert reuse.find_training(run, others, pipeline.run_dir, fp).name == SOURCE
    changed = run.model_copy(update={"lr_g": run.lr_g * 2})
    assert reuse.find_training(changed, others, pipeline.run_dir, fp) is None
    assert reuse.find_training(run, others, pipeline.run_dir, "another fingerprint") is None
    assert reuse.key(run.model_copy(update={"dataset": "pokemon", "paper": "x"})) == reuse.key(run)
