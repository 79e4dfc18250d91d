"""DEQ-GAN: a multiscale deep-equilibrium generator and a small WGAN critic.

References:
  * Monjur, Ehrenstein, Aktar & Liu, "DEQ-GAN: Deep Equilibrium Models for Generative Adversarial
    Networks" (../shared/papers/deq-gan.txt), Sec. 3, Fig. 1-2, Table 2.
  * Reference code: github.com/Monjur-Mahathir/DEQ-GAN-755-PROJECT, branch qscgy/pokemon @ 7366c8b
    (main2.py, Generator.py, lib/MDEQ.py, lib/solvers.py, Discriminator.py; the only training script
    there that trains G, see docs/reference-diffs.md 1.0). Line numbers below are of that commit.
  * Bai, Koltun & Kolter, "Multiscale Deep Equilibrium Models" (MDEQ), NeurIPS 2020: the
    per-resolution residual block, the multiscale fusion and the GroupNorm placement.
  * TorchDEQ 0.1.0 (Geng & Kolter): `get_deq` does the fixed-point solve and the backward pass; this
    file only writes f. Its option names are ours: f_solver, b_solver, f_max_iter, b_max_iter, f_tol,
    b_tol, f_stop_mode, b_stop_mode, eval_f_max_iter, core, ift, grad, tau.

The generator (Sec. 3). With n branches, branch i holds a hidden state z_i at resolution H / 2^i
(64, 32, 16 at 64px) with ngf * 2^i channels. The injected input x is an image (B, C, H, W) made from
z ~ N(0, I_z_dim) (`injection`): `linear`, a learned linear map of z per pixel (a noise image), or
`dcgan_decoder`, the reference's trainable DCGAN decoder (ConvT-BN-ReLU x m, DCGANDecoder); plus,
when conditional, a learned label-embedding channel
(B, 1, H, W) (Sec. 3, "an embedding of dimension 64x64x1 ... as an extra channel"); x is
average-pooled n-1 times ("we downsample the input image n times"), one copy per branch:
    f(z; x)_i = relu(GN(z_i + sum_j F_ij(h_j))),    u_i = GN(Conv3x3(x_i))  (once, outside f)
    h_j = GN(ConvT_up(relu(GN(Conv_down(z_j)))) + u_j)      # per-branch conv / conv-transpose block
    F_ii = identity; F_ij = 1x1 conv + upsampling (j > i) or stride-2 3x3 convs (j < i)   # MDEQ fusion
and the generator's output is the equilibrium z* = f(z*; x) (Eq. "z* = RootFind(g; x)"), each z*_i
mapped to an image at its resolution by tanh(Conv3x3(z*_i)). `G.forward_all` returns all n images,
highest resolution first; `G(z, y)` the highest.

Where we differ from the reference code, and why:
  * The paper's gradient is the implicit one, dl/dz* (J_g^-1) df/dtheta; the reference code could not
    get it to work (Sec. 5.2) and backpropagated through one call of f (its hook is commented out),
    i.e. the 1-step Jacobian-free gradient. Ours works both ways (tests/test_model_deq.py checks the IFT
    gradient against autograd through the unrolled iterations). Default here: the reference's 1-step
    variant `ift=False, grad=1, tau=1.0` with Anderson, the best trade-off of benchmarks/deq_vs_wgan.py
    (reports/benchmarks.md); the paper's implicit gradient is `ift=True`; phantom gradients are
    `ift=False, grad=k, tau`.
  * Injection (`injection`, default `linear`). The paper: "These hidden states are generated randomly"
    (Sec. 3). Ours is a linear map of z (like the label's embedding), i.e. a noise image whose pixel
    correlations are learned: with an i.i.d. noise image (tried first) the samples stayed textured
    noise at quick scale, as a conv f sees only local noise. The reference injects the output of a
    trainable 5-layer DCGAN decoder from z (Generator.py:21-56; 12.66M parameters at 64px, widths
    1024-512-256-128-3, BN + ReLU after every layer, the last one too): `injection: dcgan_decoder`,
    `decoder_ngf: 128`, which then does much of the generating. Here the decoder's image is downsampled
    into every branch like the linear one; the reference injects zeros at the lower resolutions
    (Generator.py:60-62), which is not switchable.
  * The reference's hidden state is the image itself (3 channels, BatchNorm inside f, tanh as f's
    last layer, no read-out head; f(z; x) = g(z + x), MDEQ.py:5-45): `state: image` (ImageF; one
    branch and unconditional, as main2.py trains it; the reference's multi-branch fusion of images is
    not reproduced). We follow MDEQ (`state: hidden`: ngf channels; GroupNorm, which is per-sample and
    keeps f the same function at batch size 1 and in eval mode; a tanh(conv3x3) read-out).
  * Critic head (`critic_head`): the paper's Fig. 2 flattens the second conv's features into a linear
    layer (`flatten_linear`, 1.22M parameters at 64px, ndf 128); the reference adds a third conv3x3
    to one channel before the linear layer (Discriminator.py:11-35, 304K): `conv_to_1`.
  * Solver (reference Generator.py:69-76, lib/solvers.py:116-195): Broyden for at most 30 steps,
    stopping when the L2 norm of f(z) - z over the whole batch tensor is below 1e-3 (`abs`). Ours:
    `f_solver`, `f_max_iter`, `f_tol`, `f_stop_mode: abs` (torchdeq's abs residual is per sample).
  * MDEQ fuses after the residual block and ends with relu -> 1x1 conv -> GN. With that post-fusion
    layer a freshly built 3-branch f did not contract (relative residual ~1 after 60 fixed-point steps,
    ~0.1 with Anderson); fusing inside the residual, as above, reaches 1e-4 (and is the same f at n=1).
  * Critic (Sec. 3, Fig. 2): the paper's two 3x3 convs, each InstanceNorm + LeakyReLU(0.2), then
    flatten and linear (the reference's third conv: `critic_head: conv_to_1`, above). The reference
    keeps one critic per branch; we follow the paper: one critic on full-resolution images (lower
    resolutions are upsampled to it, see objectives/deq.py). Widths ndf, 2*ndf (reference: 4*32, 8*32).
  * Samples per step (objectives/deq.py `fakes_per_d_step`, `fakes_per_g_step`): the reference's
    critic step sees 1 real vs 5 fakes and its G step 10 fakes (main2.py:167-197); ours B vs B.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, NonNegativeInt, PositiveInt, field_validator, model_validator
from torch import nn
from torchdeq import get_deq

from ganrepro.config import Strict
from ganrepro.models import register_family

SOLVERS = ("anderson", "broyden", "fixed_point_iter", "simple_fixed_point_iter")  # torchdeq.solver


def check_solver(name: str, key: str = "solver") -> str:
    if name not in SOLVERS:
        raise ValueError(f"{key}: unknown solver {name!r}; valid: {', '.join(SOLVERS)}")
    return name


class Arch(Strict):
    z_dim: PositiveInt = 100  # latent size (reference main2.py @ 7366c8b: z_dim = 100)
    ngf: PositiveInt = 64  # hidden-state channels at full resolution; branch i has ngf * 2^i
    ndf: PositiveInt = 128  # critic widths ndf, 2*ndf (reference: 4 * 32, 8 * 32)
    n_branches: PositiveInt = 1  # resolutions H, H/2, ... (Table 2: 1 or 3)
    conditional: bool = True  # label-embedding channel in G's input and D's input (Sec. 3)
    # what x is: `linear` a learned linear map of z per pixel (a noise image, ours: the paper's "generated
    # randomly"); `dcgan_decoder` a trainable DCGAN decoder z -> (C, H, W) (reference Generator.py:21-56)
    injection: Literal["linear", "dcgan_decoder"] = "linear"
    decoder_ngf: PositiveInt = 128  # dcgan_decoder widths decoder_ngf * 2^k (reference: 1024-512-256-128 at 64px)
    # critic head: `flatten_linear` flatten + linear (the paper's Fig. 2); `conv_to_1` a third conv3x3 to
    # one channel, then linear (reference Discriminator.py:11-35)
    critic_head: Literal["flatten_linear", "conv_to_1"] = "flatten_linear"
    # what f iterates on: `hidden` (ours, MDEQ's) ngf-channel GroupNorm states with a tanh(conv) read-out;
    # `image` the reference's: the C-channel image itself, f(z; x) = ImageF(z + x) with BatchNorm and a
    # final tanh, no read-out (MDEQ.py:5-45); 1 branch, unconditional, as main2.py trains it
    state: Literal["hidden", "image"] = "hidden"
    # ---- torchdeq: solver and backward (names as in torchdeq.get_deq)
    core: Literal["sliced", "indexing"] = "sliced"
    f_solver: str = "anderson"  # reference: broyden, 30 steps; anderson is as fast per step, fewer steps
    b_solver: str = "anderson"  # IFT backward solve (reference: broyden, 40 steps)
    f_max_iter: PositiveInt = 30
    b_max_iter: PositiveInt = 40
    f_tol: float = Field(1e-3, gt=0)
    b_tol: float = Field(1e-6, gt=0)
    f_stop_mode: Literal["abs", "rel"] = "rel"  # f_tol bounds ||f(z)-z|| / ||f(z)||
    b_stop_mode: Literal["abs", "rel"] = "rel"
    eval_f_max_iter: NonNegativeInt = 0  # eval-mode forward steps; 0 = f_max_iter
    ift: bool = False  # True: the implicit (IFT) gradient the paper describes; False: phantom gradient
    grad: PositiveInt = 1  # phantom-gradient steps k (ift=False); k=1, tau=1 is the 1-step JFB
    tau: float = Field(1.0, gt=0, le=1)  # phantom-gradient damping

    @field_validator("f_solver", "b_solver")
    @classmethod
    def _known_solver(cls, v: str, info) -> str:
        return check_solver(v, info.field_name)

    @model_validator(mode="after")
    def _image_state(self) -> "Arch":
        if self.state == "image" and (self.n_branches != 1 or self.conditional):
            raise ValueError("state: image is the reference's one-branch, unconditional f "
                             f"(needs n_branches: 1 and conditional: false; got {self.n_branches}, {self.conditional})")
        return self


def deq_kwargs(arch: Arch) -> dict:
    """The torchdeq options of an Arch, for `torchdeq.get_deq(**deq_kwargs(arch))`."""
    keys = ("core", "f_solver", "b_solver", "f_max_iter", "b_max_iter", "f_tol", "b_tol",
            "f_stop_mode", "b_stop_mode", "eval_f_max_iter", "ift", "grad", "tau")
    return {k: getattr(arch, k) for k in keys}


def make_deq(arch: Arch) -> nn.Module:
    check_solver(arch.f_solver, "f_solver"), check_solver(arch.b_solver, "b_solver")
    return get_deq(**deq_kwargs(arch))


def gn(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, c), c)  # MDEQ: GroupNorm, up to 8 groups


def small_init(*modules: nn.Module | None) -> None:
    """N(0, 0.02) for the per-pixel noise / label maps: PyTorch's defaults (U(+-1/sqrt(z_dim)), N(0, 1))
    start them as white noise that Adam (steps ~lr) takes thousands of steps to reshape."""
    for m in modules:
        if m is not None:
            nn.init.normal_(m.weight, 0.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)


class Block(nn.Module):
    """Per-resolution conv / conv-transpose block with the injection (MDEQ's block, residual outside)."""

    def __init__(self, c: int):
        super().__init__()
        self.down = nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False)  # (B, c, H, W) -> (B, 2c, H/2, W/2)
        self.up = nn.ConvTranspose2d(2 * c, c, 4, 2, 1, bias=False)  # -> (B, c, H, W)
        self.n1, self.n2 = gn(2 * c), gn(c)

    def forward(self, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.n1(self.down(z)))  # (B, 2c, H/2, W/2)
        return self.n2(self.up(h) + u)  # (B, c, H, W), + injection


