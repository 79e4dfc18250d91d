"""FastGAN with one, two or three self-supervised decoders in D ("Model 1/2/3").

References:
  * Liu, Zhu, Song & Elgammal, "Towards Faster and Stabilized GAN Training for High-fidelity
    Few-shot Image Synthesis", ICLR 2021; reference code github.com/odegeasslbc/FastGAN-pytorch
    (models.py: Generator, Discriminator, SEBlock, SimpleDecoder).
  * Dragomir, Piwowarski, Rydzinski, Song & Taran, "Towards Data and Energy Efficient GANs Using
    Decoders", 2023 (../shared/papers/fastgan-decoders.txt), Sec. 3-4; seed code
    github.com/pawelpiwowarski/Fast_GAN_Vrije (model1.py, model2.py, model3.py, TensorFlow).

G (FastGAN, Fig. 3 of Liu et al.): z ~ N(0, I) (B, z_dim) -> ConvT 4x4 + BN + GLU -> (B, 16ngf, 4, 4),
then one up-block per doubling (nearest 2x, conv3x3, BN, GLU(a, b) = a * sigmoid(b)); the blocks at
8, 32, 128, 512 px add a second conv and noise injection (x + w * N(0, 1), w learned, init 0).
Skip-layer excitation (SLE) gates a high-resolution map by a low-resolution one, channel-wise:
    SLE(f_low, f_high) = f_high * sigmoid(conv1x1(swish(conv4x4(avgpool_4x4(f_low)))))   # (B, C, 1, 1)
FastGAN gates 64/128/256/512 px by 4/8/16/32 px (ratio 16). Widths follow FastGAN's table
{4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 1/2, 512: 1/4, 1024: 1/8} x ngf.

D (FastGAN's big branch): a stem at min(img_size, 256) px, then residual down-blocks
    DownBlockComp(x) = (conv4x4/2-BN-LReLU-conv3x3-BN-LReLU(x) + avgpool2-conv1x1-BN-LReLU(x)) / 2
to the final map; SLE gates the last three maps by the maps 8x larger (256->32, 128->16, 64->8);
logits: conv1x1-BN-LReLU-conv4x4 on the final map, i.e. 5x5 = 25 patch logits per image at 8x8.
Widths: 8ndf on the final map, halving per level above it (FastGAN: 512 at 8x8 for ndf = 64).

Decoders (the paper's S_i, Sec. 4): each is FastGAN's SimpleDecoder, adaptive-avg-pool to the final
size, up-blocks (nearest 2x, conv3x3, BN, GLU), conv3x3, tanh; trained on real images only with
L_decoder = sum_i d(S_i(f_i), T_i(x)) (Eq. 3; d = LPIPS, see objectives/fastgan.py):
    Model 1 "whole":  f_1 = the final (8x8) map           T_1(x) = x, resized to rec_size
    Model 2 "part":   + quadrant q of the 16x16 map (8x8)  T_2(x) = quadrant q of x, resized
    Model 3 "center": + central half of the 32x32 map      T_3(x) = central half of x, resized
with q ~ U{0..3} per D step (FastGAN's `part`: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right)
and rec_size = min(128, img_size / 2) (128 at the paper's 256 px, as FastGAN and the seed).

Scales at small images (the quick profile and the tests). FastGAN fixes the final map at 8x8 for
every img_size >= 256 by changing the stem; we keep 8x8 down to 64 px (stem at 64 px, three
down-blocks, decoder maps 8/16/32 as at 256 px). At 32 px the final map is 4x4 (one logit per
image) and the three decoders read the 4x4 / 8x8 / 16x16 maps, i.e. every scale halves.
G's SLE has no 16x pair below 64 px, so its ratio becomes min(16, img_size / 4): at 32 px the
output map (32 px) is gated by the 4x4 map; at 64 px FastGAN's own 4 -> 64 is the only pair.

Where we differ from the references, and why:
  * The centre crop. The seed's `center_crop` takes [8:16, 8:16] of the 32x32 map (a block left of
    and above the centre), while its target is the centre of the image (at 256 px: pixels 64..192,
    the central half). We crop the real centre, [8:24, 8:24] of a 32x32 map (`center_frac` = 0.5),
    so feature crop and target cover the same region. The paper (Sec. 4) says the crop is 8x8;
    our 16x16 crop is average-pooled to 8x8 by the decoder, as the seed's decoder pools too.
  * No second, 128 px D branch (FastGAN's rf_small and decoder_small): the paper's D (Sec. 3.3) has
    two parts, logits and decoders, and the seed has no small branch; G thus returns one image.
  * G ends in tanh (the seed does; FastGAN leaves its 256/512 px output linear) so images are in
    [-1, 1].
  * `z_norm`: "none" (FastGAN, the default) feeds z as drawn; "rms" is the seed's
    normalize_2nd_moment, z * rsqrt(mean(z^2) + 1e-8) per sample (Vrije model3.py:23-24, applied
    first in Generator.call, :174). The paper says only "sampled from ... f.e N(0, I)" (Sec. 1.1).
  * The critic's width is `ndf`: 8ndf channels on the final map, halving per level above it. FastGAN
    (ndf 64) has 512 at 8x8; the seed's Discriminator(filters=128) is FastGAN's scheme at ndf 16:
    128 at 8x8, 64 at 16x16, 32 at 32x32 (Vrije model3.py:236-256, built with its defaults at
    training_loop_3.py:234), and so is the paper's text: "f_2 of size (Bx16x16x64)", "f_3 sized
    Bx32x32x32" (Sec. 4). The paper presets therefore use ndf 16; the Arch default stays FastGAN's 64.
  * `d_head`: "fastgan" (default) conv1x1(c -> 2c)-BN-LReLU-conv4x4(-> 1) (FastGAN models.py:
    222-252); "seed" conv4x4(c -> c)-LReLU-conv1x1(-> 1), no BN (Vrije model3.py:258-263). Both
    give 5x5 patch logits on an 8x8 map.
  * `dec_widths`: "fastgan" (default) SimpleDecoder's up-blocks 128, 64, 64, 32 x dec_ch / 32 for
    every decoder; "seed": up-blocks c, c/2, c/4, c/8 with c the channels of the map the decoder
    reads (128 / 64 / 32 for whole / part / centre; Vrije model3.py:219-228, :265-267); with fewer
    than four up-blocks (small images) the first ones.
  * `init`: "normal" (default) is FastGAN's weights_init, conv weights ~ N(0, 0.02) and BN scale
    ~ N(1, 0.02), shift 0 (FastGAN models.py:10-19); "orthogonal" is the seed's Keras
    kernel_initializer='orthogonal' (gain 1) on every conv and BN's Keras defaults, scale 1 and
    shift 0 (Vrije model3.py:34-35, :137-142). The paper is silent. (Our docstring used to call
    N(0, 0.02) "as both references": it is FastGAN's only.)
  * Spectral norm on every conv of G, D and the decoders, as FastGAN (models.py:21-25, :91). The
    seed has it on every conv except G's input ConvTranspose (Vrije model3.py:137-142):
    `init_layer_sn: false`.
  * `D(x, y)` returns the mean of the patch logits (B,); the objective uses every patch logit
    (`D.forward_with_recons`, `D.patch_logits`), as FastGAN's hinge loss does.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from ganrepro.config import Strict
from ganrepro.models import register_family

G_WIDTH = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5, 512: 0.25, 1024: 0.125}  # x ngf
NOISY = {8, 32, 128, 512}  # G's UpBlockComp resolutions (FastGAN); the rest are plain UpBlocks
DEC_WIDTH = [4, 2, 2, 1]  # SimpleDecoder up-block widths x dec_ch, the last len(...) used
D_SLE_RATIO = 8  # D's SLE: 256 -> 32, 128 -> 16, 64 -> 8
DECODERS = ("whole", "part", "center")  # Model 1 uses the first, Model 3 all three


class Arch(Strict):
    z_dim: PositiveInt = 256  # FastGAN's nz
    ngf: PositiveInt = 64
    ndf: PositiveInt = 64
    dec_ch: PositiveInt = 32  # SimpleDecoder's base width (FastGAN: 32)
    n_decoders: Literal[1, 2, 3] = 1  # the paper's Model 1 / 2 / 3
    center_frac: float = Field(0.5, gt=0, le=1)  # the centre decoder's crop: this fraction of H and W
    z_norm: Literal["none", "rms"] = "none"  # rms: the seed's normalize_2nd_moment of z
    init: Literal["normal", "orthogonal"] = "normal"  # FastGAN N(0, 0.02) | the seed's orthogonal
    init_layer_sn: bool = True  # spectral norm on G's input ConvTranspose (FastGAN); the seed: none
    d_head: Literal["fastgan", "seed"] = "fastgan"  # the logit head on D's final map
    dec_widths: Literal["fastgan", "seed"] = "fastgan"  # the decoders' up-block widths


def check_size(img_size: int) -> int:
    n = math.log2(img_size)
    if n != int(n) or not 32 <= img_size <= 1024:
        raise ValueError(f"img_size: FastGAN needs a power of two in [32, 1024], got {img_size}")
    return int(n)


# ---------------------------------------------------------------- crops (pure)
def quadrant_crop(t: torch.Tensor, q: int) -> torch.Tensor:
    """Quadrant q of the last two dims: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right."""
    if q not in (0, 1, 2, 3):
        raise ValueError(f"quadrant must be 0..3, got {q}")
    h, w = t.shape[-2] // 2, t.shape[-1] // 2
    r, c = divmod(q, 2)
    return t[..., r * h:(r + 1) * h, c * w:(c + 1) * w]


def center_crop(t: torch.Tensor, frac: float = 0.5) -> torch.Tensor:
    """The central frac x frac of the last two dims; refuses crops that cannot be exactly centred."""
    H, W = t.shape[-2:]
    h, w = H * frac, W * frac
    if h != int(h) or w != int(w) or (H - h) % 2 or (W - w) % 2 or h < 1 or w < 1:
        raise ValueError(f"center_crop: {frac} of {H}x{W} is not an exactly centred whole-pixel crop")
    top, left = (H - int(h)) // 2, (W - int(w)) // 2
    return t[..., top:top + int(h), left:left + int(w)]


def region(t: torch.Tensor, name: str, part: int, center_frac: float) -> torch.Tensor:
    """The region a decoder reconstructs, cut the same way from a feature map and from the image."""
    if name == "whole":
        return t
    return quadrant_crop(t, part) if name == "part" else center_crop(t, center_frac)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Area-average down (anti-aliased), bilinear up."""
    if x.shape[-1] == size:
        return x
    if x.shape[-1] > size:
        return F.interpolate(x, size=(size, size), mode="area")
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


