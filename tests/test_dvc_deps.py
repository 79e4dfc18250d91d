"""Per-run DVC deps, as `dvc status` sees them: changing one run's settings marks that run's stages
alone, and `dvc exp show --param-deps` lists only the experiment's knobs.

No model is trained. In a git repo of the project's files, `configure` runs for real (it writes
data/configs/), every other stage's outputs are stand-in files, and `dvc commit -f` records them
as up to date in dvc.lock. Each test then edits params.yaml as a user would, reruns `configure`,
and reads `dvc status --json`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import copy_project

PER_RUN = ("train_run@", "evaluate_run@", "train", "evaluate")


def sh(cmd: str, cwd: Path, env: dict) -> str:
    out = subprocess.run(cmd, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def stand_in_outputs(dest: Path, env: dict) -> None:
    """A file at every output of every stage but configure (its outputs are real)."""
    dvc_yaml = yaml.safe_load((dest / "dvc.yaml").read_text())
    runs = list(yaml.safe_load((dest / "params.yaml").read_text())["runs"])
    for name, stage in dvc_yaml["stages"].items():
        if name == "configure":
            continue
        body = stage.get("do", stage)
        for kind in ("outs", "metrics", "plots"):
            for entry in body.get(kind) or []:
                rel = next(iter(entry)) if isinstance(entry, dict) else entry
                for path in ([rel.replace("${key}", r) for r in runs] if "${key}" in rel else [rel]):
                    path = dest / path
                    if path.suffix:  # a file
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_text("{}\n" if path.suffix == ".json" else "step\n")
                    else:  # a folder
                        path.mkdir(parents=True, exist_ok=True)
                        (path / "stand-in").write_text("x\n")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    dest = tmp_path_factory.mktemp("deps") / "ganrepro"
    # the code and inputs; no committed results
    copy_project(dest, skip=lambda f: f.startswith(("reports/", "data/configs/")) and f != "reports/claims.yaml")
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "GANREPRO_ROOT")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    env["PYTHONPATH"] = str(dest / "src")
    sh("git init -q && git config user.name t && git config user.email t@t", dest, env)
    sh("dvc repro -s configure", dest, env)
    stand_in_outputs(dest, env)
    sh("dvc commit -f -q", dest, env)
    sh("git add -A && git commit -qm base", dest, env)
    assert json.loads(sh("dvc status --json", dest, env)) == {}
    return dest, env


def changed_after(repo, edit) -> set[str]:
    """The stages `dvc status` marks after `edit(params)` and a rerun of configure; the repo is reset after."""
    dest, env = repo
    params = yaml.safe_load((dest / "params.yaml").read_text())
    edit(params)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        sh("dvc repro -s configure", dest, env)
        return set(json.loads(sh("dvc status --json", dest, env)))
    finally:
        sh("git checkout -q -- . && git clean -fdq data/configs", dest, env)


def per_run(stages: set[str]) -> set[str]:
    return {s for s in stages if s.startswith(PER_RUN)}


def test_one_runs_override_marks_that_runs_training_alone(repo):
    def edit(p):
        p["runs"]["wgan_mnist"].setdefault("overrides", {})["lr_g"] = 5.0e-5

    changed = changed_after(repo, edit)
    assert per_run(changed) == {"train_run@wgan_mnist"}, changed
    # the evaluation follows through its dep on data/runs/wgan_mnist once the training has rerun


def test_an_override_the_profile_overrides_marks_nothing(repo):
    """`epochs` of a run is replaced by the quick profile's `steps` for its preset: no change at quick."""
    def edit(p):
        p["runs"]["wgan_mnist"].setdefault("overrides", {})["epochs"] = 11

    assert per_run(changed_after(repo, edit)) == set()


def test_a_quick_preset_entry_marks_the_runs_of_that_preset_alone(repo):
    def edit(p):
        p["profiles"]["quick"]["presets"]["wgan_gp"]["steps"] = 201

    runs = yaml.safe_load((repo[0] / "params.yaml").read_text())["runs"]
    expected = {f"train_run@{r}" for r, spec in runs.items() if spec["preset"] == "wgan_gp"}
    assert len(expected) == 3
    assert per_run(changed_after(repo, edit)) == expected


def test_one_runs_eval_setting_marks_that_runs_evaluation_alone(repo):
    def edit(p):
        p["runs"]["deq_pokemon_1b_lr1e4"]["eval"]["fid"]["dims"] = 192

    changed = changed_after(repo, edit)
    assert per_run(changed) == {"evaluate_run@deq_pokemon_1b_lr1e4"}, changed
    assert "fid_stats" in changed  # its real statistics at 192 dims


def test_the_experiments_lr_marks_the_experiments_training_alone(repo):
    changed = changed_after(repo, lambda p: p.update(lr=1.0e-4))
    assert per_run(changed) == {"train"}, changed
    assert "profile" not in changed  # a learning rate does not change a step's cost


def test_a_width_marks_the_profile_too(repo):
    changed = changed_after(repo, lambda p: p["profiles"]["quick"]["presets"]["dcgan"]["arch"].update(ngf=48))
    assert {"train", "train_run@dcgan_cifar10", "profile"} <= changed


def test_exp_show_lists_only_the_experiment_knobs_as_params(repo):
    dest, env = repo
    rows = json.loads(sh("dvc exp show --json --param-deps", dest, env))
    params = rows[0]["data"]["params"]["params.yaml"]["data"]
    assert set(params) == {"profile", "model", "dataset", "lr", "steps", "seed"}