def fuse_layer(c: list[int], j: int, i: int) -> nn.Module:
    """Branch j -> branch i (MDEQ): 1x1 conv + nearest upsampling, or stride-2 3x3 convs down."""
    if j > i:
        return nn.Sequential(nn.Conv2d(c[j], c[i], 1, bias=False), gn(c[i]), nn.Upsample(scale_factor=2 ** (j - i)))
    layers = []
    for k in range(i - j):  # (B, c_j, H, W) -> (B, c_i, H / 2^(i-j), W / 2^(i-j))
        last = k == i - j - 1
        layers += [nn.Conv2d(c[j], c[i] if last else c[j], 3, 2, 1, bias=False), gn(c[i] if last else c[j])]
        if not last:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class F_(nn.Module):
    """f(z; u): the only part torchdeq iterates. z, u: lists of (B, c_i, H_i, W_i), highest first.

    f(z; u)_i = relu(GN_i(z_i + sum_j F_ij(Block_j(z_j, u_j))))    F_ii = identity
    """

    def __init__(self, c: list[int]):
        super().__init__()
        n = len(c)
        self.blocks = nn.ModuleList(Block(ci) for ci in c)
        self.fuse = nn.ModuleList(
            nn.ModuleList(nn.Identity() if i == j else fuse_layer(c, j, i) for j in range(n)) for i in range(n)
        )
        self.norm = nn.ModuleList(gn(ci) for ci in c)

    def forward(self, z: list[torch.Tensor], u: list[torch.Tensor]) -> list[torch.Tensor]:
        h = [blk(zi, ui) for blk, zi, ui in zip(self.blocks, z, u)]  # [(B, c_i, H_i, W_i)]
        n = len(h)
        return [F.relu(self.norm[i](z[i] + sum(self.fuse[i][j](h[j]) for j in range(n)))) for i in range(n)]