# ---------------------------------------------------------------- blocks
def conv(cin: int, cout: int, k: int, s: int = 1, p: int = 0) -> nn.Module:
    return spectral_norm(nn.Conv2d(cin, cout, k, s, p, bias=False))


def keras_orthogonal_(w: torch.Tensor) -> torch.Tensor:
    """Keras' Orthogonal(gain=1) on a conv kernel: the weight flattened as Keras lays it out,
    (k_h * k_w * fan_in, fan_out), made (semi-)orthogonal; i.e. the fan_out filters of a Conv2d
    (our (out, in, kh, kw)) are orthonormal vectors of length in * kh * kw when out <= in * kh * kw.
    A ConvTranspose2d (in, out, kh, kw) has Keras' kernel (kh, kw, out, in): its in filters are."""
    with torch.no_grad():
        rows = w.shape[0]  # Conv2d: out; ConvTranspose2d: in (the "filters" axis Keras keeps last)
        nn.init.orthogonal_(w.view(rows, -1))
    return w


def weights_init(m: nn.Module, init: str = "normal") -> None:
    """normal (FastGAN): conv weights ~ N(0, 0.02); batch-norm scale ~ N(1, 0.02), shift 0.
    orthogonal (the seed): orthogonal conv kernels (Keras, gain 1); batch-norm scale 1, shift 0."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        w = m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight") else m.weight
        # under spectral norm: the raw weight it normalises
        nn.init.normal_(w, 0.0, 0.02) if init == "normal" else keras_orthogonal_(w)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02) if init == "normal" else nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


class NoiseInjection(nn.Module):
    """x + w * n, n ~ N(0, 1) per pixel, shared over channels; w learned, init 0 (StyleGAN)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        return x + self.weight * torch.randn(B, 1, H, W, device=x.device, dtype=x.dtype)


