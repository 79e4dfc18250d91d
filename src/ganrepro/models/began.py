"""BEGAN: an auto-encoder discriminator and a generator shaped like its decoder.

References:
  * Berthelot, Schumm & Metz, "BEGAN: Boundary Equilibrium Generative Adversarial Networks",
    arXiv:1703.10717, 2017 (../shared/papers/began.txt, began-equations.md), Sec. 3.5 and Fig. 1.
  * Reference code: github.com/carpedm20/BEGAN-tensorflow (models.py: GeneratorCNN,
    DiscriminatorCNN; repeat_num = log2(img_size) - 2, conv_hidden_num = 128, z_num = 64).

Architecture (Fig. 1). With S = log2(img_size / 8) + 1 scales (4 at 64px, 3 at 32px), the
bottleneck is always 8x8:
    Encoder  x (B, C, H, W) -> ELU(conv3x3 n)
             for scale i = 1..S: 2 x ELU(conv3x3 i*n); then, below the last scale, a stride-2
                                 ELU(conv3x3 (i+1)*n)   # filters grow linearly per down-sampling
             (B, S*n, 8, 8) -> Linear -> h (B, N_h)      # no activation
    Decoder  h -> Linear -> (B, n, 8, 8)                 # no activation
             for scale i = 1..S: 2 x ELU(conv3x3 n); then, below the last scale, nearest 2x up
             conv3x3 -> C channels                       # no activation
    G        the decoder with its own weights, z ~ U[-1, 1]^{N_z}
    D        decoder(encoder(x)), the reconstruction; D(x) = -L(x) = -mean|x - D.reconstruct(x)|
N_h = N_z = 64 (Sec. 4); n = 128 for the paper's biggest (128px) model and the reference's default.

Switches (Arch keys) where the paper's text is silent and the reference code decides:
  * `g_output`: G's last conv. "linear" is the reference's (BEGAN-tf models.py:17, `activation_fn=None`;
    images are clipped only for display, trainer.py:41-42) and fits began-equations.md's "a final 3x3
    convolution to 3 channels"; "elu" is BEGAN-pytorch's (models.py:37-39); "tanh" bounds G's images to
    [-1, 1]. Evaluation clamps every G's images to [-1, 1], so a linear G is scored as the reference
    displays it. The default "tanh" can saturate: at the quick scale G sat at -1 everywhere (dtanh
    ~0.02) in a degenerate equilibrium that drew only the background. "linear" alone does not rescue
    the quick scale (G still collapses to one image while k_t stays ~0). Presets `began` and
    `began_ref` set "linear". D's decoder is linear in every case, as in the paper and the reference.
  * `down_width`: the encoder's stride-2 conv at scale i outputs (i+1)*n ("next", ours: the width grows
    at each down-sampling) or keeps i*n ("same", BEGAN-tf models.py:29-33, where the next scale's first
    conv widens). began-equations.md's "the number of filters grows linearly with each down-sampling
    (n, 2n, 3n, ...)" fits either. At 64px, n = 128, N_h = 64 the encoder has 13,900,992 ("next") vs
    11,688,768 ("same") parameters. Preset `began` keeps "next", `began_ref` sets "same".
  * The reference's lr (8e-5, config.py:37-38, vs the paper's 1e-4) and its step schedule
    (`lr_schedule: step` in objectives/began.py) are preset values: `began_ref` in params.yaml.

Where we differ, and why:
  * `D(x, y)` is the score -L(x) (higher = more real) so that generic code can call D; BEGAN's
    objective uses `D.reconstruct`.
  * Init: the paper gives none; we use the reference's (TF-slim) Xavier-uniform weights, zero biases.
  * Not implemented: the optional vanishing residuals and h0 skip connections (Sec. 3.5).
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import PositiveInt
from torch import nn

from ganrepro.config import Strict
from ganrepro.models import register_family

BOTTLENECK = 8  # the encoder's last and the decoder's first spatial size, at every img_size


class Arch(Strict):
    z_dim: PositiveInt = 64  # N_z
    h_dim: PositiveInt = 64  # N_h, the auto-encoder's embedding
    ngf: PositiveInt = 128  # n for G
    ndf: PositiveInt = 128  # n for D's encoder and decoder
    # G's last conv: "linear" (BEGAN-tf models.py:17, the paper's "final 3x3 convolution"), "tanh"
    # (bounded to [-1, 1]), "elu" (BEGAN-pytorch models.py:37-39)
    g_output: Literal["linear", "tanh", "elu"] = "tanh"
    # the encoder's stride-2 conv at scale i: "next" outputs (i+1)*n (the width grows at the
    # down-sampling), "same" keeps i*n and the next scale's first conv widens (BEGAN-tf models.py:29-33)
    down_width: Literal["next", "same"] = "next"


def n_scales(img_size: int) -> int:
    """Scales from img_size down to the 8x8 bottleneck, both ends counted: 32px -> 3, 64px -> 4."""
    s = math.log2(img_size / BOTTLENECK) + 1
    if s < 2 or s != int(s):
        raise ValueError(f"img_size: BEGAN needs a power of two >= 16, got {img_size}")
    return int(s)


def conv(c_in: int, c_out: int, stride: int = 1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.ELU(inplace=True))


def weights_init(m: nn.Module) -> None:
    """TF-slim's defaults, as in the reference: Xavier-uniform weights, zero biases."""
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(m.bias)


