"""The shared loop: outputs, atomic checkpoints, the MLflow run, divergence."""
import math

import pytest
import torch

from conftest import fake_processed, poison_g_step, tiny_run
from ganrepro.tracking import Tracker
from ganrepro.training import loop
from ganrepro.training.checkpoint import load_checkpoint


def test_train_writes_checkpoint_samples_and_config(tmp_path, mlflow_store):
    with Tracker("t", stage="train", profile="quick") as tracker:
        summary, history = loop.train(tiny_run(steps=3), fake_processed(), tmp_path / "run", tracker)
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == ["checkpoint.pt", "config.yaml", "grids", "samples.png"]  # no temp files left
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert ckpt["step"] == 3 and set(ckpt) >= {"G", "D", "opt_g", "opt_d", "objective", "rng", "config"}
    assert list(history["step"]) == [1, 2, 3] and math.isfinite(summary["final_loss_g"])
    assert summary["threads"] == torch.get_num_threads()  # CPU results depend on it (docs/quick-tuning.md)


def test_epochs_convert_to_generator_steps():
    cfg = tiny_run(steps=None, epochs=2, batch_size=4)
    assert loop.total_steps(cfg, n_images=17, n_critic=1) == 8  # 4 full batches per epoch
    assert loop.total_steps(cfg, n_images=17, n_critic=5) == 2  # each G step eats 5 batches


def test_a_nan_loss_stops_training_with_the_step(tmp_path, mlflow_store, monkeypatch):
    from ganrepro.objectives.gan import GANObjective

    poison_g_step(monkeypatch, GANObjective, at_call=2, value=float("nan"))
    with pytest.raises(loop.DivergenceError, match=r"diverged at step 2: \{'loss_g': nan\}"):
        with Tracker("t", stage="train", profile="quick") as tracker:
            loop.train(tiny_run(steps=4), fake_processed(), tmp_path / "run", tracker)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_batches_are_scaled_to_minus_one_one():
    data = fake_processed(n=8)
    x, y = next(loop.batches(data["images"], data["labels"], 4, 0, torch.device("cpu")))
    assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1 and x.shape == (4, 1, 32, 32)
    with pytest.raises(ValueError, match=r"batch_size 64 x 1 process\(es\) is larger than the dataset"):
        next(loop.batches(data["images"], data["labels"], 64, 0, torch.device("cpu")))


def test_snapshot_steps_are_evenly_spaced_and_end_at_the_last_step():
    assert loop.snapshot_steps(100, 4) == {25, 50, 75, 100}
    assert loop.snapshot_steps(10, 3) == {4, 7, 10}
    assert loop.snapshot_steps(2, 5) == {1, 2} and loop.snapshot_steps(10, 0) == set()


def test_training_keeps_g_snapshots_for_the_fid_curve(tmp_path, mlflow_store):
    from ganrepro.config import TrainSettings

    cfg = tiny_run(steps=4, train=TrainSettings(log_every=1, sample_every=10, n_samples=4, snapshots=2))
    with Tracker("t", stage="train", profile="quick") as tracker:
        summary, _ = loop.train(cfg, fake_processed(), tmp_path / "run", tracker)
    snaps = sorted(p.name for p in (tmp_path / "run" / "snapshots").iterdir())
    assert snaps == ["G_step_0000002.pt", "G_step_0000004.pt"]
    last = torch.load(tmp_path / "run" / "snapshots" / snaps[-1])
    final = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["G"]
    assert last["step"] == 4 and all(torch.equal(last["G"][k], final[k]) for k in final)
    assert summary["steps_per_epoch"] == 16 / 4  # 16 images, batch 4, one critic step
