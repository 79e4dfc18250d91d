"""FastGAN's objective: hinge loss + decoder reconstruction on DiffAugment-ed images, G EMA.

References: Liu et al., ICLR 2021 (odegeasslbc/FastGAN-pytorch train.py); Dragomir et al. 2023
(../shared/papers/fastgan-decoders.txt, Eqs. 2-5; seed pawelpiwowarski/Fast_GAN_Vrije
training_loop_{1,2,3}.py); Zhao et al., "Differentiable Augmentation for Data-Efficient GAN
Training", NeurIPS 2020 (DiffAugment, policy "color,translation").

Per D step (real batch x, flipped left-right with p = 1/2 per image under `hflip`,
z ~ N(0, I), q ~ U{0..3}, T = DiffAugment):
    L_D = E[max(0, 1 - D(T(x)))] + E[max(0, 1 + D(T(G(z))))]          # Eq. 2, over every patch logit
        + sum_i sum_b d(S_i(f_i(T(x))), T_i(T(x)))                      # Eq. 3: decoders on real only
per G step:
    L_G = -E[D(T(G(z)))],   then   G_ema <- decay * G_ema + (1 - decay) * G     # FastGAN's avg_param_G
d is LPIPS (Zhang et al. 2018) with a VGG backbone in both references, summed over the batch as
both do. `recon_loss` chooses d:
    lpips        the `lpips` package, backbone `lpips_net` (vgg | alex | squeeze); its ImageNet
                 weights must be in the torch cache (offline machines: a clear error names the file)
    lpips_digit  offline stand-in: the LPIPS formula on the project's digit classifier
                 (metrics/lpips.py), for the quick profile's MNIST digits
    l1           mean |a - b| per image, the paper's Eq. 3 read literally; needs no weights

Switches (the references' values one key away):
  * `ema` (default true): sample from G_ema (FastGAN's avg_param_G, decay 0.999, train.py:159-169).
    The seed keeps no average and samples the live G (Vrije training_loop_3.py:34-35, :265): false.
    The paper does not mention one.
  * `hflip` (default true): random left-right flips of the real images, as both references
    (FastGAN train.py:79 RandomHorizontalFlip; Vrije training_loop_3.py:81 random_flip_left_right).
    The paper is silent. Done here, on the real batch before DiffAugment, so the reconstruction
    target is the flipped image (the seed flips in its data pipeline, before everything else too).
  * `recon_target`: "augmented" (default, FastGAN train.py:35-44 on the output of :141) cuts the
    decoder targets from the DiffAugment-ed real image D saw; "clean" from the real image before
    DiffAugment, as the seed (training_loop_3.py:129-142, :204), so a translated input has a
    shifted target.
  * `part_per`: "step" (default, FastGAN train.py:38) draws the part decoder's quadrant at every D
    step; "run" draws it once for the whole run, which is how the seed's `random.randint` inside a
    `@tf.function` behaves (traced once; training_loop_3.py:189-198; a reading of TF's tracing rules,
    not run).

Where we differ from the references, and why:
  * The hinge margin is the plain 1 of Eq. 2 and the seed; FastGAN jitters it to U(0.8, 1.0).
  * The EMA also copies G's buffers (BN statistics), so that `eval_G` is a complete model; FastGAN
    averages parameters only and borrows the live G's buffers.
  * LPIPS inputs smaller than 64 px are bilinearly upsampled to 64 (AlexNet's strides need >= 32).
"""
from __future__ import annotations

import copy
import warnings
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from ganrepro.config import Strict
from ganrepro.losses import LOSSES
from ganrepro.objectives import OBJECTIVES, Objective

