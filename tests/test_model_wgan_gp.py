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


# ---------------------------------------------------------------- the reference code's layout (preset wgan_gp_ref)
def test_the_defaults_keep_our_layout():
    """Ours at 64px, 3 channels, 1 class: docs/reference-diffs.md 1.1's counts (+ the label embeddings)."""
    G, D = build_models("wgan_gp", {}, 64, 3, 1)
    assert sum(p.numel() for p in G.parameters()) == 3_658_624 + 10
    assert sum(p.numel() for p in D.parameters()) == 2_765_761 + 64 * 64
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in D.modules())
    assert all(m.bias is None for m in G.modules() if isinstance(m, nn.ConvTranspose2d))


def test_the_reference_preset_has_the_reference_codes_parameter_counts():
    """DEQ-GAN-755-PROJECT@7366c8b wgan/models/wgan_gradient_penalty.py:16-82 at 3 channels, 32px:
    G 12,141,827 and the critic 10,519,809 parameters (docs/reference-diffs.md 1.1, by arithmetic)."""
    from ganrepro.config import load_params
    from conftest import ROOT

    preset = load_params(ROOT / "params.yaml").models["wgan_gp_ref"]
    assert (preset.img_size, preset.batch_size, preset.betas, preset.lr_g, preset.lr_d, preset.steps) == \
        (32, 1, (0.5, 0.999), 1e-4, 1e-4, 13600)
    assert preset.objective == {"name": "wgan_gp", "n_critic": 5, "gp_lambda": 10.0, "gp_norm": "per_pixel_channel"}
    G, D = build_models("wgan_gp", preset.arch, preset.img_size, 3, 1)
    n_g, n_d = (sum(p.numel() for p in m.parameters()) for m in (G, D))
    assert n_g == pytest.approx(12_141_827, rel=0.01) and n_d == pytest.approx(10_519_809, rel=0.01)
    assert (n_g, n_d) == (12_141_827, 10_519_809)  # exactly: the same layers
    assert [m.out_channels for m in G.modules() if isinstance(m, nn.ConvTranspose2d)] == [1024, 512, 256, 3]
    assert [m.out_channels for m in D.modules() if isinstance(m, nn.Conv2d)] == [256, 512, 1024, 1]
    assert [m.affine for m in D.modules() if isinstance(m, nn.InstanceNorm2d)] == [True] * 3
    z = G.sample_z(2)
    assert G(z).shape == (2, 3, 32, 32) and D(G(z)).shape == (2,)


def test_unconditional_nets_ignore_the_label():
    arch = {**ARCH, "conditional": False, "critic_norm": "instance_affine"}
    G, D = build_models("wgan_gp", arch, 32, 1, 10)
    assert not any(isinstance(m, nn.Embedding) for m in [*G.modules(), *D.modules()])
    z, x = G.sample_z(2), torch.randn(2, 1, 32, 32)
    assert torch.equal(G(z, torch.tensor([1, 7])), G(z)) and torch.equal(D(x, torch.tensor([1, 7])), D(x))


def test_the_profile_names_the_reference_switches_only_when_set():
    from ganrepro.models import describe_arch

    assert describe_arch("wgan_gp", ARCH) == {}
    assert describe_arch("wgan_gp", {**ARCH, "critic_norm": "instance_affine", "conditional": False}) == \
        {"wgan_conditional": False, "wgan_critic_norm": "instance_affine"}


@pytest.mark.parametrize("scale", [0.3, 1.0, 2.5])
def test_the_reference_gradient_penalty_takes_the_norm_over_channels_per_pixel(scale):
    """wgan_gradient_penalty.py:327 @ 7366c8b: with D(x) = <w, x>, the gradient at every pixel is w's
    channel vector there, so the penalty is the mean over pixels of (||w[:, h, w]|| - 1)^2."""
    w = torch.randn(1, 2, 3, 3) * scale
    expected = ((w[0].norm(dim=0) - 1) ** 2).mean().item()
    args = (Linear(w), torch.randn(5, 2, 3, 3), torch.randn(5, 2, 3, 3), torch.zeros(5, dtype=torch.long))
    assert gradient_penalty(*args, norm="per_pixel_channel").item() == pytest.approx(expected, rel=1e-5)
    assert gradient_penalty(*args).item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-5)  # ours
    with pytest.raises(ValueError, match="gp_norm: unknown 'l1'; valid: per_sample, per_pixel_channel"):
        gradient_penalty(*args, norm="l1")


def test_one_step_of_the_reference_setting_trains_both_nets():
    arch = {**ARCH, "conditional": False, "critic_norm": "instance_affine", "g_conv_bias": True, "g_init": "pytorch"}
    cfg = tiny_run(family="wgan_gp", arch=arch, objective={"name": "wgan_gp", "n_critic": 2, "gp_norm": "per_pixel_channel"},
                   betas=(0.5, 0.999), lr_g=1e-4, lr_d=1e-4)
    G, D, objective = build(cfg, channels=3, n_classes=1, device=torch.device("cpu"))
    g0, d0 = snapshot(G), snapshot(D)
    logs = train_step(objective, iter([(torch.rand(4, 3, 32, 32) * 2 - 1, torch.zeros(4, dtype=torch.long))] * 2))
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert changed(g0, G) and changed(d0, D)
