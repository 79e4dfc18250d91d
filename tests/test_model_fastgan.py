"""FastGAN with 1-3 decoders: crops, DiffAugment, EMA, shapes at 32/64 px, one training step."""
import pytest
import torch

from conftest import changed, snapshot, tiny_run
from ganrepro.config import ConfigError
from ganrepro.metrics.features import MissingWeightsError
from ganrepro.models import build_models
from ganrepro.models.fastgan import center_crop, quadrant_crop
from ganrepro.objectives import build_objective
from ganrepro.objectives.fastgan import FastGANObjective, diff_augment, ema_update, rand_translation, shift
from ganrepro.training.loop import build, train_step

TINY = {"z_dim": 8, "ngf": 4, "ndf": 4, "dec_ch": 4}


def fastgan_run(n_decoders=3, size=32, **objective):
    return tiny_run(preset="fastgan_m3", family="fastgan", arch={**TINY, "n_decoders": n_decoders},
                    objective={"name": "fastgan", "recon_loss": "l1", **objective}, img_size=size,
                    lr_g=1e-4, lr_d=1e-4, betas=(0.0, 0.99))


# ---------------------------------------------------------------- (1) crops
def test_center_crop_is_the_centre_of_a_known_tensor():
    t = torch.arange(32 * 32).view(1, 1, 32, 32)
    c = center_crop(t, 0.5)
    assert c.shape[-2:] == (16, 16)
    assert c[0, 0, 0, 0] == 8 * 32 + 8 and c[0, 0, -1, -1] == 23 * 32 + 23  # rows/cols 8..23
    rows, cols = c[0, 0] // 32, c[0, 0] % 32
    assert rows.float().mean() == cols.float().mean() == 15.5  # the centre of 0..31
    assert not torch.equal(c[..., :8, :8], c[..., 8:, 8:])  # the seed's [8:16, 8:16] is only its top-left
    assert center_crop(torch.arange(16).view(4, 4), 0.5).tolist() == [[5, 6], [9, 10]]
    with pytest.raises(ValueError, match="exactly centred"):
        center_crop(t, 0.3)


@pytest.mark.parametrize("q,row,col", [(0, 0, 0), (1, 0, 4), (2, 4, 0), (3, 4, 4)])
def test_quadrant_crop_picks_the_named_quadrant(q, row, col):
    t = torch.arange(64).view(1, 1, 8, 8)
    expected = torch.tensor([[r * 8 + c for c in range(col, col + 4)] for r in range(row, row + 4)])
    assert torch.equal(quadrant_crop(t, q)[0, 0], expected)


def test_recon_targets_are_the_named_regions_of_the_image():
    _, D = build_models("fastgan", {**TINY, "n_decoders": 3}, 64, 1, 1)
    x = torch.arange(64.0).view(1, 1, 1, 64).expand(1, 1, 64, 64)  # x[..., j] = j (column index)
    t = D.recon_targets(x, part=1)  # top-right quadrant; centre half = columns 16..47
    assert t["part"].min() >= 32 and t["center"].min() >= 16 and t["center"].max() <= 47.5
    assert t["center"].mean().item() == pytest.approx(31.5)  # centred on the image's centre


def test_decoders_read_the_matching_crop_of_their_feature_maps():
    _, D = build_models("fastgan", {**TINY, "n_decoders": 3}, 64, 1, 1)
    D.eval()  # no spectral-norm power iteration between the two passes
    seen = {}
    for k, dec in D.decoders.items():
        dec.register_forward_hook(lambda m, inp, out, k=k: seen.__setitem__(k, inp[0]))
    x = torch.rand(2, 1, 64, 64)
    D.forward_with_recons(x, part=3)
    feats = D.features(x)
    assert torch.allclose(seen["whole"], feats[8])
    assert torch.allclose(seen["part"], feats[16][..., 8:, 8:])  # bottom-right quadrant of 16x16
    assert torch.allclose(seen["center"], feats[32][..., 8:24, 8:24])  # the real centre of 32x32


