"""BEGAN: auto-encoder D and decoder-shaped G at 32/64px (8x8 bottleneck), the k_t controller,
M_global, the stall-driven lr halving, and one finite training step that moves the weights."""
import pytest
import torch
import torch.nn.functional as F

from conftest import changed, snapshot, tiny_run
from ganrepro.models import build_models
from ganrepro.models.began import n_scales
from ganrepro.objectives.began import BEGANObjective, k_update, m_global, recon_loss
from ganrepro.training.loop import build, train_step

TINY = {"z_dim": 8, "h_dim": 8, "ngf": 4, "ndf": 4}


def began_run(**objective):
    return tiny_run(preset="began", family="began", objective={"name": "began", **objective},
                    arch=TINY, lr_g=1e-4, lr_d=1e-4, betas=(0.9, 0.999))


def built(**objective):
    torch.manual_seed(0)
    return build(began_run(**objective), channels=1, n_classes=10, device=torch.device("cpu"))


# ---------------------------------------------------------------- architecture
@pytest.mark.parametrize("size,channels,scales", [(32, 1, 3), (64, 3, 4)])
def test_shapes_and_the_8x8_bottleneck(size, channels, scales):
    G, D = build_models("began", TINY, size, channels, 10)
    z = G.sample_z(3)
    assert z.shape == (3, 8)
    x = G(z)
    assert x.shape == (3, channels, size, size) and x.abs().max() <= 1
    assert D.reconstruct(x).shape == x.shape
    assert D(x).shape == (3,)
    # encoder: S scales, S-1 stride-2 convs, filters n, 2n, ..., S*n; the last at 8x8
    assert D.enc.convs(x).shape == (3, scales * 4, 8, 8)
    assert D.enc(x).shape == (3, 8)  # h in R^{N_h}
    strided = [m for m in D.enc.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == scales - 1
    # decoders start at 8x8 with n filters and upsample S-1 times, nearest neighbour
    for dec in (G.dec, D.dec):
        assert dec.fc.out_features == 4 * 8 * 8
        ups = [m for m in dec.modules() if isinstance(m, torch.nn.Upsample)]
        assert len(ups) == scales - 1 and all(u.mode == "nearest" for u in ups)
        assert sum(isinstance(m, torch.nn.ELU) for m in dec.modules()) == 2 * scales


def test_bad_sizes_are_refused():
    assert n_scales(16) == 2 and n_scales(128) == 5
    with pytest.raises(ValueError, match="img_size: BEGAN needs a power of two >= 16, got 48"):
        build_models("began", TINY, 48, 1, 10)


def test_z_is_uniform_on_minus_one_one():
    G, _ = build_models("began", TINY, 32, 1, 10)
    z = G.sample_z(20000, generator=torch.Generator().manual_seed(0))
    assert z.min() >= -1 and z.max() <= 1
    assert z.mean().item() == pytest.approx(0, abs=0.01)
    assert z.std().item() == pytest.approx(3 ** -0.5, rel=0.01)  # U[-1, 1]: sd 1/sqrt(3)


def test_D_score_is_minus_the_per_sample_L1_reconstruction_error():
    _, D = build_models("began", TINY, 32, 1, 10)
    x = torch.rand(5, 1, 32, 32) * 2 - 1
    rec = D.reconstruct(x)
    want = torch.stack([-F.l1_loss(rec[i], x[i]) for i in range(5)])
    torch.testing.assert_close(D(x), want)
    torch.testing.assert_close(recon_loss(x, rec), -want)


# ---------------------------------------------------------------- k_t and M_global
def test_k_update_against_hand_values_and_its_clipping():
    # 0.3 + 0.001 * (0.5 * 0.2 - 0.05) = 0.30005
    assert k_update(0.3, L_x=0.2, L_G=0.05, gamma=0.5, lambda_k=0.001) == pytest.approx(0.30005, abs=1e-12)
    # gamma L(x) < L(G): k falls: 0.3 + 0.001 * (0.3 * 0.2 - 0.1) = 0.29996
    assert k_update(0.3, L_x=0.2, L_G=0.1, gamma=0.3, lambda_k=0.001) == pytest.approx(0.29996, abs=1e-12)
    # 1e-5 + 0.001 * (0.05 - 0.5) < 0 -> 0
    assert k_update(1e-5, L_x=0.1, L_G=0.5, gamma=0.5, lambda_k=0.001) == 0.0
    # 0.9999 + 0.001 * (1.0 - 0.0) > 1 -> 1
    assert k_update(0.9999, L_x=1.0, L_G=0.0, gamma=1.0, lambda_k=0.001) == 1.0


def test_m_global_against_hand_values():
    assert m_global(0.2, 0.05, 0.5) == pytest.approx(0.2 + 0.05)  # 0.2 + |0.1 - 0.05|
    assert m_global(0.2, 0.3, 0.5) == pytest.approx(0.2 + 0.2)  # 0.2 + |0.1 - 0.3|


# ---------------------------------------------------------------- lr schedule
def lrs(objective):
    return [g["lr"] for opt in (objective.opt_g, objective.opt_d) for g in opt.param_groups]


def test_lr_halves_when_M_global_stalls_and_not_while_it_improves():
    _, _, obj = built(lr_window=3, lr_rel_tol=0.01, lr_min=3e-5)
    for m in [3.0] * 3 + [2.0] * 3 + [1.0] * 3:  # window means 3, 2, 1: improving
        obj.schedule(m)
    assert lrs(obj) == [1e-4, 1e-4]
    for m in [1.0, 1.0]:  # inside a window nothing is decided
        obj.schedule(m)
    assert lrs(obj) == [1e-4, 1e-4]
    obj.schedule(1.0)  # window mean 1.0, best 1.0: stalled
    assert lrs(obj) == pytest.approx([5e-5, 5e-5])
    for m in [0.995] * 3:  # a 0.5% gain is below the 1% tolerance: stalled, floored at lr_min
        obj.schedule(m)
    assert lrs(obj) == pytest.approx([3e-5, 3e-5])
    for m in [0.5] * 3:  # improves again: no change
        obj.schedule(m)
    assert lrs(obj) == pytest.approx([3e-5, 3e-5])


def test_state_dict_round_trip_keeps_k_and_the_schedule():
    _, _, a = built(lr_window=2)
    a.k, a.L_x = 0.25, 0.1
    for m in [2.0, 2.0, 1.0]:  # one finished window (best 2.0), one half-way
        a.schedule(m)
    _, _, b = built(lr_window=2)
    b.load_state_dict(a.state_dict())
    assert (b.k, b.L_x) == (0.25, 0.1)
    b.schedule(3.0)  # window mean (1 + 3) / 2 = 2.0 = best: stalled only if the half-window was kept
    assert lrs(b) == pytest.approx([5e-5, 5e-5])


# ---------------------------------------------------------------- training
def test_registry_builds_the_objective():
    G, D, obj = built()
    assert isinstance(obj, BEGANObjective) and obj.k == 0.0 and obj.n_critic == 1
    assert (obj.args.gamma, obj.args.lambda_k) == (0.5, 0.001)


def test_one_step_is_finite_moves_both_nets_and_updates_k():
    G, D, obj = built(gamma=0.7)
    g0, d0 = snapshot(G), snapshot(D)
    real = torch.rand(4, 1, 32, 32) * 2 - 1
    batch = (real, torch.zeros(4, dtype=torch.long))
    logs = train_step(obj, iter([batch]))
    assert set(logs) >= {"loss_d", "loss_g", "k_t", "M_global", "L_real", "L_fake", "lr"}
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert changed(g0, G) and changed(d0, D)
    assert logs["loss_d"] == pytest.approx(logs["L_real"])  # k_0 = 0
    L_x, L_G = logs["L_real"], logs["loss_g"]
    assert logs["k_t"] == pytest.approx(min(max(0.0 + 0.001 * (0.7 * L_x - L_G), 0), 1)) == obj.k
    assert logs["M_global"] == pytest.approx(L_x + abs(0.7 * L_x - L_G))
    k1 = obj.k
    logs = train_step(obj, iter([batch]))  # the second D loss uses k_1
    assert logs["loss_d"] == pytest.approx(logs["L_real"] - k1 * logs["L_fake"], rel=1e-5)


def test_k_0_starts_the_controller_and_its_first_D_loss_uses_it():
    G, D, obj = built(k_0=0.25)
    assert obj.k == 0.25
    real = torch.rand(4, 1, 32, 32) * 2 - 1
    logs = train_step(obj, iter([(real, torch.zeros(4, dtype=torch.long))]))
    assert logs["loss_d"] == pytest.approx(logs["L_real"] - 0.25 * logs["L_fake"], rel=1e-5)
    assert logs["k_t"] == pytest.approx(min(max(0.25 + 0.001 * (0.5 * logs["L_real"] - logs["loss_g"]), 0), 1))
    with pytest.raises(Exception, match="k_0"):
        built(k_0=1.5)


# ---------------------------------------------------------------- reference switches (issue 13)
@pytest.mark.parametrize("output,act", [("tanh", torch.tanh), ("linear", lambda v: v), ("elu", F.elu)])
def test_g_output_is_the_named_function_of_the_last_conv(output, act):
    torch.manual_seed(0)
    G, _ = build_models("began", {**TINY, "g_output": output}, 32, 1, 10)
    with torch.no_grad():
        G.dec.convs[-1].bias.fill_(3.0)  # the last conv's output lies far outside [-1, 1]
        z = G.sample_z(4)
        raw = G.dec.convs(G.dec.fc(z).view(-1, 4, 8, 8))  # the decoder by hand: (B, 1, 32, 32)
        torch.testing.assert_close(G(z), act(raw))
        assert (G(z).max() > 1) == (output != "tanh")  # only tanh bounds G's images


def test_g_output_default_and_the_decoder_of_D_stays_linear():
    G, D = build_models("began", TINY, 32, 1, 10)
    assert isinstance(G.out, torch.nn.Tanh)
    assert not isinstance(D.dec.convs[-1], (torch.nn.ELU, torch.nn.Tanh))
    with pytest.raises(Exception, match="g_output"):
        build_models("began", {**TINY, "g_output": "sigmoid"}, 32, 1, 10)


@pytest.mark.parametrize("down_width,strided,firsts", [
    # n = 4, 32px, 3 scales: the stride-2 convs' (in, out) and each scale's first conv's (in, out)
    ("next", [(4, 8), (8, 12)], [(4, 4), (8, 8), (12, 12)]),   # ours: widen at the down-sampling
    ("same", [(4, 4), (8, 8)], [(4, 4), (4, 8), (8, 12)]),     # BEGAN-tf models.py:29-33
])
def test_down_width_sets_the_stride_2_conv_widths(down_width, strided, firsts):
    _, D = build_models("began", {**TINY, "down_width": down_width}, 32, 1, 10)
    convs = [m for m in D.enc.convs.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs if c.stride == (2, 2)] == strided
    # after the input conv: per scale 2 stride-1 convs then (not at the last) a stride-2 one
    assert [(c.in_channels, c.out_channels) for c in (convs[1], convs[4], convs[7])] == firsts
    assert D.enc.convs(torch.zeros(2, 1, 32, 32)).shape == (2, 12, 8, 8)  # S*n at 8x8 either way


@pytest.mark.parametrize("down_width,params", [("next", 13_900_992), ("same", 11_688_768)])
def test_encoder_parameters_at_64px_match_the_reference_arithmetic(down_width, params):
    # docs/reference-diffs.md Sec. 4: n = 128, N_h = 64, 3 channels
    _, D = build_models("began", {"z_dim": 64, "h_dim": 64, "ngf": 8, "ndf": 128, "down_width": down_width}, 64, 3, 10)
    assert sum(p.numel() for p in D.enc.parameters()) == params


def test_step_schedule_decays_every_lr_step_whatever_M_global_does():
    _, _, obj = built(lr_schedule="step", lr_step=3, lr_window=1, lr_min=3e-5)
    for m in [5.0, 4.0]:  # improving or not, nothing until step 3
        obj.schedule(m)
    assert lrs(obj) == [1e-4, 1e-4]
    obj.schedule(3.0)
    assert lrs(obj) == pytest.approx([5e-5, 5e-5])
    for m in [2.0, 1.0, 0.5]:  # M_global falls every step (the plateau rule would not decay)
        obj.schedule(m)
    assert lrs(obj) == pytest.approx([3e-5, 3e-5])  # 2.5e-5 floored at lr_min
    _, _, b = built(lr_schedule="step", lr_step=4)
    for m in [1.0, 1.0]:
        obj.schedule(m)  # obj at t = 8
    b.load_state_dict(obj.state_dict())
    assert b.t == 8
    b.schedule(1.0), b.schedule(1.0), b.schedule(1.0)
    assert lrs(b) == [1e-4, 1e-4]
    b.schedule(1.0)  # t = 12, a multiple of 4: only if t was restored
    assert lrs(b) == pytest.approx([5e-5, 5e-5])


def test_plateau_schedule_is_the_default_and_ignores_lr_step():
    _, _, obj = built(lr_step=1, lr_window=100)
    assert obj.args.lr_schedule == "plateau"
    for m in [1.0] * 5:
        obj.schedule(m)
    assert lrs(obj) == [1e-4, 1e-4]


def test_began_ref_preset_follows_the_reference_code():
    from ganrepro.config import load_params, resolve_run

    params = load_params()
    ref, paper = params.models["began_ref"], params.models["began"]
    assert (ref.arch["g_output"], ref.arch["down_width"]) == ("linear", "same")
    assert (ref.lr_g, ref.lr_d, tuple(ref.betas)) == (8e-5, 8e-5, (0.9, 0.999))
    assert ref.objective["lr_schedule"] == "step" and ref.objective["lr_step"] == 100000
    assert ref.objective["lr_min"] == 2e-5
    assert (paper.lr_g, paper.lr_d) == (1e-4, 1e-4)  # the paper's text: 1e-4
    assert paper.arch.get("down_width", "next") == "next"
    resolve_run(params, "r", "began_ref", "celeba")  # valid at the active profile
