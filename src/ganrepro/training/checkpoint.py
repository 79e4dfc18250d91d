"""Checkpoints: one dict, written atomically (temp file, then rename), enough to resume bit for bit.

    {G, D, opt_g, opt_d, objective (EMA, BEGAN's k_t, ...), rng (torch, cuda, numpy, python),
     step, config, history (the logged losses so far), complete, mlflow_run_id}

A run resumes from `checkpoint.pt` when it holds an unfinished run (`complete: False`) of exactly
the same resolved config; anything else starts afresh.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganrepro.utils import save_torch


def rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save_checkpoint(path: Path, *, G, D, objective, step: int, config: dict, history: list[dict],
                    complete: bool, mlflow_run_id: str | None = None) -> None:
    save_torch(path, {
        "G": G.state_dict(),
        "D": D.state_dict(),
        "opt_g": objective.opt_g.state_dict(),
        "opt_d": objective.opt_d.state_dict(),
        "objective": objective.state_dict(),
        "rng": rng_state(),
        "step": step,
        "config": config,
        "history": history,
        "complete": complete,
        "mlflow_run_id": mlflow_run_id,
    })


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint; run the train stage first")
    return torch.load(path, map_location=map_location, weights_only=False)


def resumable(path: Path, config: dict) -> dict | None:
    """The checkpoint at `path` if it is an unfinished run of this same `config`, else None."""
    if not Path(path).exists():
        return None
    try:
        ckpt = load_checkpoint(path)
    except Exception:  # an unreadable file is not resumed from (atomic writes make this rare)
        return None
    if ckpt.get("complete", True) or ckpt.get("config") != config:
        return None
    return ckpt


def restore(ckpt: dict, G, D, objective) -> None:
    """Load models, optimisers, objective state and the RNG states from a checkpoint."""
    G.load_state_dict(ckpt["G"])
    D.load_state_dict(ckpt["D"])
    objective.opt_g.load_state_dict(ckpt["opt_g"])
    objective.opt_d.load_state_dict(ckpt["opt_d"])
    objective.load_state_dict(ckpt["objective"])
    set_rng_state(ckpt["rng"])
