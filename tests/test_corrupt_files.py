"""Truncated files on the paper path: one line naming the file and the remedy, exit status 2,
nothing half-written; a truncated checkpoint under `train` warns and starts afresh.

Every file is a real one of its kind, cut to half its size (a copy or download cut short):
checkpoints and FID snapshots from a tiny training through the train stage, cached real-data
statistics from the fid_stats stage, and the stand-in weight files (ganrepro.standin_weights)
under their real names in a scratch TORCH_HOME. Stages run in-process (stages/*.py under
cli.main) in a scratch copy of one trained project, as test_stage_errors.py runs them.
"""
from __future__ import annotations

import json
import os
import re
import runpy
import shutil
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import ROOT, fake_processed
from ganrepro import records, standin_weights
from ganrepro.corrupt import CorruptFileError, reading, unreadable
from ganrepro.data.preprocess import processed_path
from ganrepro.metrics.digit_classifier import DigitClassifier
from ganrepro.training.checkpoint import load_checkpoint
from ganrepro.utils import save_torch

CPU = torch.device("cpu")
STEPS = 4
VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
EMPTY_STORE = "mlflow-empty.db"  # an MLflow store with no runs, copied into each project


def truncate(path: Path) -> Path:
    os.truncate(path, path.stat().st_size // 2)
    return path


def run_stage(script: str, argv: list[str]) -> int:
    """Run stages/<script>.py as `dvc repro` would, in-process; its exit status (0 if it returned)."""
    old = sys.argv
    sys.argv = [f"stages/{script}.py", *argv]
    try:
        runpy.run_path(str(ROOT / "stages" / f"{script}.py"), run_name="__main__")
        return 0
    except SystemExit as e:
        return e.code
    finally:
        sys.argv = old


def error_line(err: str, stage: str) -> str:
    """The stage's error: the last line of stderr, asserted to be the only line of the message."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith(f"error in stage {stage}: "), err
    assert sum("error in stage" in line for line in lines) == 1 and "Traceback" not in err, err
    return lines[-1]


def mlflow_runs(project: Path) -> list[tuple[str, str]]:
    """(name, status) of every MLflow run in the project's store."""
    if not (project / "mlflow.db").exists():
        return []
    with sqlite3.connect(project / "mlflow.db") as db:
        return db.execute("select name, status from runs").fetchall()


def tiny_params(d: dict) -> None:
    quick = d["profiles"]["quick"]
    quick["presets"]["dcgan"] = {"arch": {"ngf": 4, "ndf": 4}, "steps": STEPS, "batch_size": 4}
    quick["train"] = {"log_every": 1, "sample_every": 100, "n_samples": 4, "snapshots": 2, "checkpoint_every": 2}


def edit(project: Path, fn) -> None:
    data = yaml.safe_load((project / "params.yaml").read_text())
    fn(data)
    (project / "params.yaml").write_text(yaml.safe_dump(data))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A scratch project with the experiment and dcgan_cifar10 trained (4 tiny DCGAN steps each,
    2 snapshots) and the real statistics of the digit-classifier features cached (fid_stats)."""
    root = tmp_path_factory.mktemp("trained")
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    (root / "dvc.yaml").write_text("stages: {}\n")
    edit(root, tiny_params)
    path = processed_path(root / "data" / "processed", "mnist5k", 32)
    path.parent.mkdir(parents=True)
    torch.save(fake_processed(n=16), path)
    torch.manual_seed(0)
    save_torch(root / "data" / "feature_nets" / "digit_classifier.pt", DigitClassifier().state_dict())
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=f"sqlite:///{root / EMPTY_STORE}").search_experiments()  # created (slow) once
    shutil.copy(root / EMPTY_STORE, root / "mlflow.db")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("GANREPRO_ROOT", str(root))
        mp.setenv("TORCH_HOME", str(root / "torch_home"))  # empty: the optional Inception is skipped
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        for run in ("experiment", "dcgan_cifar10"):
            assert run_stage("train", ["--run", run]) == 0
        assert run_stage("fid_stats", []) == 0
    return root


@pytest.fixture
def project(trained, tmp_path, monkeypatch) -> Path:
    """A copy of the trained project with an empty MLflow store, as the working directory."""
    root = tmp_path / "project"
    shutil.copytree(trained, root, ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts"))
    shutil.copy(root / EMPTY_STORE, root / "mlflow.db")
    monkeypatch.chdir(root)
    monkeypatch.setenv("GANREPRO_ROOT", str(root))
    monkeypatch.setenv("TORCH_HOME", str(root / "torch_home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return root


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory) -> Path:
    """A TORCH_HOME whose three stand-in weight files (real names, real layouts) are cut in half."""
    home = tmp_path_factory.mktemp("torch_home")
    images = fake_processed(n=4)["images"]
    for path in (standin_weights.write_inception(home, images, n_calibrate=2, batch_size=2),
                 standin_weights.write_alexnet(home), standin_weights.write_vgg16(home)):
        truncate(path)
    return home


# ---------------------------------------------------------------- checkpoints and FID snapshots
def test_train_warns_once_and_starts_afresh_over_a_truncated_checkpoint(project, capsys):
    ckpt = truncate(project / "data" / "runs" / "experiment" / "checkpoint.pt")
    (project / "data" / "runs" / "dcgan_cifar10" / "fingerprint.json").unlink()  # its copy: not a source now
    assert run_stage("train", ["--run", "experiment"]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in re.split(r"[\r\n]", err) if "warning:" in line]
    assert len(warnings) == 1, err
    assert re.fullmatch(r"warning: checkpoint data/runs/experiment/checkpoint\.pt is unreadable, truncated or "
                        r"corrupt \(.+\); training starts afresh from step 0 \(nothing to resume from\)",
                        warnings[0]), warnings[0]
    state = load_checkpoint(ckpt)
    assert state["complete"] and state["step"] == STEPS
    summary = records.read(project / "reports" / "metrics" / "train" / "experiment.json")  # numbers + the rest
    assert summary["steps"] == STEPS and "resumed_from_step" not in summary
    assert mlflow_runs(project) == [("experiment", "FINISHED")]


@pytest.mark.parametrize("damage", ["truncated", "one byte flipped"])
def test_evaluate_stops_on_an_unreadable_checkpoint_before_it_starts(project, capsys, damage):
    """torch.load reads a checkpoint with a flipped byte without complaint: the CRC check catches it."""
    ckpt = project / "data" / "runs" / "dcgan_cifar10" / "checkpoint.pt"
    if damage == "truncated":
        truncate(ckpt)
    else:
        data = bytearray(ckpt.read_bytes())
        data[len(data) // 2] ^= 0xFF
        ckpt.write_bytes(bytes(data))
    assert run_stage("evaluate", ["--run", "dcgan_cifar10"]) == 2
    line = error_line(capsys.readouterr().err, "evaluate")
    assert "checkpoint data/runs/dcgan_cifar10/checkpoint.pt is unreadable, truncated or corrupt" in line
    assert line.endswith("retrain with `dvc repro -f train_run@dcgan_cifar10`"), line
    assert ("fails its CRC check" in line) == (damage != "truncated")
    assert not (project / "reports" / "metrics" / "evaluate").exists() and mlflow_runs(project) == []


def test_evaluate_stops_on_a_truncated_fid_snapshot_before_it_starts(project, capsys):
    snapshot = truncate(sorted((project / "data" / "runs" / "experiment" / "snapshots").glob("G_step_*.pt"))[0])
    assert run_stage("evaluate", ["--run", "experiment"]) == 2
    line = error_line(capsys.readouterr().err, "evaluate")
    assert f"FID snapshot {snapshot.relative_to(project)} is unreadable, truncated or corrupt" in line
    assert line.endswith("retrain with `dvc repro -f train`"), line
    assert not (project / "reports" / "metrics" / "evaluate").exists() and mlflow_runs(project) == []


@pytest.mark.parametrize("name, what, remedy", [
    ("experiment/checkpoint.pt", "checkpoint", "`dvc repro -f train`"),
    ("dcgan_cifar10/snapshots/G_step_0000004.pt", "FID snapshot", "`dvc repro -f train_run@dcgan_cifar10`"),
])
def test_loading_a_truncated_checkpoint_or_snapshot_names_it_and_its_stage(project, name, what, remedy):
    """evaluation's load_generator and fid_curve read through load_checkpoint."""
    path = truncate(Path("data/runs") / name)
    with pytest.raises(CorruptFileError) as e:
        load_checkpoint(path)
    assert str(e.value).startswith(f"{what} {path} is unreadable, truncated or corrupt (")
    assert str(e.value).endswith(f"retrain with {remedy}") and "\n" not in str(e.value)


# ---------------------------------------------------------------- cached real-data statistics
def test_evaluate_names_a_truncated_statistics_file_and_fid_stats(project, capsys):
    stats, = (project / "data" / "fid_stats").glob("*.npz")
    truncate(stats)
    assert run_stage("evaluate", ["--run", "experiment"]) == 2
    line = error_line(capsys.readouterr().err, "evaluate")
    assert f"cached real-data statistics file {stats.relative_to(project)} is unreadable, truncated or corrupt" in line
    assert line.endswith("recompute them with `dvc repro -f fid_stats`"), line
    assert not (project / "reports" / "metrics" / "evaluate").exists()
    assert mlflow_runs(project) == []  # evaluation writes onto the training's run, and only once all is computed


# ---------------------------------------------------------------- pretrained weights in TORCH_HOME
def _loaders():
    from ganrepro.metrics import features, inception_score, lpips
    from ganrepro.objectives.fastgan import lpips_distance

    return {
        "FID Inception": (standin_weights.INCEPTION_FILE, features.INCEPTION_URL,
                          lambda: features.build_backend("inception", 2048, CPU)),
        "IS Inception": (standin_weights.INCEPTION_FILE, features.INCEPTION_URL,
                         lambda: inception_score.LOGITS.get("inception")(CPU)),
        "LPIPS AlexNet": (standin_weights.ALEXNET_FILE, lpips.ALEXNET_URL, lambda: lpips.LPIPS.get("lpips_alex")(CPU)),
        "FastGAN LPIPS VGG16": (standin_weights.VGG16_FILE, VGG16_URL, lambda: lpips_distance("vgg", CPU)),
    }


@pytest.mark.parametrize("loader", ["FID Inception", "IS Inception", "LPIPS AlexNet", "FastGAN LPIPS VGG16"])
def test_a_truncated_weight_file_names_itself_and_where_to_download_it(torch_home, monkeypatch, loader):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    name, url, load = _loaders()[loader]
    with pytest.raises(CorruptFileError) as e:
        load()
    file = torch_home / "hub" / "checkpoints" / name
    assert f" weights file {file} is unreadable, truncated or corrupt (" in str(e.value)
    assert f"delete it and download it again from {url} " in str(e.value) and "\n" not in str(e.value)


def test_evaluate_exits_2_on_a_truncated_inception_file(project, torch_home, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    def inception_only(d):
        d["profiles"]["quick"]["eval"]["fid"].update(backends=["inception"], optional_backends=[])
        d["profiles"]["quick"]["eval"]["lpips"]["optional_backends"] = []  # its AlexNet file is truncated too

    edit(project, inception_only)
    assert run_stage("evaluate", ["--run", "experiment"]) == 2
    line = error_line(capsys.readouterr().err, "evaluate")
    file = torch_home / "hub" / "checkpoints" / standin_weights.INCEPTION_FILE
    assert f"FID Inception weights file {file} is unreadable, truncated or corrupt" in line
    assert "delete it and download it again from https://github.com/mseitzer/pytorch-fid/releases/download/" in line
    assert not (project / "reports" / "metrics" / "evaluate").exists()
    assert mlflow_runs(project) == []  # checked before the MLflow run starts, as every weight file is


def test_evaluate_checks_the_lpips_file_before_any_metric(project, torch_home, monkeypatch, capsys):
    """A damaged AlexNet file stops evaluate up front, not after FID and the Inception Score."""
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    edit(project, lambda d: d["profiles"]["quick"]["eval"]["lpips"].update(backends=["lpips_alex"], optional_backends=[]))
    assert run_stage("evaluate", ["--run", "experiment"]) == 2
    line = error_line(capsys.readouterr().err, "evaluate")
    assert f"LPIPS AlexNet backbone weights file {torch_home / 'hub' / 'checkpoints' / standin_weights.ALEXNET_FILE}" in line
    assert mlflow_runs(project) == []  # no run was started: nothing was computed


def test_train_exits_2_on_a_truncated_vgg16_file_and_keeps_the_old_run(project, torch_home, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    old = [project / "data" / "runs" / "experiment" / "checkpoint.pt", project / "reports" / "metrics" / "train" /
           "experiment.json"]
    before = [f.read_bytes() for f in old]

    def fastgan_lpips(d):
        d["model"] = "fastgan_m1"
        d["profiles"]["quick"]["presets"]["fastgan_m1"]["objective"]["recon_loss"] = "lpips"

    edit(project, fastgan_lpips)
    assert run_stage("train", ["--run", "experiment"]) == 2
    line = error_line(capsys.readouterr().err, "train")
    file = torch_home / "hub" / "checkpoints" / standin_weights.VGG16_FILE
    assert f"FastGAN's LPIPS vgg backbone weights file {file} is unreadable, truncated or corrupt" in line
    assert line.endswith(f"delete it and download it again from {VGG16_URL} (offline machines: copy a good copy there)")
    assert [f.read_bytes() for f in old] == before  # the last run's checkpoint and metrics untouched
    assert mlflow_runs(project) == [("experiment", "FAILED")]


def test_a_truncated_digit_classifier_names_its_stage(project):
    from ganrepro.metrics.features import build_backend

    truncate(project / "data" / "feature_nets" / "digit_classifier.pt")
    with pytest.raises(CorruptFileError, match=r"^digit-classifier weights file data/feature_nets/digit_classifier.pt "
                       r"is unreadable, truncated or corrupt \(.+\); retrain them with `dvc repro -f feature_net`$"):
        build_backend("digit_classifier", 2048, CPU)


# ---------------------------------------------------------------- what counts as unreadable
def test_only_a_damaged_file_turns_an_error_into_a_corrupt_file_error(tmp_path):
    legacy = tmp_path / "legacy.pth"  # torch's pre-1.6 format, as the 2017 torchvision weight files
    torch.save({"w": torch.zeros(1000)}, legacy, _use_new_zipfile_serialization=False)
    assert unreadable(legacy) is None
    with pytest.raises(ValueError, match="unrelated"), reading(legacy, "weights file", "fix it"):
        raise ValueError("unrelated")  # a good file: the error is passed on as it was
    truncate(legacy)
    assert "unexpected EOF" in unreadable(legacy)
    with pytest.raises(CorruptFileError, match=r"weights file .*legacy.pth is unreadable.*; fix it$"), \
            reading(legacy, "weights file", "fix it"):
        torch.load(legacy, weights_only=True)
    objects = tmp_path / "objects.pt"  # complete, but more than tensors: not damaged
    torch.save({"rng": np.random.get_state()}, objects, _use_new_zipfile_serialization=False)
    assert unreadable(objects) is None
