"""DEQ-GAN's objective: a Wasserstein critic on all of the DEQ generator's resolutions.

References:
  * DEQ-GAN (../shared/papers/deq-gan.txt), Sec. 3: "we combine the losses from all n resolution
    images when training the discriminator"; the critic takes the highest-resolution (64x64) input;
    "a Wasserstein loss [2] with the Adam optimizer"; Table 2: n_critic = 5, batch 1, 50 epochs.
  * Reference code (github.com/Monjur-Mahathir/DEQ-GAN-755-PROJECT). The training script that trains G
    is main2.py on branch qscgy/pokemon @ 7366c8b: WGAN-GP, lambda = 10, Adam(2e-4, betas (0.9, 0.99))
    (:28, :70-71), 5 critic steps per G step, each on ONE real vs 5 fakes, the G step on 10 fakes
    (:167-197; `fakes_per_d_step: 5`, `fakes_per_g_step: 10` at batch_size 1), one GP alpha per real
    broadcast over its fakes (:104-107), branch 0 only in both losses (:187, :200). The older main.py
    (@ 6da5db7: Adam(1e-4, betas (0, 0.9)), 3 critic iterations) exits at its line 3 and never trains
    (docs/reference-diffs.md 1.0); the paper presets' betas (0, 0.9) come from it.

Multi-resolution loss (the default, `multires: mean`). Branch i's image G_i(z) is (B, C, H/2^i, W/2^i);
the real batch is average-pooled to the same size. Both are upsampled back to H x W (bilinear), so the
one critic of the paper sees every resolution at its input size, and a real image at branch i carries
exactly the detail a fake one can (a blurred real vs. a blurred fake, never sharp vs. blurred):
    up_i(x) = Upsample_{2^i}(AvgPool_{2^i}(x)),  real_i = up_i(x),  fake_i = Upsample_{2^i}(G_i(z))
    L_D = 1/n sum_i ( E[D(fake_i)] - E[D(real_i)] ) + lambda * 1/n sum_i GP_i
    L_G = -1/n sum_i E[D(fake_i)]
The reference code computes per-branch critic scores but sums the loss over branch 0 only
(`for i in range(0, 1)`), i.e. only the highest resolution trains; that contradicts the paper and is
not the default here. `multires: highest` reproduces it, for comparison.

Lipschitz constraint: the paper says only "Wasserstein loss [2]" (Arjovsky et al., weight clipping);
its reference code trains with a gradient penalty (WGAN-GP, lambda = 10). An unconstrained critic
makes the Wasserstein loss unbounded, so we follow the code: `gp_weight: 10`. `clip: c` gives the
original WGAN's weight clipping instead (set gp_weight: 0).

Logs per step: the losses and critic means, and torchdeq's solver statistics of the generator step's
solve (G.solver_stats): forward steps, final relative / absolute residual, and, with the implicit
backward (ift), the backward solver's steps and residual.
"""
from __future__ import annotations

from typing import Literal, Optional

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveFloat, PositiveInt

from ganrepro.config import Strict
from ganrepro.losses import LOSSES
from ganrepro.objectives import OBJECTIVES, Objective

WGAN = LOSSES.get("wasserstein")


def upsample_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, size, size), bilinear; identity at full size."""
    return x if x.shape[-1] == size else F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def real_pyramid(real: torch.Tensor, n: int) -> list[torch.Tensor]:
    """[x, AvgPool_2(x), AvgPool_4(x), ...]: the real batch at each branch's resolution."""
    return [real if i == 0 else F.avg_pool2d(real, 2**i) for i in range(n)]


def at_full_size(images: list[torch.Tensor], size: int) -> torch.Tensor:
    """n lists of (B, C, H_i, W_i) -> (n*B, C, size, size), resolution-major."""
    return torch.cat([upsample_to(x, size) for x in images])


