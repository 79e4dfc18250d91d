"""Checkpoints: one dict, written atomically (temp file, then rename), enough to resume bit for bit.

    {G, D, opt_g, opt_d, objective (EMA, BEGAN's k_t, ...), rng (torch, cuda, numpy, python),
     step, config, history (the logged losses so far), complete, mlflow_run_id}

A run resumes from `checkpoint.pt` when it holds an unfinished run (`complete: False`) of exactly
the same resolved config; anything else starts afresh (an unreadable file with a one-line warning).
A checkpoint or FID snapshot that cannot be read raises CorruptFileError, naming the file and the
`dvc repro -f ...` that retrains its run.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganrepro.corrupt import CorruptFileError, check, one_line, reading
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


def retrain_command(path: Path) -> str:
    """The stage that rewrites a file of data/runs/<run>/: `dvc repro -f train` or `... train_run@<run>`."""
    parts = Path(path).parts
    if "runs" in parts[:-1]:
        run = parts[parts.index("runs") + 1]
        return f"`dvc repro -f {'train' if run == 'experiment' else f'train_run@{run}'}`"
    return "the train stage of its run"


def _describe(path: Path) -> tuple[str, str]:
    what = "FID snapshot" if Path(path).name.startswith("G_step_") else "checkpoint"
    return what, f"retrain with {retrain_command(path)}"


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint; run the train stage first")
    with reading(path, *_describe(path)):
        return torch.load(path, map_location=map_location, weights_only=False)


def check_checkpoint(path: Path) -> None:
    """Fail now, not after hours of metrics, on a missing or unreadable checkpoint or snapshot
    (every byte is CRC-checked, which torch.load does not do)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint; run the train stage first")
    check(path, *_describe(path))


_warned: set[tuple] = set()


def _warn_fresh_start(path: Path, why: str) -> None:
    """One line on stderr, once per file (the stage asks twice: for the MLflow run, then to resume)."""
    from ganrepro.training import distributed

    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _warned and distributed.is_main():
        _warned.add(key)
        print(f"warning: checkpoint {path} {why}; training starts afresh from step 0 (nothing to resume from)",
              file=sys.stderr, flush=True)


def resumable(path: Path, config: dict) -> dict | None:
    """The checkpoint at `path` if it is an unfinished run of this same `config`, else None."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        ckpt = load_checkpoint(path)
    except CorruptFileError as e:  # atomic writes make this rare: a copy cut short, a full disk
        _warn_fresh_start(path, f"is unreadable, truncated or corrupt ({e.reason})")
        return None
    except Exception as e:  # e.g. written by an incompatible version of a library it pickles
        _warn_fresh_start(path, f"cannot be loaded ({one_line(e)})")
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