LPIPS_BACKBONES = {  # lpips_net -> torchvision's ImageNet weights that lpips.LPIPS loads
    "vgg": "vgg16-397923af.pth",
    "alex": "alexnet-owt-7be5be79.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}


# ---------------------------------------------------------------- DiffAugment (Zhao et al. 2020)
def _uniform(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(x.shape[0], 1, 1, 1, generator=generator).to(x)  # (B, 1, 1, 1) ~ U(0, 1)


def rand_brightness(x, generator=None):
    return x + (_uniform(x, generator) - 0.5)  # x + b, b ~ U(-0.5, 0.5)


def rand_saturation(x, generator=None):
    m = x.mean(dim=1, keepdim=True)  # per-pixel mean over channels
    return (x - m) * (_uniform(x, generator) * 2) + m  # s ~ U(0, 2)


def rand_contrast(x, generator=None):
    m = x.mean(dim=(1, 2, 3), keepdim=True)  # per-image mean
    return (x - m) * (_uniform(x, generator) + 0.5) + m  # c ~ U(0.5, 1.5)


def shift(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """out[b, :, i, j] = x[b, :, i - dy[b], j - dx[b]], zero outside: content moves by (+dy, +dx)."""
    B, C, H, W = x.shape
    iy = torch.arange(H, device=x.device).view(1, H, 1) - dy.to(x.device).view(B, 1, 1)  # (B, H, 1)
    ix = torch.arange(W, device=x.device).view(1, 1, W) - dx.to(x.device).view(B, 1, 1)  # (B, 1, W)
    inside = (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)  # (B, H, W)
    idx = (iy.clamp(0, H - 1) * W + ix.clamp(0, W - 1)).reshape(B, 1, H * W).expand(B, C, H * W)
    return x.flatten(2).gather(2, idx).view(B, C, H, W) * inside[:, None].to(x.dtype)


def rand_translation(x, generator=None, ratio: float = 0.125):
    """Shift each image by integers in [-ratio * size, ratio * size] (rounded), zero-filling."""
    B, _, H, W = x.shape
    sy, sx = int(H * ratio + 0.5), int(W * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (B,), generator=generator)
    dx = torch.randint(-sx, sx + 1, (B,), generator=generator)
    return shift(x, dy, dx)


AUGMENTS = {"color": [rand_brightness, rand_saturation, rand_contrast], "translation": [rand_translation]}


def diff_augment(x: torch.Tensor, policy: str = "color,translation",
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Differentiable augmentation T(x) (B, C, H, W) -> (B, C, H, W); the same T for real and fake."""
    for name in filter(None, policy.split(",")):
        for fn in AUGMENTS[name]:
            x = fn(x, generator=generator)
    return x


# ---------------------------------------------------------------- EMA
@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """theta_ema <- decay * theta_ema + (1 - decay) * theta; buffers (BN statistics) copied."""
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p, 1.0 - decay)  # pe + (1 - decay) * (p - pe)
    for be, b in zip(ema.buffers(), model.buffers()):
        be.copy_(b)


# ---------------------------------------------------------------- reconstruction distances
def l1_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().flatten(1).mean(1)  # (B,)


def lpips_distance(net: str, device: torch.device) -> Callable:
    import lpips

    from ganrepro.corrupt import reading, redownload
    from ganrepro.metrics.features import MissingWeightsError, hub_file

    file = hub_file(LPIPS_BACKBONES[net])
    url = f"https://download.pytorch.org/models/{file.name}"
    if not file.exists():
        what = f"FastGAN recon_loss lpips (lpips_net {net}); offline, use recon_loss l1 or lpips_digit"
        raise MissingWeightsError(file, url, what)
    with warnings.catch_warnings(), reading(file, f"FastGAN's LPIPS {net} backbone weights file", redownload(url)):
        warnings.simplefilter("ignore", UserWarning)  # lpips calls torchvision's deprecated `pretrained=True`
        model = lpips.LPIPS(net=net, verbose=False)  # torchvision reads the file itself
    model = model.to(device).eval().requires_grad_(False)

    def dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # [-1, 1] (B, C, H, W) -> (B,)
        if a.shape[1] == 1:
            a, b = a.repeat(1, 3, 1, 1), b.repeat(1, 3, 1, 1)
        if a.shape[-1] < 64:
            a, b = (F.interpolate(t, size=(64, 64), mode="bilinear", align_corners=False) for t in (a, b))
        return model(a, b).flatten()

    return dist


def lpips_digit_distance(device: torch.device) -> Callable:
    """metrics/lpips.py's lpips_digit formula, on a frozen copy of the digit classifier."""
    import lpips

    from ganrepro.metrics.features import digit_classifier

    net = digit_classifier(device=device).net.requires_grad_(False)

    def dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # sum_l mean_hw || n(f_l(a)) - n(f_l(b)) ||^2, n() unit-normalising over channels
        layers = [lpips.spatial_average((lpips.normalize_tensor(fa) - lpips.normalize_tensor(fb)) ** 2).sum(1)
                  for fa, fb in zip(net.conv_features(a), net.conv_features(b))]
        return torch.stack(layers).sum(0).flatten()  # (B,)

    return dist


def recon_distance(kind: str, lpips_net: str, device: torch.device) -> Callable:
    if kind == "l1":
        return l1_distance
    if kind == "lpips_digit":
        return lpips_digit_distance(device)
    return lpips_distance(lpips_net, device)


# ---------------------------------------------------------------- the objective
@OBJECTIVES.register("fastgan")
class FastGANObjective(Objective):
    class Args(Strict):
        policy: str = "color,translation"  # DiffAugment policy, as FastGAN
        recon_loss: Literal["lpips", "l1", "lpips_digit"] = "lpips"
        lpips_net: Literal["vgg", "alex", "squeeze"] = "vgg"  # both references: VGG
        ema_decay: float = Field(0.999, ge=0, lt=1)
        ema: bool = True  # sample from the EMA of G (FastGAN); false: the live G (the seed)
        hflip: bool = True  # random left-right flips of the reals (both references)
        recon_target: Literal["augmented", "clean"] = "augmented"  # FastGAN | the seed
        part_per: Literal["step", "run"] = "step"  # the quadrant's draw: FastGAN | the seed (traced once)

        @field_validator("policy")
        @classmethod
        def _known(cls, v: str) -> str:
            bad = [p for p in filter(None, v.split(",")) if p not in AUGMENTS]
            if bad:
                raise ValueError(f"unknown DiffAugment op(s) {bad}; valid: {', '.join(AUGMENTS)}")
            return v

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.hinge = LOSSES.get("hinge")
        device = next(self.D.parameters()).device
        self.dist = recon_distance(self.args.recon_loss, self.args.lpips_net, device)
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False) if self.args.ema else None
        self.run_part = int(torch.randint(4, ()).item()) if self.args.part_per == "run" else None

    @property
    def eval_G(self) -> nn.Module:
        return self.G_ema if self.args.ema else self.G

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.args.policy)

    def flip(self, x: torch.Tensor) -> torch.Tensor:
        """Each image mirrored left-right with probability 1/2 (B, C, H, W), when `hflip`."""
        if not self.args.hflip:
            return x
        mirror = torch.rand(x.shape[0], device=x.device) < 0.5  # (B,)
        return torch.where(mirror[:, None, None, None], x.flip(-1), x)

    def d_step(self, real, y):
        with torch.no_grad():
            fake = self.G(self.G.sample_z(real.shape[0]))  # (B, C, H, W)
        clean = self.flip(real)
        real = self.augment(clean)
        part = self.run_part if self.run_part is not None else int(torch.randint(4, ()).item())  # quadrant
        d_real, recons = self.D.forward_with_recons(real, part)  # (B, P), {k: (B, C, r, r)}
        d_fake = self.D.patch_logits(self.D.features(self.augment(fake)))  # (B, P)
        adv = self.hinge.d(d_real.flatten(), d_fake.flatten())
        targets = self.D.recon_targets(clean if self.args.recon_target == "clean" else real, part)
        rec = {k: self.dist(recons[k], targets[k]).sum() for k in recons}  # summed over the batch
        loss = adv + sum(rec.values())
        self.step(self.opt_d, loss)
        return {"loss_d": adv.item(), "loss_rec": sum(v.item() for v in rec.values()),
                **{f"loss_rec_{k}": v.item() for k, v in rec.items()},
                "d_real": d_real.mean().item(), "d_fake": d_fake.mean().item()}

    def g_step(self, real, y):
        fake = self.G(self.G.sample_z(real.shape[0]))
        loss = self.hinge.g(self.D.patch_logits(self.D.features(self.augment(fake))).flatten())
        self.step(self.opt_g, loss)
        if self.args.ema:
            ema_update(self.G_ema, self.G, self.args.ema_decay)
        return {"loss_g": loss.item()}

    @torch.no_grad()
    def figures(self, real, y):
        """Per decoder, a grid whose first row is the target region T_i(x), the second S_i(f_i(x))."""
        real = real[:8]
        self.D.eval()
        _, recons = self.D.forward_with_recons(real, part=0)  # part decoder: the top-left quadrant
        targets = self.D.recon_targets(real, part=0)
        self.D.train()
        return {f"reconstructions_{k}": (torch.cat([targets[k], recons[k]]), len(real)) for k in recons}

    def state_dict(self):
        return {"G_ema": self.G_ema.state_dict()} if self.args.ema else {"run_part": self.run_part}

    def load_state_dict(self, state):
        if self.args.ema:
            self.G_ema.load_state_dict(state["G_ema"])
        elif "run_part" in state:
            self.run_part = state["run_part"]
