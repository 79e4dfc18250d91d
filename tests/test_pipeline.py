"""End to end, as a user runs it: `dvc repro` on a tiny config in a fresh git repo of the project,
a second `dvc repro` that does nothing, and `dvc exp run -S lr=2e-4` giving its own metrics."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import copy_project, leaves
from ganrepro import records

pytestmark = pytest.mark.slow

TINY = {
    "train": {"log_every": 2, "sample_every": 3, "n_samples": 16, "snapshots": 2},
    "profiling": {"steps": 2, "warmup": 1},
    "feature_net": {"epochs": 1, "batch_size": 128, "lr": 1.0e-3, "holdout": 500, "seed": 0},
}
TINY["profiling"]["profile_only"] = {"steps": 1, "warmup": 0}  # Table 1's paper-setting rows: batch 1, seconds a step


def sh(cmd: str, cwd: Path, env: dict) -> str:
    out = subprocess.run(cmd, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=2400)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout + out.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A git repo holding the project's files (as git would clone them) with a tiny quick profile."""
    dest = tmp_path_factory.mktemp("clone") / "ganrepro"
    copy_project(dest)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    quick = params["profiles"]["quick"]
    quick.update(TINY)
    for preset in params["models"]:  # every family, six steps
        quick["presets"][preset] = {**quick["presets"].get(preset, {}), "steps": 6, "batch_size": 8}
    first_of_each = {}
    for name, spec in params["runs"].items():  # one paper run per preset keeps the test short
        first_of_each.setdefault(spec["preset"], name)
    keep = [*first_of_each.values(), "wgan_mnist"]  # + a run of wgan_pokemon's training at this profile (a copy)
    params["runs"] = {name: params["runs"][name] for name in keep}
    params["profiles"]["quick"]["eval"]["fid"].update(n_real=500, n_fake=200, curve_n_fake=100, batch_size=100,
                                                      kid_subset_size=100, kid_n_real=500)
    params["profiles"]["quick"]["eval"]["inception_score"].update(n_fake=100)
    params["profiles"]["quick"]["eval"]["lpips"].update(n_pairs=20)
    params["lr"] = "LR"
    text = yaml.safe_dump(params, sort_keys=False).replace("lr: LR", "lr: 1e-4")  # as a person types it
    (dest / "params.yaml").write_text(text)
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "GANREPRO_ROOT")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    env["PYTHONPATH"] = str(dest / "src")  # the clone's own library, not the editable install's
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    sh("git init -q && git config user.name t && git config user.email t@t && git add -A && git commit -qm init",
       dest, env)
    return dest, env


@pytest.fixture(scope="module")
def repro(project):
    dest, env = project
    log = sh("dvc repro", dest, env)
    sh("git add -A && git commit -qm repro", dest, env)
    return log


def test_dvc_repro_regenerates_the_report_offline(project, repro):
    dest, _ = project
    stages = ["configure", "download", "preprocess", "feature_net", "fid_stats", "reference", "train", "evaluate", "profile", "report"]
    runs = yaml.safe_load((dest / "params.yaml").read_text())["runs"]
    stages += [f"{stage}@{run}" for run in runs for stage in ("train_run", "evaluate_run")]
    for stage in stages:
        assert f"Running stage '{stage}'" in repro
    evaluation = records.read(dest / "reports/metrics/evaluate/experiment.json")  # numbers + protocols
    fid = evaluation["fid"]["digit_classifier"]
    assert fid["value"] > 0 and fid["protocol"]["n_fake"] == 200 and fid["protocol"]["n_real"] == 500
    assert (dest / "data/runs/experiment/checkpoint.pt").exists()
    page = (dest / "reports/experiment.md").read_text()
    assert "Quick profile" in page and "148.72" in page
    for f in ["figures/experiment_samples.png", "figures/experiment_losses.png", "tables/experiment_metrics.csv"]:
        assert (dest / "reports" / f).stat().st_size > 0



