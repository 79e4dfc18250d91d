"""LPIPS (Zhang et al. 2018) through the `lpips` package, plus an offline stand-in.

    lpips_alex    the real metric: lpips.LPIPS(net="alex"), v0.1 linear heads (shipped with the
                  package) on torchvision's ImageNet AlexNet (alexnet-owt-7be5be79.pth, torch cache)
    lpips_digit   offline stand-in: the LPIPS formula with uniform weights on the digit
                  classifier's two conv layers:  d(x, x') = sum_l mean_hw || n(f_l(x)) - n(f_l(x')) ||^2
                  where n() unit-normalises over channels (lpips.normalize_tensor)

`diversity` averages d over random pairs of generated images (higher = more diverse).
`real_fake` averages d over (real, generated) pairs, as the FastGAN-decoders table does (lower =
closer to the data): the i-th of n fakes is paired with the i-th of n real images drawn without
replacement in a seeded order (with replacement only if n exceeds the data).
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch

from ganrepro.corrupt import reading, redownload
from ganrepro.metrics.features import MissingWeightsError, hub_file, weights_missing
from ganrepro.registry import Registry
from ganrepro.utils import sha256_file

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
ALEXNET_URL = f"https://download.pytorch.org/models/{ALEXNET_FILE}"

LPIPS: Registry[Callable] = Registry("lpips backend")


def alexnet_weights() -> tuple:
    """(file, what it is, remedy if it is damaged) of LPIPS's AlexNet backbone."""
    return hub_file(ALEXNET_FILE), "LPIPS AlexNet backbone weights file", redownload(ALEXNET_URL)


def lpips_missing(backend: str):
    if backend == "lpips_alex":
        return None if hub_file(ALEXNET_FILE).exists() else hub_file(ALEXNET_FILE)
    return weights_missing("digit_classifier")


@LPIPS.register("lpips_alex")
def lpips_alex(device: torch.device) -> tuple[Callable, dict]:
    import lpips

    if not hub_file(ALEXNET_FILE).exists():
        raise MissingWeightsError(hub_file(ALEXNET_FILE), ALEXNET_URL, "LPIPS AlexNet backbone")
    with warnings.catch_warnings(), \
            reading(*alexnet_weights()):
        warnings.simplefilter("ignore", UserWarning)  # lpips calls torchvision's deprecated `pretrained=True`
        net = lpips.LPIPS(net="alex", verbose=False)  # torchvision reads the file itself
    net = net.to(device).eval()

    def dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # [-1, 1] (B, C, H, W) -> (B,)
        if a.shape[1] == 1:
            a, b = a.repeat(1, 3, 1, 1), b.repeat(1, 3, 1, 1)
        return net(a.to(device), b.to(device)).flatten()

    file = hub_file(ALEXNET_FILE)
    return dist, {"backend": "lpips_alex", "version": "0.1", "weights": file.name, "weights_sha256": sha256_file(file)}


@LPIPS.register("lpips_digit")
def lpips_digit(device: torch.device) -> tuple[Callable, dict]:
    import lpips

    from ganrepro.metrics.features import digit_classifier

    backend = digit_classifier(device=device)
    net = backend.net

    def dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        fa, fb = net.conv_features(a.to(device)), net.conv_features(b.to(device))
        layers = [lpips.spatial_average((lpips.normalize_tensor(x) - lpips.normalize_tensor(y)) ** 2).sum(1)
                  for x, y in zip(fa, fb)]  # each (B, 1, 1)
        return torch.stack(layers).sum(0).flatten()  # (B,)

    protocol = backend.protocol()
    return dist, {"backend": "lpips_digit", "layers": "digit classifier conv1, conv2", "layer_weights": "uniform",
                  "weights": protocol["weights"], "weights_sha256": protocol["weights_sha256"]}


@torch.no_grad()
def diversity(dist: Callable, sample: Callable[[int], torch.Tensor], n_pairs: int, batch_size: int = 100) -> float:
    """Mean LPIPS between independent pairs of samples."""
    total, done = 0.0, 0
    while done < n_pairs:
        b = min(batch_size, n_pairs - done)
        total += dist(sample(b), sample(b)).sum().item()
        done += b
    return total / n_pairs


@torch.no_grad()
def real_fake(dist: Callable, images: torch.Tensor, sample: Callable[[int], torch.Tensor], n_pairs: int,
              seed: int, batch_size: int = 100) -> float:
    """Mean LPIPS over n (real, fake) pairs; `images` are uint8 (N, C, H, W)."""
    gen = torch.Generator().manual_seed(seed)
    if n_pairs <= len(images):
        order = torch.randperm(len(images), generator=gen)[:n_pairs]
    else:
        order = torch.randint(len(images), (n_pairs,), generator=gen)
    total = 0.0
    for i in range(0, n_pairs, batch_size):
        real = images[order[i : i + batch_size]].float() / 127.5 - 1  # (b, C, H, W) in [-1, 1]
        total += dist(real, sample(len(real))).sum().item()
    return total / n_pairs
