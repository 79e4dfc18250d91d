"""Shared fixtures: tiny run configs, an isolated MLflow store, the offline assets folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ganrepro.config import RunConfig, TrainSettings

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(os.environ.get("GANREPRO_ASSETS", ROOT.parent / "shared" / "assets"))

torch.set_num_threads(min(2, torch.get_num_threads()))


def tiny_run(**overrides) -> RunConfig:
    """A DCGAN run small enough for a unit test; override any field."""
    base = dict(
        name="t", profile="quick", preset="dcgan", paper="test", family="dcgan",
        objective={"name": "gan", "loss": "bce"}, arch={"z_dim": 8, "ngf": 4, "ndf": 4},
        dataset="mnist5k", data="mnist5k", img_size=32, batch_size=4, lr_g=2e-4, lr_d=2e-4,
        betas=(0.5, 0.999), epochs=None, steps=2, seed=0, device="cpu",
        train=TrainSettings(log_every=1, sample_every=1, n_samples=4),
    )
    return RunConfig(**{**base, **overrides})


def leaves(node):
    """Every leaf of a nested dict (a metric file's values)."""
    if isinstance(node, dict):
        for v in node.values():
            yield from leaves(v)
    else:
        yield node


def copy_project(dest: Path, skip=lambda rel: False) -> None:
    """The project's files as git would clone them (tracked, plus untracked not ignored) into `dest`."""
    import shutil
    import subprocess

    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for f in files:
        if (ROOT / f).is_file() and not skip(f):
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dest / f)


def fake_processed(n: int = 16, channels: int = 1, size: int = 32, n_classes: int = 10, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "images": torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8),
        "labels": torch.randint(0, n_classes, (n,), generator=g),
        "n_classes": n_classes,
    }


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch) -> Path:
    """A private MLflow store (sqlite + artifacts) under tmp_path."""
    monkeypatch.setenv("GANREPRO_ROOT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


def poison_g_step(monkeypatch, objective_cls, at_call: int, value: float) -> None:
    """Make the objective's `at_call`-th g_step report loss_g = value (NaN or inf), as a diverging GAN would."""
    calls = {"n": 0}
    g_step = objective_cls.g_step

    def poisoned(self, real, y):
        calls["n"] += 1
        out = g_step(self, real, y)
        return {**out, "loss_g": value} if calls["n"] == at_call else out

    monkeypatch.setattr(objective_cls, "g_step", poisoned)
