"""The GAN losses against hand computations from their definitions."""
import math

import pytest
import torch

from ganrepro.losses import LOSSES

real = torch.tensor([2.0, -1.0])
fake = torch.tensor([0.5, -3.0])


def sig(x):
    return 1 / (1 + math.exp(-x))


def test_bce_is_the_gan_log_loss_with_the_non_saturating_generator():
    d = -(sum(math.log(sig(r)) for r in real.tolist()) / 2 + sum(math.log(1 - sig(f)) for f in fake.tolist()) / 2)
    g = -sum(math.log(sig(f)) for f in fake.tolist()) / 2
    assert LOSSES.get("bce").d(real, fake).item() == pytest.approx(d, rel=1e-6)
    assert LOSSES.get("bce").g(fake).item() == pytest.approx(g, rel=1e-6)


def test_wasserstein_and_hinge():
    assert LOSSES.get("wasserstein").d(real, fake).item() == pytest.approx((0.5 - 3) / 2 - (2 - 1) / 2)
    assert LOSSES.get("wasserstein").g(fake).item() == pytest.approx(1.25)
    # hinge: mean(relu(1 - r)) + mean(relu(1 + f)) = (0 + 2)/2 + (1.5 + 0)/2
    assert LOSSES.get("hinge").d(real, fake).item() == pytest.approx(1.75)
    assert LOSSES.get("hinge").g(fake).item() == pytest.approx(1.25)
