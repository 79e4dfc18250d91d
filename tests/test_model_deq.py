"""DEQ-GAN family (models/deq.py) and its objective (objectives/deq.py), tiny widths on CPU."""
from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from conftest import changed, snapshot, tiny_run
from ganrepro.models import MODELS, build_models
from ganrepro.models.deq import SOLVERS, Arch, build, check_solver, make_deq
from ganrepro.objectives import OBJECTIVES
from ganrepro.objectives.deq import DEQWGAN, at_full_size, real_pyramid
from ganrepro.training.loop import build as build_run, train_step

TINY = dict(z_dim=8, ngf=4, ndf=4, f_solver="anderson", b_solver="anderson", f_max_iter=6, b_max_iter=6)


def tiny_g(n_branches=1, img_size=32, channels=1, n_classes=10, **kw):
    torch.manual_seed(0)
    return build(Arch(**{**TINY, "n_branches": n_branches, **kw}), img_size, channels, n_classes)


# ---------------------------------------------------------------- shapes
@pytest.mark.parametrize("img_size", [32, 64])
@pytest.mark.parametrize("n_branches", [1, 3])
def test_shapes_every_resolution(n_branches, img_size):
    G, D = tiny_g(n_branches, img_size, channels=3)
    z, y = G.sample_z(2), torch.tensor([1, 7])
    assert z.shape == (2, 8)
    outs = G.forward_all(z, y)
    assert [o.shape for o in outs] == [(2, 3, img_size // 2**i, img_size // 2**i) for i in range(n_branches)]
    G.eval()
    with torch.no_grad():
        x = G(z, y)
    assert x.shape == (2, 3, img_size, img_size) and x.abs().max() <= 1
    assert D(x, y).shape == (2,)


def test_conditional_needs_labels_and_labels_matter():
    G, D = tiny_g()
    G.eval()
    z = G.sample_z(2)
    with pytest.raises(ValueError, match="labels"):
        G(z)
    with torch.no_grad():
        a, b = G(z, torch.tensor([0, 0])), G(z, torch.tensor([3, 3]))
    assert not torch.allclose(a, b)
    Gu, Du = tiny_g(n_classes=1)  # unlabelled data: no embedding, y may be None
    assert Gu.embed is None and Du(Gu(Gu.sample_z(2)), None).shape == (2,)


# ---------------------------------------------------------------- (1) forward equilibrium
def relative_residual(G, z, y) -> torch.Tensor:
    """||f(z*) - z*|| / ||z*|| per sample, with f evaluated independently of the solver."""
    with torch.no_grad():
        zs = G.solve(z, y)
        u = [inj(x) for inj, x in zip(G.inject, G.inputs(z, y))]
        fz = G.f(zs, u)
    flat = lambda t: torch.cat([ti.flatten(1) for ti in t], 1)  # noqa: E731
    return (flat(fz) - flat(zs)).norm(dim=1) / flat(zs).norm(dim=1)


@pytest.mark.parametrize("solver,n_branches,f_max_iter", [
    ("anderson", 1, 40), ("broyden", 1, 40), ("fixed_point_iter", 1, 60), ("anderson", 3, 80),
])
def test_forward_residual_below_tolerance(solver, n_branches, f_max_iter):
    tol = 1e-3
    G, _ = tiny_g(n_branches, ngf=8, f_solver=solver, f_max_iter=f_max_iter, f_tol=tol)
    G.eval()
    z, y = G.sample_z(3), torch.tensor([0, 4, 9])
    res = relative_residual(G, z, y)
    assert (res < tol).all(), res
    assert G.solver_stats()["deq_f_rel_residual"] < tol
    # the check can fail: two steps are far from the equilibrium
    G2, _ = tiny_g(n_branches, ngf=8, f_solver=solver, f_max_iter=2, f_tol=tol)
    G2.eval()
    assert (relative_residual(G2, z, y) > 10 * tol).all()


# ---------------------------------------------------------------- (2) implicit gradient
def contractive_problem(seed=0, d=6, m=4, b=3):
    """f(z; x) = tanh(W z + U x) with ||W||_2 = 0.5: a contraction with a unique fixed point."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(d, d, generator=g, dtype=torch.float64)
    W = (0.5 * W / torch.linalg.matrix_norm(W, ord=2)).requires_grad_(True)
    U = torch.randn(d, m, generator=g, dtype=torch.float64).requires_grad_(True)
    x = torch.randn(b, m, generator=g, dtype=torch.float64).requires_grad_(True)
    c = torch.randn(b, d, generator=g, dtype=torch.float64)
    f = lambda z: torch.tanh(z @ W.T + x @ U.T)  # noqa: E731  (b, d) -> (b, d)
    return f, (W, U, x), c


def grads(loss, params):
    return torch.autograd.grad(loss, params)


def unrolled_gradient(n_iter=200):
    f, params, c = contractive_problem()
    z = torch.zeros_like(c)
    for _ in range(n_iter):  # 0.5^200: the unrolled graph is the exact equilibrium's, to float64
        z = f(z)
    return grads((c * z).sum(), params)


def deq_gradient(**arch):
    f, params, c = contractive_problem()
    deq = make_deq(Arch(**arch))
    deq.train()
    z_out, _ = deq(f, torch.zeros_like(c))
    return grads((c * z_out[-1]).sum(), params)


def rel_err(a, b) -> float:
    return max(((x - y).norm() / y.norm()).item() for x, y in zip(a, b))


@pytest.mark.parametrize("solver", ["fixed_point_iter", "anderson", "broyden"])
def test_ift_gradient_matches_unrolled_autograd(solver):
    ref = unrolled_gradient()
    ift = deq_gradient(ift=True, f_solver=solver, b_solver=solver, f_max_iter=200, b_max_iter=200,
                       f_tol=1e-13, b_tol=1e-13, f_stop_mode="abs", b_stop_mode="abs")
    assert rel_err(ift, ref) < 1e-6
    # the reference code's 1-step Jacobian-free gradient is not the implicit one: the test can tell
    jfb = deq_gradient(ift=False, grad=1, f_solver=solver, f_max_iter=200, f_tol=1e-13, f_stop_mode="abs")
    assert rel_err(jfb, ref) > 1e-3


# ---------------------------------------------------------------- (4) one training step
def deq_run(n_branches=1, objective=None, **arch):
    return tiny_run(family="deq", preset="deq", objective={"name": "deq_wgan", "n_critic": 2, **(objective or {})},
                    arch={**TINY, "n_branches": n_branches, **arch})


def fake_data(n=8, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    real = torch.rand(n, 1, size, size, generator=g) * 2 - 1
    y = torch.randint(0, 10, (n,), generator=g)
    while True:
        yield real, y


@pytest.mark.parametrize("backward", [dict(ift=True), dict(ift=False, grad=1), dict(ift=False, grad=3, tau=0.6)])
def test_one_step_finite_and_updates(backward):
    torch.manual_seed(0)
    G, D, obj = build_run(deq_run(**backward), channels=1, n_classes=10, device=torch.device("cpu"))
    assert isinstance(obj, DEQWGAN) and obj.n_critic == 2
    g0, d0 = snapshot(G), snapshot(D)
    logs = train_step(obj, fake_data())
    assert all(math.isfinite(v) for v in logs.values()), logs
    assert changed(g0, G) and changed(d0, D)
    assert {"loss_d", "loss_g", "gp", "deq_f_steps", "deq_f_rel_residual"} <= logs.keys()
    assert 1 <= logs["deq_f_steps"] <= TINY["f_max_iter"]
    assert ("deq_b_steps" in logs) == backward["ift"]


def test_multires_loss_trains_every_branch_unlike_branch0_only():
    """`mean` (the paper) trains the lower-resolution read-outs; `highest` (the reference code) cannot."""
    for multires, trained in [("mean", True), ("highest", False)]:
        torch.manual_seed(0)
        G, D, obj = build_run(deq_run(3, objective={"multires": multires}), 1, 10, torch.device("cpu"))
        before = [snapshot(m) for m in G.to_img]
        train_step(obj, fake_data())
        assert changed(before[0], G.to_img[0])
        assert [changed(b, m) for b, m in zip(before[1:], G.to_img[1:])] == [trained, trained]


def test_multires_generator_loss_is_mean_over_resolutions():
    torch.manual_seed(0)
    G, D, obj = build_run(deq_run(3), 1, 10, torch.device("cpu"))
    real, y = next(fake_data())
    fakes = [torch.rand(8, 1, 32 // 2**i, 32 // 2**i) for i in range(3)]
    _, x_fake, yy, _ = obj.images(real, y, fakes)
    with torch.no_grad():
        pooled = -D(x_fake, yy).mean()
        per_res = [-D(torch.nn.functional.interpolate(f, size=32, mode="bilinear"), y).mean() for f in fakes]
    assert torch.allclose(pooled, torch.stack(per_res).mean(), atol=1e-6)
    reals = real_pyramid(real, 3)
    assert [r.shape[-1] for r in reals] == [32, 16, 8]
    assert torch.allclose(reals[2][0, 0, 0, 0], real[0, 0, :4, :4].mean())
    assert at_full_size(reals, 32).shape == (24, 1, 32, 32)


# ---------------------------------------------------------------- (5) solver names, registry
def test_unknown_solver_lists_valid_names():
    for key in ("f_solver", "b_solver"):
        with pytest.raises(ValidationError) as e:
            Arch(**{key: "newton"})
        assert all(s in str(e.value) for s in ("anderson", "broyden", "fixed_point_iter")), str(e.value)
    with pytest.raises(ValueError, match="valid: " + ", ".join(SOLVERS)):
        check_solver("newton")
    with pytest.raises(ValidationError, match="anderson"):
        build_models("deq", {"f_solver": "newton"}, 32, 1, 10)


def test_registry_names_build():
    assert MODELS.get("deq").Arch is Arch and OBJECTIVES.get("deq_wgan") is DEQWGAN
    G, D = build_models("deq", TINY, 32, 1, 10)
    assert G.deq.f_max_iter == TINY["f_max_iter"]


# ---------------------------------------------------------------- (6) reference switches (issue 13)
def n_params(m) -> int:
    return sum(p.numel() for p in m.parameters())


def test_dcgan_decoder_injection_matches_reference_sizes_and_trains():
    """`injection: dcgan_decoder` is the reference's init_gen (Generator.py:21-47): 12,658,438 parameters
    at 64px, z 100, widths 1024-512-256-128-3 (docs/reference-diffs.md 1.3, from the layer list)."""
    from ganrepro.models.deq import DCGANDecoder

    dec = DCGANDecoder(100, 128, 3, 64)
    assert n_params(dec) == 12_658_438
    convs = [m for m in dec.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(100, 1024), (1024, 512), (512, 256), (256, 128), (128, 3)]
    x = dec(torch.randn(2, 100))
    assert x.shape == (2, 3, 64, 64) and (x >= 0).all()  # the reference's last ReLU
    G, _ = tiny_g(injection="dcgan_decoder", decoder_ngf=4)
    assert isinstance(G.noise, DCGANDecoder) and not isinstance(tiny_g()[0].noise, DCGANDecoder)
    assert G.inputs(G.sample_z(2), torch.tensor([0, 1]))[0].shape == (2, 2, 32, 32)  # C + label channel
    torch.manual_seed(0)
    G, D, obj = build_run(deq_run(injection="dcgan_decoder", decoder_ngf=4), 1, 10, torch.device("cpu"))
    before = snapshot(G.noise)
    train_step(obj, fake_data())
    assert changed(before, G.noise)  # the decoder is trained through the DEQ's gradient


def test_critic_head_conv_to_1_matches_reference_size():
    """`critic_head: conv_to_1` is the reference critic (Discriminator.py:11-35): 304,422 parameters at
    64px, 3 channels, widths 128/256, unconditional; ours (flatten_linear) 1,220,353."""
    _, D_ref = build(Arch(ndf=128, conditional=False, critic_head="conv_to_1"), 64, 3, 1)
    _, D_ours = build(Arch(ndf=128, conditional=False), 64, 3, 1)
    assert n_params(D_ref) == 304_422 and n_params(D_ours) == 1_220_353
    assert D_ref(torch.randn(2, 3, 64, 64)).shape == (2,)


def test_fakes_per_step_counts_and_labels():
    """fakes_per_d_step / fakes_per_g_step: G makes that many fakes per critic / generator step, fake
    j*k .. j*k+k-1 with real j's label (critic) and the batch's labels cycled (generator)."""
    torch.manual_seed(0)
    G, D, obj = build_run(deq_run(objective={"fakes_per_d_step": 16, "fakes_per_g_step": 12}), 1, 10,
                          torch.device("cpu"))
    calls = []
    inner = G.forward_all
    G.forward_all = lambda z, y: calls.append((z.shape[0], y.clone())) or inner(z, y)
    data = fake_data()
    real, y = next(fake_data())
    train_step(obj, data)
    assert [n for n, _ in calls] == [16, 16, 12]
    assert torch.equal(calls[0][1], y.repeat_interleave(2)) and torch.equal(calls[2][1], y[torch.arange(12) % 8])
    with pytest.raises(ValueError, match="multiple"):
        build_run(deq_run(objective={"fakes_per_d_step": 12}), 1, 10, torch.device("cpu"))[2].d_step(real, y)


def test_gradient_penalty_pairs_each_real_with_its_fakes():
    """One eps per real, broadcast over its k fakes (reference main2.py:104-107), against a direct loop."""
    from ganrepro.objectives.deq import gradient_penalty

    torch.manual_seed(0)
    _, D = tiny_g(n_classes=1)
    real, fake = torch.randn(2, 1, 32, 32), torch.randn(6, 1, 32, 32)
    torch.manual_seed(1)
    gp = gradient_penalty(D, real, fake, None)
    torch.manual_seed(1)
    eps = torch.rand(2)
    terms = []
    for i in range(6):
        xhat = (eps[i // 3] * real[i // 3] + (1 - eps[i // 3]) * fake[i])[None].requires_grad_(True)
        (g,) = torch.autograd.grad(D(xhat, None).sum(), xhat)
        terms.append((g.norm() - 1) ** 2)
    assert torch.allclose(gp, torch.stack(terms).mean(), rtol=1e-5)


def test_the_reference_preset_follows_the_reference_code():
    """deq_gan_ref = DEQ-GAN-755-PROJECT@7366c8b main2.py / Generator.py / Discriminator.py (reference-diffs 1.3)."""
    from conftest import ROOT
    from ganrepro.config import load_params
    from ganrepro.models.deq import DCGANDecoder

    preset = load_params(ROOT / "params.yaml").models["deq_gan_ref"]
    assert (preset.img_size, preset.batch_size, preset.betas, preset.lr_g, preset.lr_d, preset.epochs) == \
        (64, 1, (0.9, 0.99), 2e-4, 2e-4, 50)
    obj = preset.objective
    assert (obj["n_critic"], obj["fakes_per_d_step"], obj["fakes_per_g_step"], obj["multires"]) == (5, 5, 10, "highest")
    arch = Arch(**preset.arch)
    assert (arch.f_solver, arch.f_max_iter, arch.f_stop_mode, arch.f_tol, arch.ift, arch.grad) == \
        ("broyden", 30, "abs", 1e-3, False, 1)
    G, D = build(arch, 64, 3, 1)
    assert isinstance(G.noise, DCGANDecoder) and n_params(G.noise) == 12_658_438 and n_params(D) == 304_422
    # f on the image itself (state: image): the reference's GeneratorBlock(3, 3, 64), 1,079,686 parameters
    # (lib/MDEQ.py:5-45; docs/reference-diffs.md 1.3: one-branch G 13,738,139 less post_fuse's unused 15)
    assert arch.state == "image" and n_params(G) == 12_658_438 + 1_079_686 == 13_738_139 - 15


def test_image_state_iterates_on_the_image_with_the_reference_layers():
    """`state: image`: f(z; x) = g(z + x) on (B, C, H, W), no read-out: G's output is the fixed point
    torchdeq returns; g's layers are the reference's, in order (MDEQ.py:9-29)."""
    from ganrepro.models.deq import ImageF

    G, _ = tiny_g(img_size=16, channels=3, n_classes=1, conditional=False, state="image",
                  injection="dcgan_decoder", decoder_ngf=4, f_max_iter=8)
    assert isinstance(G.f, ImageF) and G.to_img is None and G.inject is None
    layers = [(type(m).__name__, m.in_channels, m.out_channels, m.kernel_size, m.stride)
              for m in G.f.g if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert layers == [("Conv2d", 3, 16, (4, 4), (2, 2)), ("Conv2d", 16, 8, (4, 4), (2, 2)), ("Conv2d", 8, 3, (3, 3), (1, 1)),
                      ("ConvTranspose2d", 3, 8, (4, 4), (2, 2)), ("ConvTranspose2d", 8, 16, (4, 4), (2, 2)),
                      ("ConvTranspose2d", 16, 3, (3, 3), (1, 1))]
    G.eval()  # BatchNorm on its running statistics: f is one function across the calls below
    with torch.no_grad():
        z = G.sample_z(2)
        out, z_star, x = G(z), G.solve(z)[0], G.inputs(z, None)
        assert out.shape == (2, 3, 16, 16) and torch.equal(out, z_star)  # the image is the fixed point
        assert ((G.f([out], x)[0] - out).norm() / out.norm()).item() < 1e-3  # image = f(image; x)
        a, b = torch.randn(2, 3, 16, 16), 3 * torch.randn(2, 3, 16, 16)
        assert torch.allclose(G.f([a], [b])[0], G.f.g(a + b)) and not torch.allclose(G.f([a], [b])[0], G.f.g(a), atol=1e-2)
    with pytest.raises(ValidationError, match="state: image is the reference's one-branch, unconditional f"):
        Arch(state="image", n_branches=3, conditional=False)
    with pytest.raises(ValidationError, match="needs n_branches: 1 and conditional: false"):
        Arch(state="image")