class ImageF(nn.Module):
    """f(z; x) = g(z + x) on the image itself, the reference's (lib/MDEQ.py:5-45, GeneratorBlock(C, C, ngf)).

    z, x: (B, C, H, W). g: Conv(C -> 4ngf, k4 s2)-BN-ReLU, Conv(-> 2ngf, k4 s2)-BN-ReLU, Conv3x3(-> C),
    ConvT(-> 2ngf, k4 s2)-BN-ReLU, ConvT(-> 4ngf, k4 s2)-BN-ReLU, ConvT3x3(-> C), tanh; every conv
    with a bias, as PyTorch's default there. At C = 3, ngf = 64: 1,079,686 parameters.
    """

    def __init__(self, channels: int, ngf: int):
        super().__init__()
        c, w = channels, ngf

        def bn_relu(n: int) -> list[nn.Module]:
            return [nn.BatchNorm2d(n), nn.ReLU()]

        self.g = nn.Sequential(
            nn.Conv2d(c, 4 * w, 4, 2, 1), *bn_relu(4 * w),  # (B, 4w, H/2, W/2)
            nn.Conv2d(4 * w, 2 * w, 4, 2, 1), *bn_relu(2 * w),  # (B, 2w, H/4, W/4)
            nn.Conv2d(2 * w, c, 3, 1, 1),  # (B, C, H/4, W/4)
            nn.ConvTranspose2d(c, 2 * w, 4, 2, 1), *bn_relu(2 * w),  # (B, 2w, H/2, W/2)
            nn.ConvTranspose2d(2 * w, 4 * w, 4, 2, 1), *bn_relu(4 * w),  # (B, 4w, H, W)
            nn.ConvTranspose2d(4 * w, c, 3, 1, 1), nn.Tanh(),  # (B, C, H, W) in [-1, 1]
        )

    def forward(self, z: list[torch.Tensor], x: list[torch.Tensor]) -> list[torch.Tensor]:
        return [self.g(z[0] + x[0])]


