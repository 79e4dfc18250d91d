"""GAN losses as pure functions of D's outputs, registered by name.

Each entry is a pair (d_loss(real, fake), g_loss(fake)) over D's raw outputs (logits/critic values).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

from ganrepro.registry import Registry


class Loss(NamedTuple):
    d: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    g: Callable[[torch.Tensor], torch.Tensor]


LOSSES: Registry[Loss] = Registry("loss")


def bce_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    # -[log D(x) + log(1 - D(G(z)))], D = sigmoid(logit)
    return F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + F.binary_cross_entropy_with_logits(
        fake, torch.zeros_like(fake)
    )


def bce_g(fake: torch.Tensor) -> torch.Tensor:
    # non-saturating: -log D(G(z)) (Goodfellow et al. 2014, Sec. 3)
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def wasserstein_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    # critic maximises E[D(x)] - E[D(G(z))]  (Arjovsky et al. 2017)
    return fake.mean() - real.mean()


def wasserstein_g(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


def hinge_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    # E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]  (Lim & Ye 2017; SA-GAN)
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def hinge_g(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


LOSSES.register("bce")(Loss(bce_d, bce_g))
LOSSES.register("wasserstein")(Loss(wasserstein_d, wasserstein_g))
LOSSES.register("hinge")(Loss(hinge_d, hinge_g))
