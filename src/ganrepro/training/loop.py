"""The training loop shared by every family.

    G, D, objective = build(cfg, channels, n_classes, device)
    per step:  n_critic x objective.d_step(real, y)  ->  objective.g_step(real, y)
               log every `log_every`, sample the fixed z every `sample_every`,
               keep `snapshots` evenly spaced copies of the sampling G (snapshots/, for the FID curve)
               checkpoint.pt every `checkpoint_every` steps (atomic: a kill leaves the last good one)
    end:       checkpoint.pt marked complete, samples.png, the objective's own figures (e.g.
               FastGAN's reconstructions), config.yaml; returns the loss history
    resume:    an unfinished checkpoint.pt of the same config is continued where it stopped, with
               its RNG states, loss history and MLflow run (see checkpoint.py)
"""
from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Iterator

import pandas as pd
import torch
from torchvision.utils import save_image
from tqdm import tqdm

from ganrepro.config import RunConfig, dump_yaml
from ganrepro.models import build_models
from ganrepro.tracking import Tracker
from ganrepro.training import distributed
from ganrepro.training.checkpoint import restore, resumable, save_checkpoint
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


def batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int, device: torch.device,
            start: int = 0, rank: int = 0, world: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled batches, uint8 (B, C, H, W) -> float in [-1, 1] on `device`, from batch `start` on.

    Batch k is a pure function of (seed, k): epoch e = k // n reads randperm(N; seed, e) in slices
    of batch_size x world, rank r taking the r-th slice (DistributedSampler's rule, drop_last). So
    a resumed run reads exactly the batches an uninterrupted one would.
    """
    per_epoch = len(images) // (batch_size * world)
    if per_epoch == 0:
        raise ValueError(f"batch_size {batch_size} x {world} process(es) is larger than the dataset "
                         f"({len(images)} images)")
    k, perm = start, None
    while True:
        epoch, i = divmod(k, per_epoch)
        if perm is None or i == 0:
            perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        first = (i * world + rank) * batch_size
        idx = perm[first : first + batch_size]
        yield images[idx].to(device).float().div_(127.5).sub_(1.0), labels[idx].to(device)
        k += 1


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


def fresh_start(out_dir: Path) -> None:
    """Remove what an earlier, different or finished training left in `out_dir` (not other seeds' folders)."""
    for name in ("snapshots", "grids"):
        shutil.rmtree(out_dir / name, ignore_errors=True)
    for f in out_dir.glob("*"):
        if f.is_file():
            f.unlink()


def resume_run_id(out_dir: Path, cfg: RunConfig) -> str | None:
    """The MLflow run of an unfinished training of this config in `out_dir`, to continue it."""
    state = resumable(Path(out_dir) / "checkpoint.pt", cfg.model_dump(mode="json"))
    return state.get("mlflow_run_id") if state else None


def train(cfg: RunConfig, processed: dict, out_dir: Path, tracker: Tracker) -> tuple[dict, pd.DataFrame]:
    """Train one run; write its outputs to `out_dir`; return (summary for metrics, loss history).

    Resumes from `out_dir/checkpoint.pt` when it holds an unfinished run of this same config.
    Under torchrun, every rank trains on its shard and only rank 0 writes files.
    """
    out_dir, main = Path(out_dir), distributed.is_main()
    device = distributed.setup() or resolve_device(cfg.device)
    seed_everything(cfg.seed)
    images, labels = processed["images"], processed["labels"]
    G, D, objective = build(cfg, images.shape[1], processed["n_classes"], device)
    distributed.broadcast_parameters(G, D)
    torch.manual_seed(cfg.seed + distributed.rank())  # each rank draws its own z
    steps = total_steps(cfg, len(images), objective.n_critic * distributed.world_size())
    config = cfg.model_dump(mode="json")
    ckpt_path = out_dir / "checkpoint.pt"

    state = resumable(ckpt_path, config)
    if state:
        restore(state, G, D, objective)
        start, history = state["step"], state["history"]
        tracker.set_tag("resumed_from_step", start)
    else:
        start, history = 0, []
        if main:
            fresh_start(out_dir)
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(dump_yaml(cfg))
        tracker.log_config(config | {"resolved_steps": steps})
    fixed_z = G.sample_z(cfg.train.n_samples, generator=torch.Generator().manual_seed(cfg.seed))
    fixed_y = torch.arange(cfg.train.n_samples, device=device) % processed["n_classes"]

    def checkpoint(step: int, complete: bool) -> None:
        if main:
            tracker.flush()  # MLflow holds every step the checkpoint holds
            save_checkpoint(ckpt_path, G=G, D=D, objective=objective, step=step, config=config, history=history,
                            complete=complete, mlflow_run_id=tracker.run_id)

    data = batches(images, labels, cfg.batch_size, cfg.seed, device, start=start * objective.n_critic,
                   rank=distributed.rank(), world=distributed.world_size())
    keep = snapshot_steps(steps, cfg.train.snapshots)
    t0 = time.perf_counter()
    bar = tqdm(range(start + 1, steps + 1), desc=f"train {cfg.name}", unit="step", mininterval=1.0,
               initial=start, total=steps, disable=not main)
    for step in bar:
        logs = train_step(objective, data)
        check_finite(logs, step)
        if step % cfg.train.log_every == 0 or step == steps:
            history.append({"step": step, **logs})
            tracker.log_metrics(logs, step)
            bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if k.startswith("loss")})
        if main and (step % cfg.train.sample_every == 0 or step == steps):
            grid = sample_grid(objective.eval_G, fixed_z, fixed_y, out_dir / "grids" / f"step_{step:07d}.png")
            tracker.log_image(grid)
        if main and step in keep:
            save_torch(snapshot_path(out_dir, step), {"G": objective.eval_G.state_dict(), "step": step})
        if cfg.train.checkpoint_every and step % cfg.train.checkpoint_every == 0 and step < steps:
            checkpoint(step, complete=False)
    seconds = time.perf_counter() - t0

    checkpoint(steps, complete=True)
    if main:
        sample_grid(objective.eval_G, fixed_z, fixed_y, out_dir / "samples.png")
        save_figures(objective.figures(*next(data)), out_dir, tracker)
    done = steps - start
    summary = {
        "steps": steps,
        "steps_per_epoch": round(len(images) / (cfg.batch_size * objective.n_critic * distributed.world_size()), 3),
        "train_seconds": round(seconds, 2),
        "images_per_second": round(done * objective.n_critic * cfg.batch_size * distributed.world_size() / seconds, 1)
        if done else None,
        "processes": distributed.world_size(),
        # CPU results are bitwise repeatable for one machine and thread count, not across them (docs/quick-tuning.md)
        "threads": torch.get_num_threads(),
        **({"resumed_from_step": start} if start else {}),
        **{f"final_{k}": round(v, 5) for k, v in history[-1].items() if k != "step"},
    }
    tracker.log_metrics({k: v for k, v in summary.items() if k != "steps" and isinstance(v, (int, float))}, steps)
    return summary, pd.DataFrame(history)