def gradient_penalty(D, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # GP = E_xhat[(||grad_xhat D(xhat)||_2 - 1)^2],  xhat = eps x + (1 - eps) G(z),  eps ~ U[0, 1]
    # (Gulrajani et al. 2017, Eq. 3). With k fakes per real (fake: (k*N, ...), y the fakes' labels), real
    # j pairs with its k fakes under one eps (reference main2.py:104-107: one alpha per real, broadcast).
    k = fake.shape[0] // real.shape[0]
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    real, eps = real.repeat_interleave(k, 0), eps.repeat_interleave(k, 0)
    xhat = (eps * real + (1 - eps) * fake).requires_grad_(True)  # (k*N, C, H, W)
    (grad,) = torch.autograd.grad(D(xhat, y).sum(), xhat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


@OBJECTIVES.register("deq_wgan")
class DEQWGAN(Objective):
    """WGAN(-GP) with the critic applied to every resolution of a multiscale DEQ generator."""

    class Args(Strict):
        n_critic: PositiveInt = 5  # Table 2
        gp_weight: float = Field(10.0, ge=0)  # reference main.py: lambda_ = 10
        clip: Optional[PositiveFloat] = None  # WGAN weight clipping (Arjovsky et al.), off by default
        multires: Literal["mean", "highest"] = "mean"  # combine all n resolutions / branch 0 only
        # fakes per step; null = the batch size B (ours: B reals vs B fakes). Reference main2.py:167-197: one
        # real per critic step (batch_size 1) vs 5 fakes, 10 fakes per G step. fakes_per_d_step must be a
        # multiple of B; fakes j*k .. j*k+k-1 carry real j's label (k = fakes_per_d_step / B).
        fakes_per_d_step: Optional[PositiveInt] = None
        fakes_per_g_step: Optional[PositiveInt] = None

    def images(self, real: torch.Tensor, y: torch.Tensor, fakes: list[torch.Tensor], y_fake: torch.Tensor | None = None):
        """Real and fake critic inputs at full size and their labels: (n*R, C, H, W), (n*F, C, H, W), (n*R,), (n*F,).

        y_fake: the fakes' labels (F,); None = y (as many fakes as reals)."""
        if self.args.multires == "highest":
            fakes = fakes[:1]
        size, n = real.shape[-1], len(fakes)
        y_fake = y if y_fake is None else y_fake
        return at_full_size(real_pyramid(real, n), size), at_full_size(fakes, size), y.repeat(n), y_fake.repeat(n)

    def d_step(self, real, y):
        n_fake = self.args.fakes_per_d_step or real.shape[0]
        if n_fake % real.shape[0]:
            raise ValueError(f"fakes_per_d_step {n_fake} is not a multiple of the {real.shape[0]} reals per step")
        y_fake = y.repeat_interleave(n_fake // real.shape[0])  # (F,)
        with torch.no_grad():
            fakes = self.G.forward_all(self.G.sample_z(n_fake), y_fake)  # [(F, C, H_i, W_i)]
        x_real, x_fake, yy, yy_fake = self.images(real, y, fakes, y_fake)
        d_real, d_fake = self.D(x_real, yy), self.D(x_fake, yy_fake)  # (n*R,), (n*F,)
        loss = WGAN.d(d_real, d_fake)  # mean over resolutions of E[D(fake_i)] - E[D(real_i)]
        logs = {"wasserstein": (d_real.mean() - d_fake.mean()).item()}
        if self.args.gp_weight > 0:
            gp = gradient_penalty(self.D, x_real, x_fake, yy_fake)
            loss = loss + self.args.gp_weight * gp
            logs["gp"] = gp.item()
        self.step(self.opt_d, loss)
        if self.args.clip is not None:
            with torch.no_grad():
                for p in self.D.parameters():
                    p.clamp_(-self.args.clip, self.args.clip)
        return {"loss_d": loss.item(), "d_real": d_real.mean().item(), "d_fake": d_fake.mean().item(), **logs}

    def g_step(self, real, y):
        n_fake = self.args.fakes_per_g_step or real.shape[0]
        y_fake = y[torch.arange(n_fake, device=y.device) % y.shape[0]]  # (F,): the batch's labels, cycled
        fakes = self.G.forward_all(self.G.sample_z(n_fake), y_fake)
        _, x_fake, _, yy_fake = self.images(real, y, fakes, y_fake)
        loss = WGAN.g(self.D(x_fake, yy_fake))  # -mean over resolutions of E[D(fake_i)]
        self.step(self.opt_g, loss)  # the backward runs torchdeq's gradient (IFT / phantom)
        return {"loss_g": loss.item(), **self.G.solver_stats()}
