"""BEGAN's objective: auto-encoder losses balanced by a proportional controller k_t.

References:
  * Berthelot, Schumm & Metz, "BEGAN" (../shared/papers/began.txt, began-equations.md), Sec. 3.2-3.4
    and Sec. 4 (Adam, lr 1e-4 halved "when the measure of convergence stalls", batch 16).
  * Reference code: github.com/carpedm20/BEGAN-tensorflow (trainer.py: d_loss, g_loss, k_update,
    measure).

    L(v)      = mean_pixels |v - D(v)|                      (eta = 1; D(v) is D.reconstruct(v))
    L_D       = L(x) - k_t L(G(z_D))                        (updates D)
    L_G       = L(G(z_G))                                   (updates G)
    k_{t+1}   = clip(k_t + lambda_k (gamma L(x) - L(G(z_G))), 0, 1),  k_0 = 0, lambda_k = 0.001
    M_global  = L(x) + |gamma L(x) - L(G(z_G))|

Per generator step the loop calls `d_step` (L(x), L(G(z_D)), D's update) then `g_step` (L(G(z_G)),
G's update, then k_t and M_global). z_D and z_G are separate draws, as in the paper (the reference
reuses one z). Our D and G updates are sequential, so L(G(z_G)) sees the D just updated; in the
reference both gradients come from one forward pass. k_t, M_global and the lr are logged every step.

Learning-rate schedule (`lr_schedule`). The paper halves the lr "when the measure of convergence stalls", without
a rule; the reference's own measure-based rule is commented out in favour of a fixed halving every
100k steps. Our rule (`Plateau`): every `lr_window` generator steps take the mean of M_global over
that window; if it is not below (1 - lr_rel_tol) x the best earlier window mean, M_global has
stalled and both lrs are multiplied by `lr_factor` (0.5, the paper's "factor of 2"), not below
`lr_min` (ours; the reference floors at 2e-5). The 1% tolerance follows the reference's commented
rule (`cur_measure > prev_measure * 0.99`). `lr_schedule: step` is the reference's rule: x lr_factor
every `lr_step` (100k) generator steps (BEGAN-tf config.py:36, trainer.py:163-164), floor `lr_min`
(2e-5, config.py:39, trainer.py:68-69); preset `began_ref`.

`k_0` is k_t's start: 0 in the paper (Sec. 3.4) and the reference (trainer.py, `k_t` initialised to 0), our
default. A k_0 > 0 gives D an adversarial term from the first step; at the quick scale k_0 0.1 kept k_t above 0
for 1,200 steps, yet the digit FID stayed above 1,000 (docs/quick-tuning.md). No preset sets it.

Adam's betas: the paper used Adam "with the default hyper-parameters", (0.9, 0.999). The reference
defines beta1 = 0.5 in its config but never passes it to AdamOptimizer, so it too ran (0.9, 0.999).
Betas come from the preset (the loop builds the optimisers).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Literal

import torch
from pydantic import Field, PositiveInt

from ganrepro.config import Strict
from ganrepro.objectives import OBJECTIVES, Objective


# ---------------------------------------------------------------- pure functions
def recon_loss(v: torch.Tensor, rec: torch.Tensor) -> torch.Tensor:
    """L(v) = |v - D(v)|, the L1 error averaged over pixels: (B, C, H, W) x 2 -> (B,)."""
    return (v - rec).abs().flatten(1).mean(1)


def k_update(k: float, L_x: float, L_G: float, gamma: float, lambda_k: float) -> float:
    """k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z_G))), 0, 1)."""
    return min(max(k + lambda_k * (gamma * L_x - L_G), 0.0), 1.0)


def m_global(L_x: float, L_G: float, gamma: float) -> float:
    """M_global = L(x) + |gamma L(x) - L(G(z_G))|."""
    return L_x + abs(gamma * L_x - L_G)


class Plateau:
    """Says when M_global stalls: window means, each compared with the best earlier one."""

    def __init__(self, window: int, rel_tol: float):
        self.window, self.rel_tol = window, rel_tol
        self.best, self.total, self.count = math.inf, 0.0, 0

    def step(self, m: float) -> bool:
        """Add one M_global; True when a window just ended without improving on the best."""
        self.total += m
        self.count += 1
        if self.count < self.window:
            return False
        mean = self.total / self.count
        stalled = mean > self.best * (1 - self.rel_tol)
        self.best, self.total, self.count = min(self.best, mean), 0.0, 0
        return stalled

    def state_dict(self) -> dict[str, float]:
        return {"best": self.best, "total": self.total, "count": self.count}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.best, self.total, self.count = state["best"], state["total"], int(state["count"])


@contextmanager
def frozen(module: torch.nn.Module):
    """No weight gradients for `module` (G's step needs only dL/dx through D)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(module.parameters(), flags):
            p.requires_grad_(f)


# ---------------------------------------------------------------- the objective
@OBJECTIVES.register("began")
class BEGANObjective(Objective):
    """BEGAN (Berthelot et al., 2017): L_D = L(x) - k_t L(G(z_D)), L_G = L(G(z_G)), k_t by P-control."""

    class Args(Strict):
        gamma: float = Field(0.5, gt=0, le=1, description="diversity ratio E[L(G(z))] / E[L(x)]")
        lambda_k: float = Field(0.001, ge=0, description="proportional gain of k_t")
        k_0: float = Field(0.0, ge=0, le=1, description="k_t's initial value (the paper's and the reference's: 0)")
        lr_schedule: Literal["plateau", "step"] = Field(
            "plateau", description="plateau: x lr_factor when M_global stalls (the paper); "
                                   "step: x lr_factor every lr_step steps (BEGAN-tf trainer.py:163-164)")
        lr_step: PositiveInt = Field(100000, description="generator steps between decays (lr_schedule step)")
        lr_window: PositiveInt = Field(10000, description="generator steps per M_global window")
        lr_rel_tol: float = Field(0.01, ge=0, lt=1, description="relative gain a window must show")
        lr_factor: float = Field(0.5, gt=0, lt=1, description="lr multiplier on a stall")
        lr_min: float = Field(1e-6, ge=0, description="the lr is never decayed below this")

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.k = self.args.k_0  # the paper's k_0 = 0 unless a preset says otherwise
        self.L_x = 0.0  # L(x) of the last d_step, for k_t and M_global
        self.plateau = Plateau(self.args.lr_window, self.args.lr_rel_tol)
        self.t = 0  # generator steps seen by `schedule`

    def d_step(self, real, y):
        with torch.no_grad():
            fake = self.G(self.G.sample_z(real.shape[0]), y)  # G(z_D), (B, C, H, W)
        both = torch.cat([real, fake])  # one pass through D (no batch statistics in D)
        L_x, L_fake = recon_loss(both, self.D.reconstruct(both)).chunk(2)  # (B,), (B,)
        L_x, L_fake = L_x.mean(), L_fake.mean()
        loss = L_x - self.k * L_fake  # L_D
        self.step(self.opt_d, loss)
        self.L_x = L_x.item()
        return {"loss_d": loss.item(), "L_real": self.L_x, "L_fake": L_fake.item()}

    def g_step(self, real, y):
        fake = self.G(self.G.sample_z(real.shape[0]), y)  # G(z_G)
        with frozen(self.D):
            loss = recon_loss(fake, self.D.reconstruct(fake)).mean()  # L_G
        self.step(self.opt_g, loss)
        L_G, a = loss.item(), self.args
        self.k = k_update(self.k, self.L_x, L_G, a.gamma, a.lambda_k)
        m = m_global(self.L_x, L_G, a.gamma)
        self.schedule(m)
        return {"loss_g": L_G, "k_t": self.k, "M_global": m, "lr": self.opt_g.param_groups[0]["lr"]}

    def schedule(self, m: float) -> None:
        """Halve both lrs (to `lr_min` at least) when M_global's window mean stalls, or every
        `lr_step` steps (lr_schedule step)."""
        self.t += 1
        if self.args.lr_schedule == "step":
            if self.t % self.args.lr_step == 0:
                self.decay_lr()
        elif self.plateau.step(m):
            self.decay_lr()

    def decay_lr(self) -> None:
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = min(group["lr"], max(group["lr"] * self.args.lr_factor, self.args.lr_min))

    def state_dict(self) -> dict[str, Any]:
        return {"k": self.k, "L_x": self.L_x, "t": self.t, "plateau": self.plateau.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.k, self.L_x, self.t = float(state["k"]), float(state["L_x"]), int(state.get("t", 0))
        self.plateau.load_state_dict(state["plateau"])
