"""MLflow behind the tracker: runs end FINISHED or FAILED, with params, metrics, tags and images;
one run per trained model, holding its losses, its evaluation and its generator (ganrepro.tracking)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from mlflow import MlflowClient

from conftest import ROOT, fake_processed
from ganrepro import paths
from ganrepro.tracking import Tracker
from test_corrupt_files import EMPTY_STORE, edit, run_stage, tiny_params


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


# ---------------------------------------------------------------- one run per trained model
# A scratch project (params.yaml with a tiny DCGAN and small evaluation sizes, fake digits, a
# stand-in digit classifier) whose stages train (2 seeds), fid_stats and evaluate run in-process,
# as `dvc repro` runs them (tests/test_corrupt_files.py's helpers).
KIND = ("mlflow.experimentKind", "custom_model_development")


def tiny_project(d: dict) -> None:
    tiny_params(d)
    quick = d["profiles"]["quick"]
    quick["seeds"] = 2
    quick["eval"] = {
        "fid": {"backends": ["digit_classifier"], "optional_backends": [], "n_real": 64, "n_fake": 64,
                "curve_n_fake": 32, "batch_size": 32, "kid_subsets": 4, "kid_subset_size": 16, "kid_n_real": 64},
        "lpips": {"backends": ["lpips_digit"], "optional_backends": [], "n_pairs": 8},
        "inception_score": {"backends": ["digit_classifier"], "optional_backends": [], "n_fake": 64, "splits": 2},
    }


def use_project(mp: pytest.MonkeyPatch, root: Path) -> None:
    mp.chdir(root)
    mp.setenv("GANREPRO_ROOT", str(root))
    mp.setenv("TORCH_HOME", str(root / "torch_home"))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> Path:
    """The scratch project after `train` (seeds 0 and 1), `fid_stats` and `evaluate` of the experiment."""
    from ganrepro.data.preprocess import processed_path
    from ganrepro.metrics.digit_classifier import DigitClassifier
    from ganrepro.utils import save_torch

    root = tmp_path_factory.mktemp("evaluated")
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    (root / "dvc.yaml").write_text("stages: {}\n")
    edit(root, tiny_project)
    path = processed_path(root / "data" / "processed", "mnist5k", 32)
    path.parent.mkdir(parents=True)
    torch.save(fake_processed(n=64), path)
    torch.manual_seed(0)
    save_torch(root / "data" / "feature_nets" / "digit_classifier.pt", DigitClassifier().state_dict())
    MlflowClient(tracking_uri=f"sqlite:///{root / EMPTY_STORE}").search_experiments()  # an empty store, kept
    shutil.copy(root / EMPTY_STORE, root / "mlflow.db")
    with pytest.MonkeyPatch.context() as mp:
        use_project(mp, root)
        mp.setenv("DVC_EXP_NAME", "tiny-exp")  # as `dvc exp run --name tiny-exp` sets it
        for stage in ("train", "fid_stats", "evaluate"):
            assert run_stage(stage, [] if stage == "fid_stats" else ["--run", "experiment"]) == 0, stage
    return root


def store_runs(root: Path) -> dict:
    """{run name: Run} of the project's store; asserts the names are unique."""
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("ganrepro-quick")
    found = client.search_runs([exp.experiment_id])
    names = [r.info.run_name for r in found]
    assert len(names) == len(set(names)), f"more than one run per name: {names}"
    return {r.info.run_name: r for r in found}


