"""WGAN-GP: the DEQ-GAN paper's baseline (its Table 1 and the Pokemon FID 1.142), and the reference code's.

References:
  * Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017 (the gradient penalty;
    the critic must not use batch norm, which would couple the per-sample gradients it penalises).
  * Monjur et al., DEQ-GAN (../shared/papers/deq-gan.txt), Sec. 3: the conditional GAN "generate[s]
    an embedding of dimension 64x64x1 from the labels ... and pass[es] it as an extra channel".
  * The paper's code: Monjur-Mahathir/DEQ-GAN-755-PROJECT@7366c8b (branch qscgy/pokemon)
    wgan/models/wgan_gradient_penalty.py, Zeleni9/pytorch-wgan with small edits (docs/reference-diffs.md 1.1).

Ours (the defaults): G is DCGAN's generator (depth following img_size, no conv biases, N(0, 0.02)
init) whose 1x1 input gets the label's embedding as extra channels beside z: the 1x1 analogue of
the critic's extra image channel. The critic is DCGAN's discriminator without batch norm, with the
label channel appended to the image. With n_classes = 1 (an unlabelled set such as Pokemon) both
embeddings are constants.

The paper names no architecture ("the state-of-the-art WGAN model", Sec. 4). The reference code
differs from ours as follows, each difference an `arch` key (ours first, the reference second):

  conditional   true | false        the reference has no labels: G(z), D(x) (:16-82; its batches are images only, :362-365)
  critic_norm   none | instance_affine   InstanceNorm2d(affine=True) after every critic conv but the last (:60-72)
  g_conv_bias   false | true        G's ConvTranspose2d keep their default bias (:24, :29, :34, :39)
  g_init        dcgan | pytorch     the reference never re-initialises: PyTorch's default init (:16-46, :93)
  objective's gp_norm  per_sample | per_pixel_channel   see objectives/wgan_gp.py (:327)

Its widths are ours at img_size 32, ngf = ndf = 256: G ConvT 100 -> 1024 (4x4) -> 512 -> 256 -> C,
critic Conv C -> 256 -> 512 -> 1024 -> 1 (k4). Preset `wgan_gp_ref` in params.yaml sets all of it,
with Adam(1e-4, (0.5, 0.999)) (:101-109), n_critic 5, lambda 10 (:117-118), batch 1 and 13,600 G
steps for Pokemon (wgan/runner.sh:1-8). Not switchable: the reference's critic step runs G with
gradients on (its fake is not detached, :182-185; G's grads are cleared at :200), ours under
no_grad: the same update, at a batch of G activations more memory and one G backward more time.
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import PositiveInt
from torch import nn

from ganrepro.config import Strict
from ganrepro.models import register_family
from ganrepro.models.dcgan import G as DCGANGenerator
from ganrepro.models.dcgan import n_doublings


class Arch(Strict):
    z_dim: PositiveInt = 100
    ngf: PositiveInt = 64
    ndf: PositiveInt = 64
    embed_dim: PositiveInt = 10  # channels of G's label embedding (conditional only)
    conditional: bool = True  # false: the reference's unconditional G(z), D(x)
    critic_norm: Literal["none", "instance_affine"] = "none"  # instance_affine: the reference's critic
    g_conv_bias: bool = False  # true: the reference's G convs have biases
    g_init: Literal["dcgan", "pytorch"] = "dcgan"  # pytorch: the layers' default init, as the reference


class G(nn.Module):
    def __init__(self, arch: Arch, channels: int, img_size: int, n_classes: int):
        super().__init__()
        self.z_dim = arch.z_dim
        self.embed = nn.Embedding(n_classes, arch.embed_dim) if arch.conditional else None
        extra = arch.embed_dim if arch.conditional else 0
        self.body = DCGANGenerator(arch.z_dim + extra, arch.ngf, channels, img_size,
                                   bias=arch.g_conv_bias, dcgan_init=arch.g_init == "dcgan")

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        return torch.randn(n, self.z_dim, generator=generator).to(device)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is None:
            return self.body(z)  # (B, z_dim) -> (B, C, H, W)
        y = torch.zeros(len(z), dtype=torch.long, device=z.device) if y is None else y
        return self.body(torch.cat([z, self.embed(y)], dim=1))  # (B, z_dim + e) -> (B, C, H, W)


class D(nn.Module):
    def __init__(self, arch: Arch, channels: int, img_size: int, n_classes: int):
        super().__init__()
        self.img_size = img_size
        # the label as a (1, H, W) channel
        self.embed = nn.Embedding(n_classes, img_size * img_size) if arch.conditional else None

        def block(c_in: int, c_out: int) -> list[nn.Module]:  # (B, c_in, s, s) -> (B, c_out, s/2, s/2)
            norm = [nn.InstanceNorm2d(c_out, affine=True)] if arch.critic_norm == "instance_affine" else []
            return [nn.Conv2d(c_in, c_out, 4, 2, 1), *norm, nn.LeakyReLU(0.2, True)]

        layers = block(channels + (1 if arch.conditional else 0), arch.ndf)
        c = arch.ndf
        for _ in range(n_doublings(img_size) - 1):  # no batch norm (see the docstring)
            layers += block(c, c * 2)
            c *= 2
        layers += [nn.Conv2d(c, 1, 4, 1, 0)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is None:
            return self.net(x).flatten()  # (B,) critic values
        y = torch.zeros(len(x), dtype=torch.long, device=x.device) if y is None else y
        label = self.embed(y).view(-1, 1, self.img_size, self.img_size)  # (B, 1, H, W)
        return self.net(torch.cat([x, label], dim=1)).flatten()  # (B,) critic values


def build(arch: Arch, img_size: int, channels: int, n_classes: int) -> tuple[G, D]:
    return G(arch, channels, img_size, n_classes), D(arch, channels, img_size, n_classes)


def describe(arch: Arch) -> dict:
    """The switches set away from ours (the reference's layout), which its memory and time depend on."""
    return {f"wgan_{k}": v for k, v in arch.model_dump().items()
            if k in ("conditional", "critic_norm", "g_conv_bias", "g_init") and v != Arch.model_fields[k].default}


register_family("wgan_gp", Arch, build, describe)
