"""Fréchet Inception Distance (Heusel et al. 2017) on any feature backend.

    FID = ||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2))

The distance itself is pytorch-fid's `calculate_frechet_distance`. Real-data statistics are
computed once per (dataset, size, backend, dims, n_real) and cached as a .npz (a DVC output),
with the first `keep` real features, which KID (metrics/kid.py) needs.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import numpy as np
import torch
from pytorch_fid.fid_score import calculate_frechet_distance
from tqdm import tqdm

from ganrepro.corrupt import reading
from ganrepro.metrics.features import FeatureBackend
from ganrepro.utils import atomic_path


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, d) -> mean (d,), covariance (d, d) with the unbiased N-1 estimator, as pytorch-fid."""
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    return float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))


def extract(backend: FeatureBackend, batches: Iterator[torch.Tensor], n: int, desc: str) -> np.ndarray:
    """Features of the first n images that `batches` yields (images in [-1, 1])."""
    feats, seen = [], 0
    with tqdm(total=n, desc=desc, unit="img", leave=False) as bar:
        for x in batches:
            x = x[: n - seen]
            feats.append(backend(x))
            seen += len(x)
            bar.update(len(x))
            if seen >= n:
                break
    if seen < n:
        raise ValueError(f"{desc}: asked for {n} images, only {seen} available")
    return np.concatenate(feats)


def real_batches(images: torch.Tensor, batch_size: int, seed: int = 0) -> Iterator[torch.Tensor]:
    """uint8 (N, C, H, W) in a seeded order -> float batches in [-1, 1]."""
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    for i in range(0, len(order), batch_size):
        yield images[order[i : i + batch_size]].float() / 127.5 - 1


def fake_batches(sample: Callable[[int], torch.Tensor], batch_size: int) -> Iterator[torch.Tensor]:
    while True:
        yield sample(batch_size)


def stats_path(root: Path, dataset: str, size: int, backend: str, dims: int, n: int) -> Path:
    return Path(root) / f"{dataset}-{size}px-{backend}-{dims}d-n{n}.npz"


class RealStats(NamedTuple):
    mu: np.ndarray  # (d,)
    sigma: np.ndarray  # (d, d)
    features: np.ndarray  # (min(n, keep), d) float32: the first features, kept for KID
    protocol: dict


def real_stats(path: Path, backend: FeatureBackend, images: torch.Tensor, n: int, batch_size: int,
               keep: int = 0) -> RealStats:
    """Load cached real statistics from `path`, or compute and cache them (mu, sigma, `keep` features)."""
    n = min(n, len(images))
    if path.exists():
        with reading(path, "cached real-data statistics file", "recompute them with `dvc repro -f fid_stats`"), \
                np.load(path) as z:
            if "features" in z and len(z["features"]) >= min(keep, n):
                return RealStats(z["mu"], z["sigma"], z["features"][:keep], json.loads(str(z["protocol"])))
    feats = extract(backend, real_batches(images, batch_size), n, f"real features ({backend.name})")
    mu, sigma = gaussian_stats(feats)
    protocol = {**backend.protocol(), "n_real": n}
    kept = feats[:keep].astype(np.float32)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, mu=mu, sigma=sigma, features=kept, protocol=json.dumps(protocol))
    return RealStats(mu, sigma, kept, protocol)


def fid_against(mu_r, sigma_r, fake_feats: np.ndarray) -> float:
    mu_f, sigma_f = gaussian_stats(fake_feats)
    return frechet_distance(mu_r, sigma_r, mu_f, sigma_f)