def test_one_run_per_model_holds_losses_fid_and_tags(evaluated):
    """The stages train and evaluate write one run per trained model (each extra seed its own): the
    losses per step, the headline numbers at the final step, the FID curve per snapshot, the tags."""
    client = MlflowClient(tracking_uri=f"sqlite:///{evaluated / 'mlflow.db'}")
    runs_ = store_runs(evaluated)
    assert set(runs_) == {"experiment", "experiment-seed1"}  # no `experiment-eval`: evaluation wrote onto training's
    run, seed1 = runs_["experiment"], runs_["experiment-seed1"]
    assert run.info.status == "FINISHED" and seed1.info.status == "FINISHED"
    metrics = run.data.metrics
    assert {"loss_d", "loss_g", "fid.digit_classifier", "kid.digit_classifier", "inception_score.digit_classifier",
            "lpips_diversity.lpips_digit", "fid_seeds.digit_classifier.mean",
            "fid_seeds.digit_classifier.std"} <= set(metrics)
    assert not any(k.startswith(("fid", "kid")) for k in seed1.data.metrics)  # its FID is in the main run's spread
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss_d")] == [1, 2, 3, 4]
    results = json.loads((Path(run.info.artifact_uri.removeprefix("file://")) / "evaluation.json").read_text())
    (fid,) = client.get_metric_history(run.info.run_id, "fid.digit_classifier")
    assert (fid.step, fid.value) == (4, results["fid"]["digit_classifier"]["value"])  # at the final G step
    curve = [tuple(r) for r in np.loadtxt(evaluated / "reports" / "plots" / "experiment_fid.csv", delimiter=",",
                                          skiprows=1, ndmin=2)]
    history = client.get_metric_history(run.info.run_id, "fid_curve.digit_classifier")
    assert sorted((m.step, m.value) for m in history) == curve and [s for s, _ in curve] == [2, 4]
    assert run.data.params["lr_g"] == "0.0002" and "eval.fid.n_fake" not in run.data.params  # training's, once

    tags, paper = run.data.tags, yaml.safe_load((ROOT / "params.yaml").read_text())["models"]["dcgan"]["paper"]
    assert {k: tags.get(k) for k in ("paper", "family", "preset", "run_name", "profile", "dvc_stage")} == {
        "paper": paper, "family": "dcgan", "preset": "dcgan", "run_name": "experiment", "profile": "quick",
        "dvc_stage": "train"}
    assert tags["git_commit"] and tags["dvc_exp_name"] == "tiny-exp" and "eval_error" not in tags
    assert seed1.data.tags["run_name"] == "experiment-seed1" and seed1.data.tags["seed"] == "1"
    assert client.get_experiment(run.info.experiment_id).tags.get(KIND[0]) == KIND[1]


def test_the_logged_generator_loads_back_and_samples_images(evaluated, monkeypatch):
    import mlflow
    import mlflow.pytorch

    from ganrepro.models import export

    client = MlflowClient(tracking_uri=f"sqlite:///{evaluated / 'mlflow.db'}")
    run = client.get_run(store_runs(evaluated)["experiment"].info.run_id)
    (output,) = run.outputs.model_outputs  # the run's one logged model
    model = client.get_logged_model(output.model_id)
    assert model.name == "generator" and model.source_run_id == run.info.run_id
    assert model.experiment_id == run.info.experiment_id and str(model.status) == "READY"
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{evaluated / 'mlflow.db'}")
    for uri in (f"models:/{model.model_id}", f"runs:/{run.info.run_id}/generator"):
        G = mlflow.pytorch.load_model(uri)
        z = G.sample_z(5, generator=torch.Generator().manual_seed(1))
        assert z.shape == (5, 100) and z.dtype == torch.float32  # the preset's z_dim
        with torch.no_grad():
            images = G(z)
        assert images.shape == (5, 1, 32, 32) and images.dtype == torch.float32
        assert images.min() >= -1 and images.max() <= 1 and images.std() > 0
        with torch.no_grad():  # the checkpoint's sampling G, bit for bit
            ref = export.from_checkpoint(evaluated / "data" / "runs" / "experiment" / "checkpoint.pt", 1, 10)(z)
        assert torch.equal(images, ref), uri