# ---------------------------------------------------------------- (2) DiffAugment
def test_diff_augment_keeps_shapes_and_is_seeded():
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    a = diff_augment(x, generator=torch.Generator().manual_seed(0))
    b = diff_augment(x, generator=torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
    assert torch.equal(diff_augment(x, policy=""), x)


def test_shift_matches_roll_and_translation_moves_content():
    x = torch.zeros(3, 2, 16, 16)
    x[:, :, 4:12, 4:12] = torch.rand(3, 2, 8, 8)  # zero border >= the largest shift (2 at 16 px)
    dy, dx = torch.tensor([2, -1, 0]), torch.tensor([0, 2, -2])
    out = shift(x, dy, dx)
    for i in range(3):  # an independent reference: torch.roll, exact when nothing wraps around
        assert torch.equal(out[i], torch.roll(x[i], (int(dy[i]), int(dx[i])), dims=(1, 2)))
    y = rand_translation(x, generator=torch.Generator().manual_seed(1))
    assert y.shape == x.shape and not torch.equal(y, x)
    assert torch.allclose(y.sum((1, 2, 3)), x.sum((1, 2, 3)))  # moved, not lost (within the border)
    with pytest.raises(ConfigError, match="cutout"):
        build_objective({"name": "fastgan", "policy": "color,cutout", "recon_loss": "l1"}, *build_models(
            "fastgan", TINY, 32, 1, 1), None, None)


# ---------------------------------------------------------------- (3) EMA
def test_ema_update_against_a_hand_computation():
    model = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
    ema = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 2.0]]))
        model[0].bias.fill_(4.0)
        model[1].running_mean.fill_(7.0)
        ema[0].weight.copy_(torch.tensor([[3.0, -2.0]]))
        ema[0].bias.fill_(0.0)
    ema_update(ema, model, decay=0.9)
    # 0.9 * 3 + 0.1 * 1 = 2.8;  0.9 * -2 + 0.1 * 2 = -1.6;  0.9 * 0 + 0.1 * 4 = 0.4
    assert ema[0].weight[0].tolist() == pytest.approx([2.8, -1.6]) and ema[0].bias.item() == pytest.approx(0.4)
    assert ema[1].running_mean.item() == 7.0  # buffers are copied, not averaged
    assert model[0].weight[0].tolist() == [1.0, 2.0]  # the live model is untouched


# ---------------------------------------------------------------- (4) shapes
@pytest.mark.parametrize("size,channels", [(32, 1), (64, 3)])
@pytest.mark.parametrize("n_decoders", [1, 2, 3])
def test_shapes(size, channels, n_decoders):
    G, D = build_models("fastgan", {**TINY, "n_decoders": n_decoders}, size, channels, 10)
    z = G.sample_z(3)
    assert z.shape == (3, 8)
    x = G(z)
    assert x.shape == (3, channels, size, size) and x.abs().max() <= 1
    assert D(x).shape == (3,)
    logits, recons = D.forward_with_recons(x, part=2)
    targets = D.recon_targets(x, part=2)
    assert logits.shape == (3, 1 if size == 32 else 25)  # 4x4 final map at 32 px, 8x8 (5x5 patches) above
    assert list(recons) == ["whole", "part", "center"][:n_decoders] == list(targets)
    for k in recons:
        assert recons[k].shape == targets[k].shape == (3, channels, size // 2, size // 2)


def test_decoders_read_4_8_16_at_32px_and_8_16_32_at_64px():
    for size, maps in [(32, [4, 8, 16]), (64, [8, 16, 32])]:
        _, D = build_models("fastgan", {**TINY, "n_decoders": 3}, size, 1, 1)
        feats = D.features(torch.zeros(2, 1, size, size))
        assert [D.dec_map[k] for k in D.decoders] == maps
        assert all(feats[m].shape[-1] == m for m in maps)
    with pytest.raises(ValueError, match="power of two in \\[32, 1024\\], got 48"):
        build_models("fastgan", TINY, 48, 1, 1)


# ---------------------------------------------------------------- (5) training
def test_one_step_gives_finite_losses_and_changes_both_nets(n_decoders=3):
    torch.manual_seed(0)
    G, D, objective = build(fastgan_run(n_decoders), channels=1, n_classes=10, device=torch.device("cpu"))
    assert isinstance(objective, FastGANObjective)
    g0, d0, e0, dec0 = snapshot(G), snapshot(D), snapshot(objective.eval_G), snapshot(D.decoders)
    real = torch.rand(4, 1, 32, 32) * 2 - 1
    logs = train_step(objective, iter([(real, torch.zeros(4, dtype=torch.long))] * 2))
    assert set(logs) >= {"loss_d", "loss_g", "loss_rec"} and all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert len([k for k in logs if k.startswith("loss_rec_")]) == n_decoders
    assert changed(g0, G) and changed(d0, D) and changed(e0, objective.eval_G)
    assert changed(dec0, D.decoders)  # the reconstruction loss trains the decoders
    # EMA after one step: 0.999 * theta_0 + 0.001 * theta_1
    ema = [0.999 * a + 0.001 * b for a, b in zip(g0, G.parameters())]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ema, objective.eval_G.parameters()))
    assert objective.eval_G is not G and set(objective.state_dict()["G_ema"]) == set(G.state_dict())


