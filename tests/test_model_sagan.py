"""SA-GAN: shapes, spectral norm, attention as identity at init and as Eqs. (3)-(5) after."""
import pytest
import torch
from torch import nn

from conftest import changed, snapshot, tiny_run
from ganrepro.models import build_models
from ganrepro.models.sagan import SelfAttention
from ganrepro.training.loop import build, train_step

ARCH = {"z_dim": 8, "ngf": 8, "ndf": 8}


@pytest.mark.parametrize("size,channels", [(32, 1), (64, 3)])
def test_shapes_and_two_attention_blocks_per_net(size, channels):
    G, D = build_models("sagan", ARCH, size, channels, 10)
    x = G(G.sample_z(3))
    assert x.shape == (3, channels, size, size) and D(x).shape == (3,)
    for net in (G, D):
        assert sum(isinstance(m, SelfAttention) for m in net.modules()) == 2


def test_attention_sits_after_the_third_and_fourth_layers_at_64px():
    G, D = build_models("sagan", ARCH, 64, 3, 10)
    sizes = []
    h = G.sample_z(1)[:, :, None, None]
    for m in G.net:
        h = m(h)
        if isinstance(m, SelfAttention):
            sizes.append(h.shape[-1])
    assert sizes == [16, 32]  # after G's 3rd (16x16) and 4th (32x32) layers


def test_spectrally_normalised_layers_have_unit_largest_singular_value():
    G, D = build_models("sagan", ARCH, 32, 1, 10)
    G.train(), D.train()
    x = torch.randn(4, 1, 32, 32)
    for _ in range(30):  # each forward runs one power iteration
        D(x), G(G.sample_z(4))
    checked = 0
    for m in [*G.modules(), *D.modules()]:
        if hasattr(m, "parametrizations") and "weight" in m.parametrizations:
            w = m.weight
            w = w.transpose(0, 1) if isinstance(m, nn.ConvTranspose2d) else w  # SN's dim=1 for transposed
            sigma = torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2)
            assert sigma.item() == pytest.approx(1.0, abs=0.02)
            checked += 1
    assert checked >= 6


def test_attention_is_the_identity_at_init_and_equations_3_to_5_after():
    torch.manual_seed(0)
    att = SelfAttention(16)
    x = torch.randn(2, 16, 4, 4)
    assert att.gamma.item() == 0 and torch.equal(att(x), x)
    with torch.no_grad():
        att.gamma.fill_(0.7)
    f, g, h = att.f(x).flatten(2), att.g(x).flatten(2), att.h(x).flatten(2)  # (B, C', N)
    s = torch.einsum("bci,bcj->bij", f, g)  # s_ij = f(x_i)^T g(x_j)
    beta = s.exp() / s.exp().sum(dim=1, keepdim=True)  # beta_{j,i}: softmax over i
    o = torch.einsum("bij,bci->bcj", beta, h)  # o_j = sum_i beta_{j,i} h(x_i)
    expected = 0.7 * o.reshape(2, 16, 4, 4) + x
    assert torch.allclose(att(x), expected, atol=1e-5) and not torch.allclose(att(x), x)


@pytest.mark.parametrize("loss", ["wasserstein", "hinge"])
def test_one_step_finite_and_changes_both_nets(loss):
    cfg = tiny_run(family="sagan", arch=ARCH, objective={"name": "gan", "loss": loss}, betas=(0.0, 0.9))
    G, D, objective = build(cfg, channels=1, n_classes=10, device=torch.device("cpu"))
    g0, d0 = snapshot(G), snapshot(D)
    real = torch.rand(4, 1, 32, 32) * 2 - 1
    logs = train_step(objective, iter([(real, torch.zeros(4, dtype=torch.long))] * 2))
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert changed(g0, G) and changed(d0, D)


class _FixedG(nn.Module):
    """A generator stub that always returns the same fake batch."""

    def __init__(self, fake):
        super().__init__()
        self.fake, self.w = fake, nn.Parameter(torch.zeros(1))

    def sample_z(self, n, generator=None):
        return torch.zeros(n, 1)

    def forward(self, z, y=None):
        return self.fake[: len(z)] + 0 * self.w


class _Critic(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 1), nn.Flatten(0))

    def forward(self, x, y=None):
        return self.net(x)  # (B,)


_critic = _Critic


@pytest.mark.parametrize("gp_step", ["joint", "separate"])
def test_gp_step_matches_hand_written_sgd_updates(gp_step):
    """gp_step separate = heykeetae trainer.py:122-150: an optimiser step on E[D(G(z))] - E[D(x)], then
    one on lambda GP at the updated critic; joint = one step on their sum. Checked with plain SGD by hand."""
    from ganrepro.objectives.wgan_gp import WGANGPObjective

    torch.manual_seed(0)
    real, fake, y = torch.randn(4, 1, 4, 4), torch.randn(4, 1, 4, 4), torch.zeros(4, dtype=torch.long)
    lr, lam = 0.1, 10.0
    D, G = _critic(), _FixedG(fake)
    args = WGANGPObjective.Args(n_critic=1, gp_lambda=lam, gp_step=gp_step)
    obj = WGANGPObjective(G, D, torch.optim.SGD(G.parameters(), lr), torch.optim.SGD(D.parameters(), lr), args)
    torch.manual_seed(5)
    obj.d_step(real, y)

    ref = _critic()  # the same initial weights, updated by hand
    torch.manual_seed(5)
    eps = torch.rand(4, 1, 1, 1)  # the penalty's one draw

    def critic_loss(m):
        return m(fake).mean() - m(real).mean()

    def penalty(m):
        x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (g,) = torch.autograd.grad(m(x_hat).sum(), x_hat, create_graph=True)
        return ((g.pow(2).sum(dim=(1, 2, 3)).sqrt() - 1) ** 2).mean()

    def sgd(m, loss):
        grads = torch.autograd.grad(loss, list(m.parameters()), allow_unused=True)  # the last bias: no GP grad
        with torch.no_grad():
            for p, g in zip(m.parameters(), grads):
                if g is not None:
                    p -= lr * g

    if gp_step == "separate":
        sgd(ref, critic_loss(ref))
        sgd(ref, lam * penalty(ref))
    else:
        sgd(ref, critic_loss(ref) + lam * penalty(ref))
    for p, q in zip(D.parameters(), ref.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_gp_step_separate_differs_from_joint_and_is_validated():
    from ganrepro.config import ConfigError
    from ganrepro.objectives import parse_objective

    real = torch.rand(4, 1, 32, 32) * 2 - 1
    y = torch.zeros(4, dtype=torch.long)
    weights = []
    for gp_step in ("joint", "separate"):
        torch.manual_seed(0)
        cfg = tiny_run(family="sagan", arch=ARCH, betas=(0.0, 0.9),
                       objective={"name": "wgan_gp", "n_critic": 1, "gp_step": gp_step})
        G, D, objective = build(cfg, channels=1, n_classes=10, device=torch.device("cpu"))
        torch.manual_seed(1)
        logs = objective.d_step(real, y)
        assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
        weights.append(torch.cat([p.detach().flatten() for p in D.parameters()]))
    assert not torch.allclose(*weights)
    with pytest.raises(ConfigError, match="gp_step"):
        parse_objective({"name": "wgan_gp", "gp_step": "twice"})