def test_evaluation_recreates_a_run_missing_from_the_store(evaluated, tmp_path, monkeypatch):
    """mlflow.db deleted after training: evaluate makes a run of the same name, tags, params and losses
    (from the checkpoint), and a second evaluation writes onto that run again."""
    root = tmp_path / "project"
    shutil.copytree(evaluated, root, ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts"))
    shutil.copy(root / EMPTY_STORE, root / "mlflow.db")
    use_project(monkeypatch, root)
    for _ in range(2):
        assert run_stage("evaluate", ["--run", "experiment"]) == 0
    (name, run), = store_runs(root).items()
    old = store_runs(evaluated)["experiment"]
    assert name == "experiment" and run.info.status == "FINISHED"
    assert run.data.params == old.data.params
    assert {k: run.data.tags[k] for k in ("paper", "family", "preset", "run_name", "profile")} == {
        k: old.data.tags[k] for k in ("paper", "family", "preset", "run_name", "profile")}
    assert run.data.tags["checkpoint_run_id"] == old.info.run_id and run.data.tags["dvc_stage"] == "evaluate"
    assert {"loss_d", "loss_g", "fid.digit_classifier"} <= set(run.data.metrics)


def train_tiny(name: str = "t", tmp_path: Path = None) -> tuple[str, Path]:
    """A tiny training logged as the train stage logs it; (its run id, its checkpoint)."""
    from conftest import tiny_run
    from ganrepro.tracking import run_tags
    from ganrepro.training.loop import train

    cfg = tiny_run(name=name, steps=2)
    with Tracker(name, stage="train", profile="quick", tags=run_tags(cfg)) as t:
        train(cfg, fake_processed(), tmp_path / name, t)
    return t.run_id, tmp_path / name / "checkpoint.pt"


def test_a_failed_evaluation_tags_the_training_run_and_keeps_its_status(mlflow_store, tmp_path):
    import pandas as pd

    from ganrepro.tracking import EvaluationTracker
    from ganrepro.training.checkpoint import load_checkpoint

    run_id, ckpt = train_tiny(tmp_path=tmp_path)
    with pytest.raises(RuntimeError):
        with EvaluationTracker(load_checkpoint(ckpt)):
            raise RuntimeError("bad statistics file")
    client, (run,) = runs(mlflow_store)
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    assert run.data.tags["eval_error"] == "RuntimeError: bad statistics file" and "error" not in run.data.tags
    assert not any(k.startswith("fid") for k in run.data.metrics)

    results = {"fid": {"digit_classifier": {"value": 12.5, "protocol": {"dims": 128}}, "inception": {"skipped": "no"}}}
    with EvaluationTracker(load_checkpoint(ckpt)) as t:
        t.log_evaluation(results, pd.DataFrame({"step": [1, 2], "fid_digit_classifier": [30.0, 12.5]}))
    client, (run,) = runs(mlflow_store)
    assert run.info.status == "FINISHED" and "eval_error" not in run.data.tags  # fixed by the rerun
    assert run.data.metrics["fid.digit_classifier"] == 12.5
    assert not [k for k in run.data.metrics if "protocol" in k or "skipped" in k]  # headline numbers only
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "fid_curve.digit_classifier")] == [
        (1, 30.0), (2, 12.5)]


def test_the_experiment_opens_in_the_model_training_view(mlflow_store):
    """Set on a new experiment, and on an existing one that lacks it; a kind chosen in the UI is kept."""
    client = MlflowClient(tracking_uri=f"sqlite:///{mlflow_store / 'mlflow.db'}")
    with Tracker("a", stage="train", profile="quick"):
        pass
    assert client.get_experiment_by_name("ganrepro-quick").tags.get(KIND[0]) == KIND[1]
    old = client.create_experiment("ganrepro-paper")  # as made before this tag existed
    with Tracker("b", stage="train", profile="paper"):
        pass
    assert client.get_experiment(old).tags.get(KIND[0]) == KIND[1]
    client.set_experiment_tag(old, KIND[0], "genai_development")
    with Tracker("c", stage="train", profile="paper"):
        pass
    assert client.get_experiment(old).tags[KIND[0]] == "genai_development"