def test_lpips_refuses_clearly_when_the_backbone_weights_are_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    G, D = build_models("fastgan", TINY, 32, 1, 1)
    with pytest.raises(MissingWeightsError, match="vgg16-397923af.pth"):
        build_objective({"name": "fastgan", "recon_loss": "lpips", "lpips_net": "vgg"}, G, D, None, None)


def _d_step_with(objective_spec, **arch):
    torch.manual_seed(0)
    G, D = build_models("fastgan", {**TINY, "n_decoders": 2, **arch}, 32, 1, 1)
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-4), torch.optim.Adam(D.parameters(), 1e-4)
    objective = build_objective({"name": "fastgan", **objective_spec}, G, D, opt_g, opt_d)
    d0 = snapshot(D.decoders)
    logs = objective.d_step(torch.rand(4, 1, 32, 32) * 2 - 1, torch.zeros(4, dtype=torch.long))
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values()) and logs["loss_rec"] > 0
    assert changed(d0, D.decoders)


def test_lpips_recon_loss_runs_on_a_cached_backbone(monkeypatch, tmp_path):
    """The `lpips` path, offline: a random-init SqueezeNet stands in for the ImageNet file."""
    import torchvision

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    file = tmp_path / "hub" / "checkpoints" / "squeezenet1_1-b8a52dc0.pth"
    torch.save(torchvision.models.squeezenet1_1().state_dict(), file)
    _d_step_with({"recon_loss": "lpips", "lpips_net": "squeeze"})


def test_lpips_digit_recon_loss_uses_the_digit_classifier(monkeypatch, tmp_path):
    from ganrepro.metrics import features
    from ganrepro.metrics.digit_classifier import DigitClassifier

    monkeypatch.setattr(features, "DIGIT_CLASSIFIER", tmp_path / "digit_classifier.pt")
    with pytest.raises(MissingWeightsError, match="digit_classifier.pt"):
        _d_step_with({"recon_loss": "lpips_digit"})
    torch.save(DigitClassifier().state_dict(), tmp_path / "digit_classifier.pt")
    _d_step_with({"recon_loss": "lpips_digit"})


