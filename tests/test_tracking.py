"""MLflow behind the tracker: runs end FINISHED or FAILED, with params, metrics, tags and images."""
from pathlib import Path

import pytest
from mlflow import MlflowClient

from ganrepro import paths
from ganrepro.tracking import Tracker


def runs(store: Path):
    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    exp = client.get_experiment_by_name("ganrepro-quick")
    return client, client.search_runs([exp.experiment_id])


def test_a_run_logs_everything_and_finishes(mlflow_store, tmp_path):
    img = tmp_path / "grid.png"
    img.write_bytes(b"\x89PNG fake")
    with Tracker("exp1", stage="train", profile="quick") as t:
        t.log_config({"lr_g": 2e-4, "arch": {"ngf": 32}})
        for step in range(1, 4):
            t.log_metrics({"loss_d": 1.0 / step}, step)
        t.log_image(img)
    client, (run,) = runs(mlflow_store)
    assert run.info.status == "FINISHED" and run.info.run_name == "exp1"
    assert run.data.params == {"lr_g": "0.0002", "arch.ngf": "32"}
    assert run.data.tags["profile"] == "quick" and run.data.tags["dvc_stage"] == "train"
    assert len(run.data.tags["git_commit"]) in (7, 40) or run.data.tags["git_commit"] == "unknown"
    history = client.get_metric_history(run.info.run_id, "loss_d")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(1, 1.0), (2, 0.5), (3, 1 / 3)]
    assert [a.path for a in client.list_artifacts(run.info.run_id, "samples")] == ["samples/grid.png"]
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"config.yaml", "samples"}
    assert run.info.artifact_uri.startswith(f"file://{mlflow_store}")  # absolute, beside the store


def test_an_exception_marks_the_run_failed_and_keeps_its_metrics(mlflow_store):
    with pytest.raises(RuntimeError):
        with Tracker("boom", stage="train", profile="quick") as t:
            t.log_metrics({"loss_g": 3.0}, 7)
            raise RuntimeError("exploded")
    client, (run,) = runs(mlflow_store)
    assert run.info.status == "FAILED" and "exploded" in run.data.tags["error"]
    assert run.data.metrics == {"loss_g": 3.0}


def test_runs_from_dvc_temp_workspaces_land_in_the_outer_project(tmp_path, monkeypatch):
    monkeypatch.delenv("GANREPRO_ROOT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    inner = tmp_path / ".dvc" / "tmp" / "exps" / "tmpabc123"
    inner.mkdir(parents=True)
    (inner / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(inner)
    assert paths.project_root() == tmp_path
    assert paths.tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert paths.tracking_uri() == "http://127.0.0.1:5000"


def test_a_terminated_stage_ends_its_run_killed_not_running(mlflow_store, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    script = tmp_path / "stage.py"
    script.write_text(
        "import time\n"
        "from ganrepro import cli\n"
        "from ganrepro.tracking import Tracker\n"
        "def main():\n"
        "    with Tracker('slow', stage='train', profile='quick'):\n"
        "        print('started', flush=True)\n"
        "        time.sleep(60)\n"
        "cli.main(main, 'train')\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=os.environ)
    assert proc.stdout.readline().strip() == "started"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    _, (run,) = runs(mlflow_store)
    assert run.info.status == "KILLED"
