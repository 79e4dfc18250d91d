"""Evaluate a trained run: FID on every available feature backend, and LPIPS diversity.

Each value carries its protocol (backend, weight file sha256, dims, n_real, n_fake, resize).
A backend listed as optional whose weights are not in the cache is reported as skipped, with why.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from ganrepro import paths
from ganrepro.config import EvalConfig, RunConfig
from ganrepro.metrics import fid
from ganrepro.metrics.features import backend_dims, build_backend, weights_missing
from ganrepro.metrics.lpips import LPIPS, diversity, lpips_missing
from ganrepro.models import build_models
from ganrepro.training.checkpoint import load_checkpoint


def load_generator(run: RunConfig, checkpoint: Path, channels: int, n_classes: int, device) -> torch.nn.Module:
    G, _ = build_models(run.family, run.arch, run.img_size, channels, n_classes)
    ckpt = load_checkpoint(checkpoint)
    G.load_state_dict(ckpt["objective"].get("G_ema") or ckpt["G"])  # EMA weights where kept
    return G.to(device).eval()


def sampler(G, n_classes: int, seed: int) -> Callable[[int], torch.Tensor]:
    """n -> n generated images in [-1, 1], from a seeded stream of z and labels."""
    gen = torch.Generator().manual_seed(seed)
    device = next(G.parameters()).device

    @torch.no_grad()
    def sample(n: int) -> torch.Tensor:
        y = torch.randint(n_classes, (n,), generator=gen).to(device)
        return G(G.sample_z(n, generator=gen), y).float().clamp(-1, 1)

    return sample


def backends_to_run(names: list[str], optional: list[str], missing: Callable) -> tuple[list[str], dict]:
    """Required backends always run (and fail loudly); optional ones only if their weights exist."""
    run, skipped = list(names), {}
    for name in optional:
        if name in names:
            continue
        if (file := missing(name)) is None:
            run.append(name)
        else:
            skipped[name] = {"skipped": f"weights not found: {file.name} (README: Pretrained weights)"}
    return run, skipped


def real_stats_file(run: RunConfig, backend: str, cfg: EvalConfig, n_real: int) -> Path:
    dims = backend_dims(backend, cfg.fid.dims)
    return fid.stats_path(paths.FID_STATS, run.data, run.img_size, backend, dims, n_real)


def compute_fid(run: RunConfig, images: torch.Tensor, sample: Callable, cfg: EvalConfig, device) -> dict:
    names, out = backends_to_run(cfg.fid.backends, cfg.fid.optional_backends, weights_missing)
    n_real = min(cfg.fid.n_real, len(images))
    for name in names:
        backend = build_backend(name, cfg.fid.dims, device)
        mu, sigma, protocol = fid.real_stats(real_stats_file(run, name, cfg, n_real), backend, images, n_real, cfg.fid.batch_size)
        fake = fid.extract(backend, fid.fake_batches(sample, cfg.fid.batch_size), cfg.fid.n_fake, f"fake features ({name})")
        out[name] = {"value": round(fid.fid_against(mu, sigma, fake), 4),
                     "protocol": {**protocol, "n_fake": cfg.fid.n_fake}}
    return out


def compute_lpips(sample: Callable, cfg: EvalConfig, device) -> dict:
    names, out = backends_to_run(cfg.lpips.backends, cfg.lpips.optional_backends, lpips_missing)
    for name in names:
        dist, protocol = LPIPS.get(name, key="eval.lpips.backends")(device)
        out[name] = {"value": round(diversity(dist, sample, cfg.lpips.n_pairs), 5),
                     "protocol": {**protocol, "n_pairs": cfg.lpips.n_pairs, "pairs": "independent fake x fake"}}
    return out


def evaluate(run: RunConfig, processed: dict, checkpoint: Path, cfg: EvalConfig, device) -> dict:
    images = processed["images"]
    G = load_generator(run, checkpoint, images.shape[1], processed["n_classes"], device)
    return {
        "fid": compute_fid(run, images, sampler(G, processed["n_classes"], run.seed + 1), cfg, device),
        "lpips_diversity": compute_lpips(sampler(G, processed["n_classes"], run.seed + 2), cfg, device),
    }


def real_stats_for(run: RunConfig, processed: dict, cfg: EvalConfig, device) -> list[Path]:
    """Compute (or keep) the cached real statistics of every backend that can run."""
    names, _ = backends_to_run(cfg.fid.backends, cfg.fid.optional_backends, weights_missing)
    n_real = min(cfg.fid.n_real, len(processed["images"]))
    files = []
    for name in names:
        backend = build_backend(name, cfg.fid.dims, device)
        path = real_stats_file(run, name, cfg, n_real)
        fid.real_stats(path, backend, processed["images"], n_real, cfg.fid.batch_size)
        files.append(path)
    return files