class SLE(nn.Module):
    """Skip-layer excitation: f_high * sigmoid(conv1x1(swish(conv4x4(avgpool_4(f_low)))))."""

    def __init__(self, c_low: int, c_high: int):
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(4), conv(c_low, c_high, 4), nn.SiLU(),
                                  conv(c_high, c_high, 1), nn.Sigmoid())  # (B, c_high, 1, 1)

    def forward(self, f_low: torch.Tensor, f_high: torch.Tensor) -> torch.Tensor:
        return f_high * self.gate(f_low)


def up_block(cin: int, cout: int, noise: bool = False) -> nn.Sequential:
    """(B, cin, s, s) -> (B, cout, 2s, 2s); with `noise`, FastGAN's UpBlockComp (two convs)."""
    layers = [nn.Upsample(scale_factor=2, mode="nearest"), conv(cin, 2 * cout, 3, 1, 1)]
    layers += [NoiseInjection()] if noise else []
    layers += [nn.BatchNorm2d(2 * cout), nn.GLU(dim=1)]
    if noise:
        layers += [conv(cout, 2 * cout, 3, 1, 1), NoiseInjection(), nn.BatchNorm2d(2 * cout), nn.GLU(dim=1)]
    return nn.Sequential(*layers)


class DownBlockComp(nn.Module):
    """(B, cin, s, s) -> (B, cout, s/2, s/2): mean of a conv path and an avg-pool shortcut."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.main = nn.Sequential(conv(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2),
                                  conv(cout, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))
        self.direct = nn.Sequential(nn.AvgPool2d(2, 2), conv(cin, cout, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.main(x) + self.direct(x)) / 2


def decoder(cin: int, dec_ch: int, channels: int, pool: int, rec_size: int,
            widths_from: str = "fastgan") -> nn.Sequential:
    """FastGAN's SimpleDecoder: (B, cin, h, w) -> pool to (pool, pool) -> (B, channels, rec_size, rec_size).

    Up-block widths: FastGAN's DEC_WIDTH x dec_ch (the last n_up), or the seed's cin, cin/2, cin/4,
    cin/8 (the first n_up)."""
    n_up = int(math.log2(rec_size // pool))
    if not 1 <= n_up <= len(DEC_WIDTH):
        raise ValueError(f"decoder: {pool} -> {rec_size} px needs 1..{len(DEC_WIDTH)} up-blocks")
    if widths_from == "seed":
        widths = [max(1, cin // 2 ** i) for i in range(n_up)]
    else:
        widths = [w * dec_ch for w in DEC_WIDTH[-n_up:]]
    layers, c = [nn.AdaptiveAvgPool2d(pool)], cin
    for w in widths:
        layers.append(up_block(c, w))
        c = w
    return nn.Sequential(*layers, conv(c, channels, 3, 1, 1), nn.Tanh())


# ---------------------------------------------------------------- G
class G(nn.Module):
    def __init__(self, z_dim: int = 256, ngf: int = 64, channels: int = 3, img_size: int = 256,
                 z_norm: str = "none", init: str = "normal", init_layer_sn: bool = True):
        super().__init__()
        self.z_dim, self.img_size, self.z_norm = z_dim, img_size, z_norm
        sizes = [2 ** i for i in range(3, check_size(img_size) + 1)]  # 8 .. img_size
        ch = {s: max(1, int(G_WIDTH[s] * ngf)) for s in [4, *sizes]}
        first = nn.ConvTranspose2d(z_dim, 2 * ch[4], 4, 1, 0, bias=False)
        self.init = nn.Sequential(spectral_norm(first) if init_layer_sn else first,
                                  nn.BatchNorm2d(2 * ch[4]), nn.GLU(dim=1))  # (B, z, 1, 1) -> (B, ch4, 4, 4)
        self.ups = nn.ModuleDict({str(s): up_block(ch[s // 2], ch[s], noise=s in NOISY) for s in sizes})
        ratio = min(16, img_size // 4)  # FastGAN: 16; below 64 px the largest that exists
        self.sle_from = {s: s // ratio for s in sizes if s // ratio >= 4 and s <= 512}  # gated size -> source size
        self.sle = nn.ModuleDict({str(s): SLE(ch[lo], ch[s]) for s, lo in self.sle_from.items()})
        self.to_img = nn.Sequential(conv(ch[img_size], channels, 3, 1, 1), nn.Tanh())
        self.apply(lambda m: weights_init(m, init))

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        return torch.randn(n, self.z_dim, generator=generator).to(device)  # z ~ N(0, I)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.z_norm == "rms":  # the seed's normalize_2nd_moment: unit mean square per sample
            z = z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8)  # (B, z_dim)
        feats = {4: self.init(z[:, :, None, None])}  # (B, ch4, 4, 4)
        h = feats[4]
        for s, block in self.ups.items():
            h = block(h)  # (B, ch_s, s, s)
            if int(s) in self.sle_from:
                h = self.sle[s](feats[self.sle_from[int(s)]], h)
            feats[int(s)] = h
        return self.to_img(h)  # (B, C, H, W) in [-1, 1]


# ---------------------------------------------------------------- D
class D(nn.Module):
    def __init__(self, ndf: int = 64, channels: int = 3, img_size: int = 256, n_decoders: int = 1,
                 dec_ch: int = 32, center_frac: float = 0.5, init: str = "normal", d_head: str = "fastgan",
                 dec_widths: str = "fastgan"):
        super().__init__()
        check_size(img_size)
        self.final = 8 if img_size >= 64 else 4  # the logit map; decoders read final, 2x, 4x
        self.rec_size = min(128, img_size // 2)
        self.n_decoders, self.center_frac = n_decoders, center_frac
        stem = min(img_size, 256)
        ch = lambda s: max(1, 8 * ndf * self.final // s)  # noqa: E731  8ndf at the final map, halving per level up
        layers, s, c = [], img_size, channels
        if img_size <= 256:  # FastGAN's down_from_big at 256 px: conv3x3, stride 1
            layers += [conv(channels, ch(stem), 3, 1, 1), nn.LeakyReLU(0.2)]
        while s > stem:  # 512 / 1024 px: stride-2 convs down to 256 px
            layers += [conv(c, ch(s // 2), 4, 2, 1)] + ([nn.BatchNorm2d(ch(s // 2))] if s < img_size else [])
            layers += [nn.LeakyReLU(0.2)]
            s, c = s // 2, ch(s // 2)
        self.stem = nn.Sequential(*layers)  # (B, ch(stem), stem, stem)
        sizes = [stem // 2 ** i for i in range(1, int(math.log2(stem // self.final)) + 1)]  # stem/2 .. final
        self.downs = nn.ModuleDict({str(s): DownBlockComp(ch(2 * s), ch(s)) for s in sizes})
        self.sle_from = {s: D_SLE_RATIO * s for s in sizes[-3:] if D_SLE_RATIO * s <= stem}
        self.sle = nn.ModuleDict({str(s): SLE(ch(lo), ch(s)) for s, lo in self.sle_from.items()})
        c = ch(self.final)
        if d_head == "seed":  # conv4x4 (valid)-LReLU-conv1x1 (Vrije model3.py:258-263)
            self.rf = nn.Sequential(conv(c, c, 4), nn.LeakyReLU(0.2), conv(c, 1, 1))  # (B, 1, final-3, final-3)
        else:  # FastGAN's rf_big
            self.rf = nn.Sequential(conv(c, 2 * c, 1), nn.BatchNorm2d(2 * c),
                                    nn.LeakyReLU(0.2), conv(2 * c, 1, 4))  # (B, 1, final-3, final-3)
        self.dec_map = {"whole": self.final, "part": 2 * self.final, "center": 4 * self.final}  # map each reads
        self.decoders = nn.ModuleDict({
            k: decoder(ch(self.dec_map[k]), dec_ch, channels, self.final, self.rec_size, dec_widths)
            for k in DECODERS[:n_decoders]})
        if n_decoders == 3:
            center_crop(torch.empty(4 * self.final, 4 * self.final), center_frac)  # fail early on a bad frac
            center_crop(torch.empty(img_size, img_size), center_frac)
        self.apply(lambda m: weights_init(m, init))

    def features(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """Every map of the main path by its size: {stem: (B, ch, stem, stem), ..., final: (B, 8ndf, f, f)}."""
        h = self.stem(x)
        feats = {h.shape[-1]: h}
        for s, block in self.downs.items():
            h = block(h)
            if int(s) in self.sle_from:
                h = self.sle[s](feats[self.sle_from[int(s)]], h)
            feats[int(s)] = h
        return feats

    def patch_logits(self, feats: dict[int, torch.Tensor]) -> torch.Tensor:
        return self.rf(feats[self.final]).flatten(1)  # (B, P): P = 25 at an 8x8 final map, 1 at 4x4

    def recon_targets(self, x: torch.Tensor, part: int) -> dict[str, torch.Tensor]:
        """The paper's T_i(x): the image regions the decoders reconstruct, at (rec_size, rec_size)."""
        return {k: resize(region(x, k, part, self.center_frac), self.rec_size) for k in self.decoders}

    def forward_with_recons(self, x: torch.Tensor, part: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Real images: (patch logits (B, P), {decoder: S_i(f_i), (B, C, rec_size, rec_size)})."""
        feats = self.features(x)
        recons = {k: dec(region(feats[self.dec_map[k]], k, part, self.center_frac))  # S_i(f_i)
                  for k, dec in self.decoders.items()}
        return self.patch_logits(feats), recons

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.patch_logits(self.features(x)).mean(1)  # (B,)


def build(arch: Arch, img_size: int, channels: int, n_classes: int) -> tuple[G, D]:
    return (
        G(arch.z_dim, arch.ngf, channels, img_size, arch.z_norm, arch.init, arch.init_layer_sn),
        D(arch.ndf, channels, img_size, arch.n_decoders, arch.dec_ch, arch.center_frac, arch.init,
          arch.d_head, arch.dec_widths),
    )


register_family("fastgan", Arch, build)