class Encoder(nn.Module):
    def __init__(self, channels: int, n: int, h_dim: int, img_size: int, down_width: str = "next"):
        super().__init__()
        S = n_scales(img_size)
        layers, width = [conv(channels, n)], n  # width: the channels entering the next conv
        for i in range(1, S + 1):  # (B, i*n, s, s) -> (B, (i+1)*n or i*n, s/2, s/2)
            layers += [conv(width, i * n), conv(i * n, i * n)]  # "same": the first widens (i-1)*n -> i*n
            width = i * n
            if i < S:
                out = (i + 1) * n if down_width == "next" else i * n
                layers.append(conv(i * n, out, stride=2))
                width = out
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(S * n * BOTTLENECK ** 2, h_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x)  # (B, C, H, W) -> (B, S*n, 8, 8)
        return self.fc(x.flatten(1))  # (B, h_dim)


class Decoder(nn.Module):
    def __init__(self, channels: int, n: int, in_dim: int, img_size: int):
        super().__init__()
        S = n_scales(img_size)
        self.n = n
        self.fc = nn.Linear(in_dim, n * BOTTLENECK ** 2)
        layers = []
        for i in range(1, S + 1):  # (B, n, s, s) -> (B, n, 2s, 2s)
            layers += [conv(n, n), conv(n, n)]  # 2 x ELU(conv3x3 n)
            if i < S:
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        layers.append(nn.Conv2d(n, channels, 3, 1, 1))
        self.convs = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.fc(h).view(-1, self.n, BOTTLENECK, BOTTLENECK)  # (B, in_dim) -> (B, n, 8, 8)
        return self.convs(x)  # (B, C, H, W), unbounded


OUTPUTS = {"linear": nn.Identity, "tanh": nn.Tanh, "elu": nn.ELU}


class G(nn.Module):
    def __init__(self, z_dim: int = 64, ngf: int = 128, channels: int = 3, img_size: int = 64,
                 output: str = "tanh"):
        super().__init__()
        self.z_dim = z_dim
        self.dec = Decoder(channels, ngf, z_dim, img_size)
        self.out = OUTPUTS[output]()
        self.apply(weights_init)

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        return (torch.rand(n, self.z_dim, generator=generator) * 2 - 1).to(device)  # z ~ U[-1, 1]

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.out(self.dec(z))  # (B, z_dim) -> (B, C, H, W); in [-1, 1] only for tanh


class D(nn.Module):
    def __init__(self, h_dim: int = 64, ndf: int = 128, channels: int = 3, img_size: int = 64,
                 down_width: str = "next"):
        super().__init__()
        self.enc = Encoder(channels, ndf, h_dim, img_size, down_width)
        self.dec = Decoder(channels, ndf, h_dim, img_size)
        self.apply(weights_init)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.dec(self.enc(x))  # (B, C, H, W) -> h (B, h_dim) -> (B, C, H, W)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return -(x - self.reconstruct(x)).abs().flatten(1).mean(1)  # (B,) = -L(x), per sample


def build(arch: Arch, img_size: int, channels: int, n_classes: int) -> tuple[G, D]:
    return (
        G(arch.z_dim, arch.ngf, channels, img_size, arch.g_output),
        D(arch.h_dim, arch.ndf, channels, img_size, arch.down_width),
    )


register_family("began", Arch, build)
