"""Conditional WGAN-GP: shapes, the gradient penalty against a closed form, conditioning, one step."""
import pytest
import torch
from torch import nn

from conftest import changed, snapshot, tiny_run
from ganrepro.models import build_models
from ganrepro.objectives.wgan_gp import gradient_penalty
from ganrepro.training.loop import build, train_step

ARCH = {"z_dim": 8, "ngf": 4, "ndf": 4, "embed_dim": 3}


@pytest.mark.parametrize("size,channels", [(32, 1), (64, 3)])
def test_shapes(size, channels):
    G, D = build_models("wgan_gp", ARCH, size, channels, 10)
    y = torch.tensor([0, 3, 9])
    x = G(G.sample_z(3), y)
    assert x.shape == (3, channels, size, size) and D(x, y).shape == (3,)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())


class Linear(nn.Module):
    """D(x) = <w, x>: its input gradient is w everywhere, so the penalty is exactly (||w|| - 1)^2."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x, y=None):
        return (x * self.w).flatten(1).sum(1)


@pytest.mark.parametrize("scale", [0.3, 1.0, 2.5])
def test_gradient_penalty_matches_the_closed_form(scale):
    w = torch.randn(1, 2, 3, 3)
    w = w / w.norm() * scale
    gp = gradient_penalty(Linear(w), torch.randn(5, 2, 3, 3), torch.randn(5, 2, 3, 3), torch.zeros(5, dtype=torch.long))
    assert gp.item() == pytest.approx((scale - 1) ** 2, abs=1e-6)


def test_the_critic_sees_the_label():
    torch.manual_seed(0)
    _, D = build_models("wgan_gp", ARCH, 32, 1, 10)
    x = torch.randn(1, 1, 32, 32).repeat(2, 1, 1, 1)
    out = D(x, torch.tensor([1, 7]))
    assert not torch.isclose(out[0], out[1])


def test_one_generator_step_runs_five_critic_steps_and_changes_both_nets():
    cfg = tiny_run(family="wgan_gp", arch=ARCH, objective={"name": "wgan_gp"}, betas=(0.0, 0.9), lr_g=1e-4, lr_d=1e-4)
    G, D, objective = build(cfg, channels=1, n_classes=10, device=torch.device("cpu"))
    assert objective.n_critic == 5
    g0, d0 = snapshot(G), snapshot(D)
    batches = [(torch.rand(4, 1, 32, 32) * 2 - 1, torch.randint(0, 10, (4,))) for _ in range(5)]
    served = iter(batches)
    logs = train_step(objective, served)
    assert next(served, None) is None  # all five real batches were used by the critic
    assert set(logs) >= {"loss_d", "gp", "loss_g"} and all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert changed(g0, G) and changed(d0, D)
