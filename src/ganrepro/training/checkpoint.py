"""Checkpoints: one dict, written atomically (temp file, then rename)."""
from __future__ import annotations

from pathlib import Path

import torch

from ganrepro.utils import save_torch


def save_checkpoint(path: Path, *, G, D, opt_g, opt_d, objective, step: int, config: dict) -> None:
    save_torch(path, {
        "G": G.state_dict(),
        "D": D.state_dict(),
        "opt_g": opt_g.state_dict(),
        "opt_d": opt_d.state_dict(),
        "objective": objective.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        "step": step,
        "config": config,
    })


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint; run the train stage first")
    return torch.load(path, map_location=map_location, weights_only=False)