def test_metric_files_hold_only_numbers_and_protocols_sit_beside_them(project, repro):
    dest, _ = project
    runs = ["experiment", *yaml.safe_load((dest / "params.yaml").read_text())["runs"]]
    files = [dest / "reports/metrics" / f for f in ("profile.json", "feature_net.json", "reference.json")]
    files += [dest / "reports/metrics" / stage / f"{run}.json" for run in runs for stage in ("train", "evaluate")]
    for f in files:
        bad = [v for v in leaves(json.loads(f.read_text())) if isinstance(v, bool) or not isinstance(v, (int, float))]
        assert not bad, f"{f.relative_to(dest)} holds non-numbers: {bad[:3]}"
    run = next(iter(yaml.safe_load((dest / "params.yaml").read_text())["runs"]))
    numbers = json.loads((dest / f"reports/metrics/evaluate/{run}.json").read_text())
    assert set(numbers) == {run}  # a paper run's columns read <run>.fid.<backend>
    protocols = json.loads((dest / f"reports/protocols/evaluate/{run}.json").read_text())
    assert protocols["fid"]["digit_classifier"]["protocol"]["quantised"] == "uint8"


def test_every_papers_page_has_its_tables_claims_and_figures(project, repro):
    import pandas as pd

    dest, _ = project
    reports = dest / "reports"
    claims = pd.read_csv(reports / "claims.csv")
    table1 = {f"table1_{pair}_{protocol}_protocol" for pair in ("ours_vs_ours", "ours_vs_reference_wgan",
                                                                   "reference_vs_reference") for protocol in ("our", "reference")}
    assert set(claims.claim_id) == {"sagan_beats_dcgan", "deq_less_memory_more_time", "one_branch_beats_three",
                                    "decoders_beat_baseline", "mglobal_tracks_quality", *table1}
    assert {"direction_reproduced", "paper_direction", "our_numbers", "paper_numbers"} <= set(claims.columns)
    for paper in ["dcgan-vs-sagan", "deq-gan", "began", "fastgan-decoders"]:
        page = (reports / f"{paper}.md").read_text()
        assert "Quick profile" in page and "not paper-scale results" in page
        for image in [line.split("](")[1].rstrip(")") for line in page.split("![")[1:]]:
            image = image.split(")")[0]
            assert (reports / image).stat().st_size > 0, f"{paper}.md links a missing {image}"
        for table in (reports / "tables").glob(f"{paper}_*.csv"):
            df = pd.read_csv(table)
            assert {"paper", "table", "row", "metric", "paper_value", "our_value", "profile", "protocol"} <= set(df.columns)
            assert (df.profile == "quick").all()
    assert "148.72" in (reports / "dcgan-vs-sagan.md").read_text() and "0.249" in (reports / "deq-gan.md").read_text()
    assert (reports / "figures/deq-gan_heatmap.png").exists() and (reports / "figures/began_mglobal.png").exists()
    assert list((reports / "figures").glob("fastgan_m1_vangogh_reconstructions_*.png"))
    curve = pd.read_csv(reports / "plots/dcgan_cifar10_fid.csv")
    assert list(curve.columns) == ["step", "fid_digit_classifier"] and len(curve) >= 2


def test_a_run_of_another_runs_config_is_trained_evaluated_and_profiled_once(project, repro):
    dest, _ = project
    assert "train wgan_mnist: the same training as wgan_pokemon" in repro
    train = records.read(dest / "reports/metrics/train/wgan_mnist.json", "wgan_mnist")
    assert train["same_training_as"] == "wgan_pokemon"
    fid = records.read(dest / "reports/metrics/evaluate/wgan_mnist.json", "wgan_mnist")["fid"]["digit_classifier"]
    assert fid["protocol"]["same_training_as"] == "wgan_pokemon"  # evaluated itself (FID dims differ), on the copy
    profile = records.read(dest / "reports/metrics/profile.json")
    assert profile["wgan_mnist"]["same_profile_as"] == "wgan_pokemon"
    assert profile["wgan_mnist"]["peak_memory_mb"] == profile["wgan_pokemon"]["peak_memory_mb"]
    runs_page = (dest / "reports/runs.md").read_text()
    assert "same training as" in runs_page and "real images (the floor)" in runs_page
    db = sqlite3.connect(dest / "mlflow.db")
    (run_id,), = db.execute("select run_uuid from runs where name = 'wgan_mnist'").fetchall()
    tags = dict(db.execute("select key, value from tags where run_uuid=?", (run_id,)).fetchall())
    assert tags["same_training_as"] == "wgan_pokemon"
    metrics = {k for (k,) in db.execute("select key from metrics where run_uuid=?", (run_id,)).fetchall()}
    assert {"loss_d", "loss_g", "fid.digit_classifier"} <= metrics, metrics
    ref = records.read(dest / "reports/metrics/reference.json")["mnist5k_32px_2048d"]
    assert ref["real"]["fid"]["digit_classifier"]["value"] < ref["noise"]["fid"]["digit_classifier"]["value"]
    for page in ("index.md", "dcgan-vs-sagan.md", "experiment.md"):
        assert "uniform noise" in (dest / "reports" / page).read_text(), page