def test_reconstruction_figures_pair_each_target_with_its_decoder_output():
    torch.manual_seed(0)
    _, D, objective = build(fastgan_run(3), channels=1, n_classes=10, device=torch.device("cpu"))
    real = torch.rand(10, 1, 32, 32) * 2 - 1
    figures = objective.figures(real, torch.zeros(10, dtype=torch.long))
    assert set(figures) == {f"reconstructions_{k}" for k in D.decoders}
    targets = D.recon_targets(real[:8], part=0)
    for k, (images, per_row) in figures.items():
        name = k.removeprefix("reconstructions_")
        assert per_row == 8 and images.shape == (16, *targets[name].shape[1:])
        assert torch.equal(images[:8], targets[name])  # first row: the targets, the second: S_i(f_i)
    assert D.training  # left in training mode


def test_evaluation_samples_are_reproducible_despite_the_noise_injection():
    """G draws its injected noise from torch's global RNG; the evaluation sampler seeds it per batch,
    so the same seed gives the same images whatever ran before, and the caller's RNG is untouched."""
    from ganrepro.evaluation import sampler
    from ganrepro.models.fastgan import NoiseInjection
    G, _ = build_models("fastgan", {**TINY, "n_decoders": 1}, 32, 3, 1)
    G.eval()
    for m in G.modules():
        if isinstance(m, NoiseInjection):
            m.weight.data.fill_(0.5)  # as after training (its init is 0: no noise)
    torch.manual_seed(1)
    first = [sampler(G, 1, seed=5)(4) for _ in range(2)]
    torch.manual_seed(2)  # another global state, as after other work in the same process
    state = torch.get_rng_state()
    again = sampler(G, 1, seed=5)
    assert torch.equal(again(4), first[0]) and torch.equal(first[0], first[1])
    assert not torch.equal(again(4), first[0])  # the next batch is a new draw
    assert torch.equal(torch.get_rng_state(), state)
    with torch.no_grad():  # and the noise does matter: the same z twice, unseeded, differs
        z = G.sample_z(4, generator=torch.Generator().manual_seed(0))
        assert not torch.equal(G(z, None), G(z, None))


# ---------------------------------------------------------------- (6) the references' switches (issue 13)
def _objective(size=32, n_decoders=2, arch=None, **spec):
    torch.manual_seed(0)
    G, D = build_models("fastgan", {**TINY, "n_decoders": n_decoders, **(arch or {})}, size, 1, 1)
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-4), torch.optim.Adam(D.parameters(), 1e-4)
    return build_objective({"name": "fastgan", "recon_loss": "l1", **spec}, G, D, opt_g, opt_d)


def test_z_norm_rms_is_the_seeds_normalize_2nd_moment():
    seen = {}
    for z_norm in ("none", "rms"):
        G, _ = build_models("fastgan", {**TINY, "z_norm": z_norm}, 32, 1, 1)
        G.init.register_forward_hook(lambda m, inp, out, k=z_norm: seen.__setitem__(k, inp[0].flatten(1)))
        z = torch.randn(5, 8) * 3
        G.eval()
        G(z)
        # the seed: x * rsqrt(mean(x^2, axis=1) + 1e-8), written out independently
        expected = z / torch.sqrt((z ** 2).sum(1, keepdim=True) / z.shape[1] + 1e-8)
        assert torch.allclose(seen[z_norm], expected if z_norm == "rms" else z, atol=1e-6)
    assert torch.allclose(seen["rms"].pow(2).mean(1), torch.ones(5), atol=1e-5)


