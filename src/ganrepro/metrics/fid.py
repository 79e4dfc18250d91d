"""Fréchet Inception Distance (Heusel et al. 2017) on any feature backend.

    FID = ||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2))

The distance is pytorch-fid's `calculate_frechet_distance`, with one change of method: the trace
of (S_r S_f)^(1/2) is the sum of the square roots of the eigenvalues of S_r^(1/2) S_f S_r^(1/2),
which has the eigenvalues of S_r S_f and is symmetric positive semi-definite (as torchmetrics
computes it), instead of scipy's `sqrtm` of the non-symmetric product. Same number (tests/
test_parity.py: pytorch-fid's CLI to a relative 1e-5 at 64 to 2048 dims; test_fid.py: sqrtm), and
about 4x faster at 2048 dims, where sqrtm took 12.5 s a call on 2 cores: a paper run's FID curve
has 25 of them per seed. Real-data statistics are
computed once per (dataset, size, backend, dims, n_real) and cached as a .npz (a DVC output),
with the first `keep` real features, which KID (metrics/kid.py) needs.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from ganrepro.corrupt import reading
from ganrepro.metrics.features import FeatureBackend
from ganrepro.utils import atomic_path


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, d) -> mean (d,), covariance (d, d) with the unbiased N-1 estimator, as pytorch-fid."""
    return features.mean(axis=0), np.cov(features, rowvar=False)


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((S1 S2)^(1/2)) of two covariances (d, d): S1 S2 is similar to R S2 R with R = S1^(1/2)
    (symmetric PSD), so the trace is the sum of the square roots of R S2 R's eigenvalues. Round-off
    negatives (rank-deficient covariances, N < d) are clipped to 0."""
    w, v = np.linalg.eigh(sigma1)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # S1^(1/2), (d, d)
    m = root @ sigma2 @ root
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(eig, 0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2)), in float64 as pytorch-fid."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"FID of statistics of different dims: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2))


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
