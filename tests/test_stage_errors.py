"""Bad input through the train stage, as `dvc repro` runs it: one clear line naming the key or file
and what is valid, exit status 2, and nothing written (no run folder, metric file or MLflow run).

The stage runs in-process (stages/train.py's main under cli.main) in a scratch project folder.
Downloads (bad checksum, interrupted transfer) are covered in test_download.py, a corrupted
package file in test_data.py.
"""
from __future__ import annotations

import re
import runpy
import shutil
import sys

import pytest
import torch
import yaml

from conftest import ROOT, fake_processed
from ganrepro.data.preprocess import processed_path


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A scratch project: the shipped params.yaml and a tiny processed dataset; MLflow store inside."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    path = processed_path(tmp_path / "data" / "processed", "mnist5k", 32)
    path.parent.mkdir(parents=True)
    torch.save(fake_processed(n=16), path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GANREPRO_ROOT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def edit(project, fn) -> None:
    data = yaml.safe_load((project / "params.yaml").read_text())
    fn(data)
    (project / "params.yaml").write_text(yaml.safe_dump(data))


def run_stage(argv: list[str], capsys) -> tuple[int, str]:
    old = sys.argv
    sys.argv = ["stages/train.py", *argv]
    try:
        with pytest.raises(SystemExit) as e:
            runpy.run_path(str(ROOT / "stages" / "train.py"), run_name="__main__")
    finally:
        sys.argv = old
    return e.value.code, capsys.readouterr().err


def deq(d, **arch):
    d["model"] = "deq_gan"
    d["models"]["deq_gan"]["arch"].update(arch)


CASES = {
    "unknown model": (lambda d: d.update(model="stylegan"), r"model: unknown model 'stylegan'; valid: began, began_ref, dcgan"),
    "unknown dataset": (lambda d: d.update(dataset="imagenet"), r"dataset: unknown dataset 'imagenet'; valid: .*cifar10"),
    "unknown loss": (lambda d: d["models"]["dcgan"]["objective"].update(loss="l2"),
                     r"experiment \(dcgan, profile quick\): objective gan: loss: .*unknown loss 'l2'; valid: bce, hinge, wasserstein"),
    "unknown objective": (lambda d: d["models"]["dcgan"]["objective"].update(name="gann"),
                          r"experiment \(dcgan, profile quick\): objective.name: unknown objective 'gann'; valid: began, deq_wgan, fastgan, gan"),
    "unknown solver": (lambda d: deq(d, f_solver="newton"), r"models.deq_gan.arch: f_solver: .*'newton'.*anderson"),
    "bad backward": (lambda d: deq(d, ift="sometimes"), r"models.deq_gan.arch: ift: Input should be a valid boolean"),
    "bad phantom steps": (lambda d: deq(d, ift=False, grad=0), r"models.deq_gan.arch: grad: Input should be greater than 0"),
    "negative lr": (lambda d: d.update(lr=-2e-4), r"params.yaml: lr: Input should be greater than 0"),
    "zero lr": (lambda d: d.update(lr=0), r"params.yaml: lr: Input should be greater than 0"),
    "bad -S value": (lambda d: d.update(lr="2e-4x"), r"params.yaml: lr: Input should be a valid number.*'2e-4x'"),
    "wrong type": (lambda d: d.update(steps="many"), r"params.yaml: steps: Input should be a valid integer"),
    "unknown key": (lambda d: d.update(lrr=1), r"params.yaml: lrr: unknown key; valid keys here: profile, model"),
    "unknown nested key": (lambda d: d["models"]["dcgan"]["arch"].update(nfg=3),
                           r"models.dcgan.arch: nfg: unknown key; valid keys here: z_dim, ngf, ndf"),
    "unknown profile": (lambda d: d.update(profile="huge"), r"profile: unknown profile 'huge'; valid: paper, quick"),
    "bad eval setting": (lambda d: d["profiles"]["quick"]["eval"]["fid"].update(dims=100),
                         r"profiles.quick.eval.fid.dims: .*64, 192, 768 or 2048"),
}


def assert_nothing_written(project) -> None:
    assert not (project / "data" / "runs").exists()
    assert not (project / "reports").exists()
    assert not (project / "mlflow.db").exists() or "experiment" not in (project / "mlflow.db").read_bytes().decode("latin1")


@pytest.mark.parametrize("case", list(CASES))
def test_bad_params_stop_the_stage_before_it_writes_anything(project, capsys, case):
    mutate, message = CASES[case]
    edit(project, mutate)
    code, err = run_stage(["--run", "experiment"], capsys)
    assert code == 2 and err.startswith("error in stage train: ")
    assert re.search(message, err), err
    assert_nothing_written(project)


def test_an_unknown_run_lists_the_valid_ones(project, capsys):
    code, err = run_stage(["--run", "nope"], capsys)
    assert code == 2 and "runs: unknown run 'nope'; valid: " in err and "dcgan_cifar10" in err
    assert_nothing_written(project)


def test_a_missing_data_file_names_it_and_the_stage_that_makes_it(project, capsys):
    (processed_path(project / "data" / "processed", "mnist5k", 32)).unlink()
    code, err = run_stage(["--run", "experiment"], capsys)
    assert code == 2 and "data/processed/mnist5k-32px.pt: missing; run the preprocess stage" in err
    assert_nothing_written(project)


def test_an_unwritable_output_folder_is_named(project, capsys):
    (project / "data" / "runs").write_text("a file where the runs folder should be")
    code, err = run_stage(["--run", "experiment"], capsys)
    assert code == 2 and "data/runs" in err and ("cannot create output folder" in err or "not writable" in err), err