@pytest.mark.parametrize("init", ["normal", "orthogonal"])
def test_init_switch_orthogonal_kernels_or_fastgan_normal(init):
    from torch.nn.utils import parametrize
    G, D = build_models("fastgan", {**TINY, "ngf": 16, "ndf": 16, "init": init}, 32, 1, 1)
    convs = [m for net in (G, D) for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    bns = [m for net in (G, D) for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    checked = 0
    for m in convs:
        w = m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight") else m.weight
        flat = w.detach().reshape(w.shape[0], -1)  # Conv2d: (out, in k k); ConvTranspose2d: (in, out k k)
        if init == "orthogonal":
            small, big = sorted(flat.shape)
            gram = flat @ flat.T if flat.shape[0] == small else flat.T @ flat
            assert torch.allclose(gram, torch.eye(small), atol=1e-4), m
            checked += 1
        else:
            assert abs(flat.std().item() - 0.02) < 0.01 and abs(flat.mean().item()) < 0.01
    assert checked == (len(convs) if init == "orthogonal" else 0)
    scales = torch.cat([b.weight.detach() for b in bns])
    if init == "orthogonal":  # Keras BatchNormalization defaults: gamma 1, beta 0
        assert torch.equal(scales, torch.ones_like(scales))
    else:  # FastGAN: N(1, 0.02)
        assert not torch.equal(scales, torch.ones_like(scales)) and (scales - 1).abs().max() < 0.15
    assert all(torch.equal(b.bias, torch.zeros_like(b.bias)) for b in bns)


def test_init_layer_sn_switch():
    from torch.nn.utils import parametrize
    on, _ = build_models("fastgan", TINY, 32, 1, 1)
    off, _ = build_models("fastgan", {**TINY, "init_layer_sn": False}, 32, 1, 1)
    assert parametrize.is_parametrized(on.init[0], "weight") and not parametrize.is_parametrized(off.init[0], "weight")
    assert parametrize.is_parametrized(off.to_img[0], "weight")  # only the input layer loses it


def test_d_head_seed_is_conv4_lrelu_conv1_without_batch_norm():
    for head, kinds in [("fastgan", [torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.LeakyReLU, torch.nn.Conv2d]),
                        ("seed", [torch.nn.Conv2d, torch.nn.LeakyReLU, torch.nn.Conv2d])]:
        _, D = build_models("fastgan", {**TINY, "d_head": head}, 64, 1, 1)
        assert [next(c for c in kinds if isinstance(m, c)) for m in D.rf] == kinds
        c = 8 * TINY["ndf"]
        if head == "seed":
            assert (D.rf[0].in_channels, D.rf[0].out_channels, D.rf[0].kernel_size) == (c, c, (4, 4))
            assert (D.rf[2].out_channels, D.rf[2].kernel_size) == (1, (1, 1))
        assert D(torch.zeros(2, 1, 64, 64)).shape == (2,)
        assert D.patch_logits(D.features(torch.zeros(2, 1, 64, 64))).shape == (2, 25)


def test_dec_widths_seed_halves_from_the_input_maps_channels():
    def up_widths(dec):  # each up-block's conv makes 2 x width channels (GLU halves them)
        return [blk[1].out_channels // 2 for blk in dec if isinstance(blk, torch.nn.Sequential)]
    _, D = build_models("fastgan", {**TINY, "ndf": 16, "n_decoders": 3, "dec_widths": "seed"}, 256, 3, 1)
    # the seed at filters 128: decoder(128), decoder(64), decoder(32), up-blocks f, f/2, f/4, f/8
    assert {k: up_widths(d) for k, d in D.decoders.items()} == {
        "whole": [128, 64, 32, 16], "part": [64, 32, 16, 8], "center": [32, 16, 8, 4]}
    _, D = build_models("fastgan", {**TINY, "n_decoders": 3, "dec_ch": 32}, 256, 3, 1)
    assert all(up_widths(d) == [128, 64, 64, 32] for d in D.decoders.values())  # FastGAN's SimpleDecoder


def test_ema_off_samples_and_saves_the_live_generator():
    obj = _objective(ema=False)
    real = torch.rand(4, 1, 32, 32) * 2 - 1
    obj.d_step(real, None)
    obj.g_step(real, None)
    assert obj.eval_G is obj.G and "G_ema" not in obj.state_dict()
    on = _objective(ema=True)
    assert on.eval_G is not on.G and "G_ema" in on.state_dict()


def _d_inputs(obj, real, steps=1):
    """What D's features() saw for the real batch and the recon targets it was scored against."""
    seen = {"real": [], "targets": [], "parts": []}
    features, targets = obj.D.forward_with_recons, obj.D.recon_targets

    def fwr(x, part):
        seen["real"].append(x.detach().clone())
        seen["parts"].append(part)
        return features(x, part)

    def rt(x, part):
        out = targets(x, part)
        seen["targets"].append({k: v.detach().clone() for k, v in out.items()})
        return out
    obj.D.forward_with_recons, obj.D.recon_targets = fwr, rt
    for _ in range(steps):
        obj.d_step(real, None)
    return seen


def test_hflip_mirrors_about_half_the_real_images_and_off_leaves_them():
    real = torch.rand(64, 1, 32, 32) * 2 - 1
    seen = _d_inputs(_objective(policy="", hflip=True), real)["real"][0]
    same = [torch.equal(seen[i], real[i]) for i in range(64)]
    mirrored = [torch.equal(seen[i], real[i].flip(-1)) for i in range(64)]
    assert all(a or b for a, b in zip(same, mirrored)) and 16 < sum(mirrored) < 48
    assert torch.equal(_d_inputs(_objective(policy="", hflip=False), real)["real"][0], real)


def test_recon_target_clean_is_cut_from_the_image_before_diffaugment():
    real = torch.rand(4, 1, 32, 32) * 2 - 1
    for target in ("clean", "augmented"):
        obj = _objective(policy="translation", hflip=False, recon_target=target, n_decoders=1)
        seen = _d_inputs(obj, real)
        source = real if target == "clean" else seen["real"][0]
        assert not torch.equal(seen["real"][0], real)  # D did see a translated image
        assert torch.equal(seen["targets"][0]["whole"], obj.D.recon_targets(source, 0)["whole"])


def test_part_per_run_keeps_one_quadrant_and_per_step_redraws():
    real = torch.rand(2, 1, 32, 32) * 2 - 1
    run = _d_inputs(_objective(part_per="run"), real, steps=12)["parts"]
    step = _d_inputs(_objective(part_per="step"), real, steps=12)["parts"]
    assert len(set(run)) == 1 and len(set(step)) > 1
    obj = _objective(part_per="run", ema=False)
    other = _objective(part_per="run", ema=False)
    other.run_part = (obj.run_part + 1) % 4
    other.load_state_dict(obj.state_dict())  # a resumed run keeps its quadrant
    assert other.run_part == obj.run_part


def test_the_seed_critic_widths_are_ndf_16_and_fastgan_ref_builds_them():
    """The seed's Discriminator(filters=128) (Vrije model3.py:236-256): 4, 8, 16, 32, 64, 128 channels at
    256 .. 8 px, the paper's "f_2 (Bx16x16x64)" and "f_3 Bx32x32x32"; FastGAN at ndf 64: 512 at 8x8."""
    from conftest import ROOT
    from ganrepro.config import load_params
    from ganrepro.models import MODELS
    seed = {256: 4, 128: 8, 64: 16, 32: 32, 16: 64, 8: 128}
    _, D = build_models("fastgan", {**TINY, "ndf": 16}, 256, 3, 1)
    with torch.no_grad():
        feats = D.features(torch.zeros(1, 3, 256, 256))
    assert {s: f.shape[1] for s, f in feats.items()} == seed
    params = load_params(ROOT / "params.yaml")
    ref = params.models["fastgan_ref"]
    arch = MODELS.get("fastgan").Arch(**ref.arch)
    assert (arch.ndf, arch.init, arch.z_norm, arch.d_head, arch.dec_widths, arch.init_layer_sn) == (
        16, "orthogonal", "rms", "seed", "seed", False)
    assert {k: ref.objective[k] for k in ("ema", "hflip", "recon_target", "part_per")} == {
        "ema": False, "hflip": True, "recon_target": "clean", "part_per": "run"}
    for m in ("fastgan_m1", "fastgan_m2", "fastgan_m3"):  # the paper's text: 64 channels at 16x16 (Sec. 4)
        assert params.models[m].arch["ndf"] == 16
