"""The training loop shared by every family.

    G, D, objective = build(cfg, channels, n_classes, device)
    per step:  n_critic x objective.d_step(real, y)  ->  objective.g_step(real, y)
               log every `log_every`, sample the fixed z every `sample_every`,
               keep `snapshots` evenly spaced copies of the sampling G (snapshots/, for the FID curve)
    end:       checkpoint.pt (atomic), samples.png, the objective's own figures (e.g. FastGAN's
               reconstructions), config.yaml; returns the loss history
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Iterator

import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset
from torchvision.utils import save_image
from tqdm import tqdm

from ganrepro.config import RunConfig, dump_yaml
from ganrepro.models import build_models
from ganrepro.tracking import Tracker
from ganrepro.training.checkpoint import save_checkpoint
from ganrepro.objectives import Objective, build_objective
from ganrepro.utils import atomic_path, resolve_device, save_torch, seed_everything


class DivergenceError(RuntimeError):
    """A loss became NaN or inf."""


def build(cfg: RunConfig, channels: int, n_classes: int, device: torch.device):
    G, D = build_models(cfg.family, cfg.arch, cfg.img_size, channels, n_classes)
    G, D = G.to(device), D.to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    return G, D, build_objective(cfg.objective, G, D, opt_g, opt_d)


def batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int, gen: torch.Generator,
            device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled batches: uint8 (B, C, H, W) -> float in [-1, 1] on `device`."""
    if len(images) < batch_size:
        raise ValueError(f"batch_size {batch_size} is larger than the dataset ({len(images)} images)")
    loader = DataLoader(TensorDataset(images, labels), batch_size, shuffle=True, drop_last=True,
                        generator=gen, pin_memory=device.type == "cuda")
    while True:
        for x, y in loader:
            yield x.to(device, non_blocking=True).float().div_(127.5).sub_(1.0), y.to(device)


def total_steps(cfg: RunConfig, n_images: int, n_critic: int) -> int:
    """`steps` if set, else `epochs` passes over the data (each G step eats n_critic batches)."""
    if cfg.steps:
        return cfg.steps
    return math.ceil(cfg.epochs * (n_images // cfg.batch_size) / n_critic)


def train_step(objective: Objective, data: Iterator) -> dict[str, float]:
    logs: dict[str, float] = {}
    for _ in range(objective.n_critic):
        real, y = next(data)
        logs.update(objective.d_step(real, y))
    logs.update(objective.g_step(real, y))
    return logs


def snapshot_steps(steps: int, n: int) -> set[int]:
    """n evenly spaced steps in (0, steps], the last one included: steps=100, n=4 -> {25, 50, 75, 100}."""
    return {math.ceil(steps * i / n) for i in range(1, n + 1)} if n else set()


def snapshot_path(out_dir: Path, step: int) -> Path:
    return Path(out_dir) / "snapshots" / f"G_step_{step:07d}.pt"


def save_figures(figures: dict[str, torch.Tensor], out_dir: Path, tracker: Tracker) -> None:
    """Each figure is a batch of images in [-1, 1], saved as one grid of rows of `ncol`."""
    for name, (images, ncol) in figures.items():
        path = out_dir / f"{name}.png"
        with atomic_path(path) as tmp:
            save_image(images.float().add(1).div(2).clamp(0, 1), tmp, format="png", nrow=ncol)
        tracker.log_image(path)


def check_finite(logs: dict[str, float], step: int) -> None:
    bad = {k: v for k, v in logs.items() if not math.isfinite(v)}
    if bad:
        raise DivergenceError(f"training diverged at step {step}: {bad}")


@torch.no_grad()
def sample_grid(G, z: torch.Tensor, y: torch.Tensor, path: Path) -> Path:
    G.eval()
    images = G(z, y)
    G.train()
    with atomic_path(path) as tmp:
        save_image(images.float().add(1).div(2).clamp(0, 1), tmp, format="png", nrow=int(len(z) ** 0.5))
    return path


def train(cfg: RunConfig, processed: dict, out_dir: Path, tracker: Tracker) -> tuple[dict, pd.DataFrame]:
    """Train one run; write its outputs to `out_dir`; return (summary for metrics, loss history)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    gen = seed_everything(cfg.seed)
    images, labels = processed["images"], processed["labels"]
    G, D, objective = build(cfg, images.shape[1], processed["n_classes"], device)
    steps = total_steps(cfg, len(images), objective.n_critic)

    (out_dir / "config.yaml").write_text(dump_yaml(cfg))
    tracker.log_config(cfg.model_dump(mode="json") | {"resolved_steps": steps})
    fixed_z = G.sample_z(cfg.train.n_samples, generator=torch.Generator().manual_seed(cfg.seed))
    fixed_y = torch.arange(cfg.train.n_samples, device=device) % processed["n_classes"]

    data = batches(images, labels, cfg.batch_size, gen, device)
    keep = snapshot_steps(steps, cfg.train.snapshots)
    history, t0 = [], time.perf_counter()
    bar = tqdm(range(1, steps + 1), desc=f"train {cfg.name}", unit="step", mininterval=1.0)
    for step in bar:
        logs = train_step(objective, data)
        check_finite(logs, step)
        if step % cfg.train.log_every == 0 or step == steps:
            history.append({"step": step, **logs})
            tracker.log_metrics(logs, step)
            bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if k.startswith("loss")})
        if step % cfg.train.sample_every == 0 or step == steps:
            grid = sample_grid(objective.eval_G, fixed_z, fixed_y, out_dir / "grids" / f"step_{step:07d}.png")
            tracker.log_image(grid)
        if step in keep:
            save_torch(snapshot_path(out_dir, step), {"G": objective.eval_G.state_dict(), "step": step})
    seconds = time.perf_counter() - t0

    save_checkpoint(out_dir / "checkpoint.pt", G=G, D=D, opt_g=objective.opt_g, opt_d=objective.opt_d,
                    objective=objective, step=steps, config=cfg.model_dump(mode="json"))
    sample_grid(objective.eval_G, fixed_z, fixed_y, out_dir / "samples.png")
    save_figures(objective.figures(*next(data)), out_dir, tracker)
    summary = {
        "steps": steps,
        "steps_per_epoch": round(len(images) / (cfg.batch_size * objective.n_critic), 3),
        "train_seconds": round(seconds, 2),
        "images_per_second": round(steps * objective.n_critic * cfg.batch_size / seconds, 1),
        **{f"final_{k}": round(v, 5) for k, v in history[-1].items() if k != "step"},
    }
    tracker.log_metrics({k: v for k, v in summary.items() if k != "steps"}, steps)
    return summary, pd.DataFrame(history)