def test_a_second_repro_runs_nothing(project, repro):
    dest, env = project
    log = sh("dvc repro", dest, env)
    assert "Running stage" not in log
    assert "Data and pipelines are up to date" in log or "didn't change" in log


def test_dvc_exp_run_set_lr_gives_an_experiment_with_its_own_metrics(project, repro):
    dest, env = project
    sh("dvc exp run -n lr2 -S lr=2e-4", dest, env)
    shown = json.loads(subprocess.run("dvc exp show --json", shell=True, cwd=dest, env=env,
                                      capture_output=True, text=True, check=True).stdout)
    exps = {}

    def walk(node):
        if isinstance(node, dict):
            data = node.get("data")
            if isinstance(data, dict) and "params" in data:
                exps[node.get("name") or node.get("rev")] = data
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(shown)
    assert "lr2" in exps, list(exps)
    lr2 = exps["lr2"]
    assert lr2["params"]["params.yaml"]["data"]["lr"] == 0.0002
    assert set(lr2["metrics"]["reports/metrics/train/experiment.json"]["data"]) == {"train_seconds",
                                                                                    "images_per_second"}
    fid = lr2["metrics"]["reports/metrics/evaluate/experiment.json"]["data"]["fid"]["digit_classifier"]
    base = json.loads(sh("git show HEAD:reports/metrics/evaluate/experiment.json", dest, env))  # lr 1e-4
    assert fid != base["fid"]["digit_classifier"]  # its own metrics

    # make compare: the knobs and the headline metrics, in a table for a 200-column terminal
    table = sh("make -o .venv/.installed compare", dest, {**env, "COLUMNS": "200"})
    lines = [line for line in table.splitlines() if line.strip() and not line.startswith("dvc exp show")]
    header = next(line for line in lines if "Experiment" in line).split()
    assert {"profile", "model", "dataset", "lr", "steps", "seed", "fid.digit_classifier", "train_seconds"} <= set(header)
    assert "lr2" in table and "…" not in table and max(map(len, lines)) <= 200, table


def test_mlflow_holds_finished_runs_with_sample_images(project, repro):
    dest, _ = project
    db = sqlite3.connect(dest / "mlflow.db")
    rows = db.execute("select name, status, artifact_uri, run_uuid from runs").fetchall()
    assert rows and all(status == "FINISHED" for _, status, _, _ in rows)
    names = [n for n, *_ in rows]
    assert names.count("experiment") >= 1 and not [n for n in names if n.endswith("-eval")]  # one run per model
    run_id = next(uuid for n, _, _, uuid in rows if n == "experiment")
    metrics = {k for (k,) in db.execute("select key from metrics where run_uuid=?", (run_id,)).fetchall()}
    assert {"loss_d", "loss_g", "fid.digit_classifier", "fid_curve.digit_classifier"} <= metrics, metrics
    train_uri = next(uri for n, _, uri, _ in rows if n == "experiment")
    images = list(Path(train_uri.removeprefix("file://")).glob("samples/*.png"))
    assert images, f"no sample grids under {train_uri}"
    tags = dict(db.execute("select key, value from tags where run_uuid=?", (rows[0][3],)).fetchall())
    assert tags["profile"] == "quick" and tags["dvc_stage"] in {"train", "evaluate"} and tags["git_commit"]