@pytest.mark.parametrize("family, arch", [
    ("dcgan", {"z_dim": 8, "ngf": 4, "ndf": 4}), ("sagan", {"z_dim": 8, "ngf": 4, "ndf": 4}),
    ("wgan_gp", {"z_dim": 8, "ngf": 4, "ndf": 4}), ("began", {"z_dim": 8, "ngf": 4, "ndf": 4}),
    ("deq", {"z_dim": 8, "ngf": 4, "ndf": 4, "f_max_iter": 3, "b_max_iter": 3}),
    ("fastgan", {"z_dim": 8, "ngf": 4, "ndf": 4, "dec_ch": 4}),
])
def test_every_family_exports_a_picklable_generator_sampling_as_in_eval_mode(family, arch):
    """Spectral norm folded in, labels arange(B) % n_classes: the exported G is the eval-mode G."""
    import io

    from mlflow.pytorch import pickle_module

    from ganrepro.models import build_models
    from ganrepro.models.export import ExportedGenerator

    def build():  # two equal G's (not a deepcopy: it would share the class that folding edits)
        torch.manual_seed(0)
        return build_models(family, arch, 32, 1, 10)[0].eval()

    G = build()
    z = G.sample_z(12, generator=torch.Generator().manual_seed(0))
    exported = ExportedGenerator(build(), 10, (1, 32, 32))
    buf = io.BytesIO()
    torch.save(exported, buf, pickle_module=pickle_module)  # as mlflow.pytorch saves it (cloudpickle)
    loaded = torch.load(io.BytesIO(buf.getvalue()), pickle_module=pickle_module, weights_only=False)
    with torch.no_grad():
        torch.manual_seed(1)  # FastGAN's noise injection draws from the global generator
        want = G(z, torch.arange(12) % 10).clamp(-1, 1)
        torch.manual_seed(1)
        got = loaded(z)
    assert got.shape == (12, 1, 32, 32) and torch.allclose(got, want, atol=1e-6)
    assert not any(n.endswith("original") for n, _ in loaded.named_parameters())  # no parametrization left


def test_the_exported_generator_holds_the_ema_weights_where_the_objective_keeps_them(tmp_path):
    """FastGAN samples from G_ema (objective.eval_G): the export is that, not the raw G."""
    from conftest import tiny_run
    from ganrepro.models import build_models, export
    from ganrepro.training.checkpoint import load_checkpoint
    from ganrepro.training.loop import train

    cfg = tiny_run(family="fastgan", preset="fastgan_m1", arch={"z_dim": 8, "ngf": 4, "ndf": 4, "dec_ch": 4},
                   objective={"name": "fastgan", "recon_loss": "l1", "ema_decay": 0.5}, steps=2)
    train(cfg, fake_processed(), tmp_path, Tracker("f", stage="train", profile="quick", enabled=False))
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    exported = export.from_checkpoint(ckpt, 1, 10)
    z = exported.sample_z(4, generator=torch.Generator().manual_seed(0))

    def sample(state=None):
        G = exported
        if state is not None:
            G = build_models("fastgan", cfg.arch, 32, 1, 10)[0]
            G.load_state_dict(state)
            G = lambda z, G=G.eval(): G(z, torch.arange(4) % 10).clamp(-1, 1)  # noqa: E731
        torch.manual_seed(0)  # FastGAN's noise injection draws from the global generator
        return G(z)

    with torch.no_grad():
        got, ema, raw = sample(), sample(ckpt["objective"]["G_ema"]), sample(ckpt["G"])
    assert torch.allclose(got, ema, atol=1e-7) and not torch.allclose(got, raw, rtol=0, atol=1e-6)


def test_only_an_enabled_tracker_logs_the_generator(mlflow_store):
    """torchrun's ranks other than 0 have a disabled Tracker: no model, no store."""
    from ganrepro.models import build_models
    from ganrepro.models.export import ExportedGenerator

    G = ExportedGenerator(build_models("dcgan", {"z_dim": 8, "ngf": 4, "ndf": 4}, 32, 1, 10)[0], 10, (1, 32, 32))
    with Tracker("rank1", stage="train", profile="quick", enabled=False) as t:
        assert t.log_generator(G) is None
    assert not (mlflow_store / "mlflow.db").exists()
