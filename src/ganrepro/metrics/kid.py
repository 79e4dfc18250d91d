"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs", ICLR).

KID is the squared maximum mean discrepancy between real and fake features, with the cubic
polynomial kernel, estimated without bias and averaged over random subsets:

    k(x, y) = (x . y / d + 1)^3                                   d: feature width
    MMD^2_u = 1/(m(m-1)) sum_{i!=j} k(x_i, x_j) + 1/(m(m-1)) sum_{i!=j} k(y_i, y_j)
              - 2/m^2 sum_{i,j} k(x_i, y_j)                       m: subset size
    KID = mean over `subsets` random subsets (without replacement) of MMD^2_u; std over them

Unbiased, so it can be slightly negative when the distributions match. The estimate itself is
torch-fidelity's `kid_features_to_metric` (adapted from the authors' MMD-GAN code).
"""
from __future__ import annotations

import numpy as np
import torch
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

KERNEL = "polynomial degree 3, gamma 1/d, coef0 1"
ESTIMATOR = "unbiased MMD^2 (torch-fidelity)"


def _features(x: np.ndarray, what: str) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    if x.dim() != 2:
        raise ValueError(f"KID: {what} features must be (N, d), got shape {tuple(x.shape)}")
    return x


def kid(real: np.ndarray, fake: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> dict:
    """KID between (N_r, d) real and (N_f, d) fake features; subset_size is clamped to min(N_r, N_f)."""
    r, f = _features(real, "real"), _features(fake, "fake")
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"KID: feature widths differ (real {r.shape[1]}, fake {f.shape[1]})")
    size = min(subset_size, len(r), len(f))
    if size < 2:
        raise ValueError(f"KID needs subsets of at least 2 samples; got real {len(r)}, fake {len(f)}")
    out = kid_features_to_metric(
        r, f, kid_subsets=subsets, kid_subset_size=size, kid_kernel="poly", kid_kernel_poly_degree=3,
        kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1, rng_seed=seed, verbose=False,
    )
    protocol = {"subsets": subsets, "subset_size": size, "kernel": KERNEL, "estimator": ESTIMATOR}
    return {"value": out[KEY_METRIC_KID_MEAN], "std": out[KEY_METRIC_KID_STD], "protocol": protocol}