class DCGANDecoder(nn.Module):
    """z -> an image-shaped input (B, C, H, W): DCGAN's ConvT-BN-ReLU stack (reference Generator.py:21-47).

    ConvT(z -> w 2^(m-1), k4, s1) to 4x4, then m stride-2 ConvTs halving the width to (C, H, W),
    m = log2(H / 4), every layer bias-free + BatchNorm + ReLU, the last one too (the reference's
    output is non-negative). w = decoder_ngf; at 64px and w = 128: 1024-512-256-128-C (12.66M at C = 3).
    """

    def __init__(self, z_dim: int, w: int, channels: int, img_size: int):
        super().__init__()
        m = int(math.log2(img_size // 4))
        if 4 * 2**m != img_size:
            raise ValueError(f"dcgan_decoder needs img_size = 4 * 2^m, got {img_size}")
        widths = [w * 2 ** (m - 1 - k) for k in range(m)] + [channels]  # 4x4, 8x8, ..., H x H
        layers = [nn.ConvTranspose2d(z_dim, widths[0], 4, 1, 0, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
        for a, b in zip(widths[:-1], widths[1:]):  # (B, a, h, h) -> (B, b, 2h, 2h)
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])  # (B, z_dim, 1, 1) -> (B, C, H, W)


class G(nn.Module):
    def __init__(self, arch: Arch, channels: int = 3, img_size: int = 64, n_classes: int = 1):
        super().__init__()
        n = arch.n_branches
        if img_size % 2**n or img_size // 2 ** (n - 1) < 4:
            raise ValueError(f"img_size {img_size} is too small or odd for {n} branches (lowest needs >= 4px)")
        self.z_dim, self.img_size, self.n_branches = arch.z_dim, img_size, n
        self.channels = channels
        self.injection = arch.injection
        if arch.injection == "linear":
            self.noise = nn.Linear(arch.z_dim, channels * img_size * img_size)  # z -> noise image (B, C, H, W)
        else:
            self.noise = DCGANDecoder(arch.z_dim, arch.decoder_ngf, channels, img_size)  # z -> (B, C, H, W)
        self.embed = nn.Embedding(n_classes, img_size * img_size) if arch.conditional and n_classes > 1 else None
        x_ch = channels + (self.embed is not None)
        self.state = arch.state
        if arch.state == "image":  # the reference's: f iterates on x's own C channels; no u, no read-out
            self.inject, self.f, self.to_img = None, ImageF(channels, arch.ngf), None
        else:
            self.c = [arch.ngf * 2**i for i in range(n)]
            self.inject = nn.ModuleList(nn.Sequential(nn.Conv2d(x_ch, ci, 3, 1, 1), gn(ci)) for ci in self.c)  # u_i
            self.f = F_(self.c)
            self.to_img = nn.ModuleList(nn.Sequential(nn.Conv2d(ci, channels, 3, 1, 1), nn.Tanh()) for ci in self.c)
        self.deq = make_deq(arch)
        small_init(self.noise if arch.injection == "linear" else None, self.embed)
        self.info: dict[str, torch.Tensor] = {}  # torchdeq forward stats of the last solve
        self.b_info: dict[str, torch.Tensor] = {}  # torchdeq backward stats (IFT only)

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        return torch.randn(n, self.z_dim, generator=generator).to(device)  # z ~ N(0, I)

    def inputs(self, z: torch.Tensor, y: torch.Tensor | None) -> list[torch.Tensor]:
        """x_i: the noise image (+ label channel), average-pooled to each branch's resolution."""
        x = self.noise(z).view(-1, self.channels, self.img_size, self.img_size)  # (B, C, H, W), linear or decoder
        if self.embed is not None:
            if y is None:
                raise ValueError("this conditional G needs labels y")
            x = torch.cat([x, self.embed(y).view(-1, 1, self.img_size, self.img_size)], 1)  # (B, C+1, H, W)
        return [x if i == 0 else F.avg_pool2d(x, 2**i) for i in range(self.n_branches)]

    def solve(self, z: torch.Tensor, y: torch.Tensor | None = None) -> list[torch.Tensor]:
        """z* = f(z*; x) by torchdeq: list of (B, c_i, H_i, W_i), highest resolution first."""
        x = self.inputs(z, y)
        u = x if self.inject is None else [inj(xi) for inj, xi in zip(self.inject, x)]  # (B, c_i, H_i, W_i)
        z0 = [torch.zeros_like(ui) for ui in u]
        z_out, info = self.deq(lambda *zs: self.f(list(zs), u), z0, backward_writer=self._record_backward)
        self.info = {k: v.detach() for k, v in info.items()}
        return list(z_out[-1])

    def _record_backward(self, info) -> None:
        self.b_info = {k: v.detach() for k, v in info.items()}

    def solver_stats(self) -> dict[str, float]:
        """The last solve's forward steps and residual, and the last IFT backward's, as floats."""
        stats = {}
        if self.info:
            stats |= {"deq_f_steps": self.info["nstep"].float().mean().item(),
                      "deq_f_rel_residual": self.info["rel_lowest"].float().mean().item(),
                      "deq_f_abs_residual": self.info["abs_lowest"].float().mean().item()}
        if self.b_info:
            stats |= {"deq_b_steps": self.b_info["nstep"].float().mean().item(),
                      "deq_b_rel_residual": self.b_info["rel_lowest"].float().mean().item()}
        return stats

    def forward_all(self, z: torch.Tensor, y: torch.Tensor | None = None) -> list[torch.Tensor]:
        z_star = self.solve(z, y)
        if self.to_img is None:  # state image: the fixed point is the image
            return z_star
        return [img(zi) for img, zi in zip(self.to_img, z_star)]  # [(B, C, H/2^i, W/2^i)]

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        z_star = self.solve(z, y)[0]  # the highest resolution only: no read-out of the lower branches
        return z_star if self.to_img is None else self.to_img[0](z_star)  # (B, C, H, W)


class D(nn.Module):
    """Critic (Fig. 2): [conv3x3 -> InstanceNorm -> LeakyReLU(0.2)] x 2 [-> conv3x3 to 1] -> flatten -> linear."""

    def __init__(self, ndf: int = 128, channels: int = 3, img_size: int = 64, n_classes: int = 1,
                 conditional: bool = True, head: str = "flatten_linear"):
        super().__init__()
        self.img_size = img_size
        self.embed = nn.Embedding(n_classes, img_size * img_size) if conditional and n_classes > 1 else None
        c_in = channels + (self.embed is not None)
        self.net = nn.Sequential(
            nn.Conv2d(c_in, ndf, 3, 1, 0), nn.InstanceNorm2d(ndf), nn.LeakyReLU(0.2),  # (B, ndf, H-2, W-2)
            nn.Conv2d(ndf, 2 * ndf, 3, 1, 0), nn.InstanceNorm2d(2 * ndf), nn.LeakyReLU(0.2),  # (B, 2ndf, H-4, W-4)
        )
        if head == "conv_to_1":  # reference Discriminator.py: conv3x3 -> (B, 1, H-6, W-6), then linear
            self.net.append(nn.Conv2d(2 * ndf, 1, 3, 1, 0))
            features = (img_size - 6) ** 2
        else:
            features = 2 * ndf * (img_size - 4) ** 2
        self.net.append(nn.Flatten())
        self.fc = nn.Linear(features, 1)
        small_init(self.embed)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            if y is None:
                raise ValueError("this conditional D needs labels y")
            x = torch.cat([x, self.embed(y).view(-1, 1, self.img_size, self.img_size)], 1)  # (B, C+1, H, W)
        return self.fc(self.net(x)).flatten()  # (B,) critic values


def build(arch: Arch, img_size: int, channels: int, n_classes: int) -> tuple[G, D]:
    return (G(arch, channels, img_size, n_classes),
            D(arch.ndf, channels, img_size, n_classes, arch.conditional, arch.critic_head))


def describe(arch: Arch) -> dict:
    """The forward solve and the backward, which a DEQ's memory and time depend on (profiling's protocol)."""
    jfb = arch.grad == 1 and arch.tau == 1.0
    backward = "IFT" if arch.ift else "1-step JFB" if jfb else f"phantom k={arch.grad} tau={arch.tau:g}"
    return {"deq_solver": f"{arch.f_solver} <={arch.f_max_iter} steps f_tol {arch.f_tol:g}", "deq_backward": backward,
            **({"deq_state": "image (the reference's f)"} if arch.state == "image" else {})}


register_family("deq", Arch, build, describe)
