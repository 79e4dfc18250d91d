"""SA-GAN: DCGAN's layers with spectral normalisation and two self-attention blocks in G and D.

References:
  * Zhang, Goodfellow, Metaxas & Odena, "Self-Attention Generative Adversarial Networks", ICML 2019.
  * Miyato et al., "Spectral Normalization for GANs", ICLR 2018 (torch.nn.utils.parametrizations.spectral_norm).
  * Hada, "E0 250 Project 4" (../shared/papers/dcgan-vs-sagan-cifar10.txt), Sec. 4: the same layers
    as its DCGAN, SN in G and D, attention "after the third and the fourth layers", Wasserstein loss,
    TTUR (lr_G 1e-4, lr_D 4e-4, betas (0, 0.9)).
  * heykeetae/Self-Attention-GAN (the report's reference), which hard-wires 64px.

Attention goes after the last two hidden layers of each net: at 64px that is after G's 3rd and 4th
layers (16x16, 32x32) and D's 3rd and 4th (8x8, 4x4), as the report says; at 32px, where both nets
have one layer fewer, after G's 2nd and 3rd and D's 2nd and 3rd, so both sizes keep two blocks each.
G keeps batch norm after each spectrally normalised layer (report Sec. 4.4); D has none, as in the
reference (spectral norm takes its place).
The report's "Wasserstein loss" is trained as its reference does by default (adv_loss 'wgan-gp'): the
objective `wgan_gp` with one critic step per G step. Without the penalty, the critic's values grow
without bound here (the last conv and the attention convs are not normalised, as in the reference).

Where we differ from heykeetae@8714a54 (docs/reference-diffs.md 3), each one key away (preset `sagan_ref`):
  objective gp_step  joint | separate   ours adds lambda GP to the critic loss (one Adam step, Gulrajani
                                        et al.); the reference steps D on the critic loss, then again on
                                        lambda GP alone (trainer.py:122-125, :128-150)
  arch z_dim         100 | 128          the report is silent for SA-GAN (its DCGAN's 100); parameter.py:15
The reference's D-step fakes are not detached (:111-113); ours are drawn under no_grad: the same D update.
"""
from __future__ import annotations

import torch
from pydantic import PositiveInt
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as SN

from ganrepro.config import Strict
from ganrepro.models import register_family
from ganrepro.models.dcgan import n_doublings


class Arch(Strict):
    z_dim: PositiveInt = 100
    ngf: PositiveInt = 64
    ndf: PositiveInt = 64


class SelfAttention(nn.Module):
    """Eqs. (2)-(5): f = W_f x, g = W_g x, h = W_h x (1x1 convs, f and g at C/8 channels);
    s_ij = f(x_i)^T g(x_j); beta_j,i = softmax_i(s_ij); o_j = sum_i beta_j,i h(x_i); y = gamma o + x."""

    def __init__(self, c: int):
        super().__init__()
        c8 = max(c // 8, 1)
        self.f, self.g, self.h = nn.Conv2d(c, c8, 1), nn.Conv2d(c, c8, 1), nn.Conv2d(c, c, 1)
        self.gamma = nn.Parameter(torch.zeros(1))  # 0 at init: the block starts as the identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        f, g, h = self.f(x).flatten(2), self.g(x).flatten(2), self.h(x).flatten(2)  # (B, C', N)
        s = torch.bmm(f.transpose(1, 2), g)  # (B, N, N): s[i, j] = f(x_i) . g(x_j)
        beta = torch.softmax(s, dim=1)  # normalise over i, for each j
        o = torch.bmm(h, beta)  # (B, C, N): o_j = sum_i beta[i, j] h(x_i)
        return self.gamma * o.view(B, C, H, W) + x


class G(nn.Module):
    def __init__(self, z_dim: int = 100, ngf: int = 64, channels: int = 3, img_size: int = 64):
        super().__init__()
        self.z_dim = z_dim
        n = n_doublings(img_size)
        c = ngf * 2 ** (n - 1)
        layers = [SN(nn.ConvTranspose2d(z_dim, c, 4, 1, 0)), nn.BatchNorm2d(c), nn.ReLU(True)]  # (B, c, 4, 4)
        for i in range(n - 1):  # (B, c, s, s) -> (B, c/2, 2s, 2s)
            layers += [SN(nn.ConvTranspose2d(c, c // 2, 4, 2, 1)), nn.BatchNorm2d(c // 2), nn.ReLU(True)]
            c //= 2
            if i >= n - 3:  # after the last two hidden layers
                layers.append(SelfAttention(c))
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        return torch.randn(n, self.z_dim, generator=generator).to(device)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z[:, :, None, None])  # (B, z_dim) -> (B, C, H, W)


class D(nn.Module):
    def __init__(self, ndf: int = 64, channels: int = 3, img_size: int = 64):
        super().__init__()
        n = n_doublings(img_size)
        layers = [SN(nn.Conv2d(channels, ndf, 4, 2, 1)), nn.LeakyReLU(0.1, True)]
        c = ndf
        for i in range(n - 1):  # (B, c, s, s) -> (B, 2c, s/2, s/2)
            layers += [SN(nn.Conv2d(c, c * 2, 4, 2, 1)), nn.LeakyReLU(0.1, True)]
            c *= 2
            if i >= n - 3:
                layers.append(SelfAttention(c))
        layers += [nn.Conv2d(c, 1, 4, 1, 0)]  # (B, c, 4, 4) -> (B, 1, 1, 1) critic value
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x).flatten()  # (B,)


def build(arch: Arch, img_size: int, channels: int, n_classes: int) -> tuple[G, D]:
    return G(arch.z_dim, arch.ngf, channels, img_size), D(arch.ndf, channels, img_size)


register_family("sagan", Arch, build)
