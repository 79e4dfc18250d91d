"""The offline feature net and LPIPS stand-in on real digits; the real metrics where weights exist."""
import os
from pathlib import Path

import pytest
import torch

from ganrepro import evaluation, paths
from ganrepro.config import FeatureNetConfig
from ganrepro.data.datasets import DATASETS
from ganrepro.data.preprocess import load_processed, preprocess
from ganrepro.metrics import fid
from ganrepro.metrics.digit_classifier import train_classifier
from ganrepro.metrics.features import INCEPTION_FILE, MissingWeightsError, build_backend, hub_file
from ganrepro.metrics.lpips import ALEXNET_FILE, LPIPS


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    DATASETS.get("mnist5k").download(root / "raw")
    return load_processed(preprocess("mnist5k", root / "raw", root, 28))


@pytest.fixture(scope="module")
def feature_net(digits, tmp_path_factory):
    """A digit classifier trained for one epoch, saved where the backend looks for it."""
    folder = tmp_path_factory.mktemp("work")
    cfg = FeatureNetConfig(epochs=1, batch_size=64, lr=1e-3, holdout=500, seed=0)
    net, metrics = train_classifier(digits["images"], digits["labels"], cfg)
    old = Path.cwd()
    os.chdir(folder)
    paths.FEATURE_NETS.mkdir(parents=True)
    torch.save(net.state_dict(), paths.FEATURE_NETS / "digit_classifier.pt")
    yield net, metrics
    os.chdir(old)


def test_the_digit_classifier_learns_real_digits(feature_net):
    _, metrics = feature_net
    assert metrics["holdout_accuracy"] > 0.85 and metrics["n_holdout"] == 500


def test_digit_fid_separates_real_digits_from_noise(feature_net, digits):
    backend = build_backend("digit_classifier", 2048, torch.device("cpu"))
    assert backend.dims == 128 and backend.protocol()["weights_sha256"]
    imgs = digits["images"]
    real_a = fid.extract(backend, fid.real_batches(imgs[0::2], 250), 2500, "a")  # the file is sorted by class
    real_b = fid.extract(backend, fid.real_batches(imgs[1::2], 250), 2500, "b")
    noise = fid.extract(backend, iter([torch.rand(2500, 1, 28, 28) * 2 - 1]), 2500, "noise")
    mu, sigma = fid.gaussian_stats(real_a)
    assert fid.fid_against(mu, sigma, real_b) * 10 < fid.fid_against(mu, sigma, noise)


def test_lpips_digit_is_a_distance(feature_net, digits):
    dist, protocol = LPIPS.get("lpips_digit")(torch.device("cpu"))
    x = digits["images"][:8].float() / 127.5 - 1
    y = digits["images"][8:16].float() / 127.5 - 1
    assert torch.allclose(dist(x, x), torch.zeros(8), atol=1e-6)
    assert (dist(x, y) > 0).all() and torch.allclose(dist(x, y), dist(y, x), atol=1e-6)
    assert protocol["backend"] == "lpips_digit"


def test_optional_backends_without_weights_are_skipped_with_the_reason(tmp_path):
    missing = lambda name: tmp_path / "w.pth" if name == "inception" else None  # noqa: E731
    run, skipped = evaluation.backends_to_run(["digit_classifier"], ["inception"], missing)
    assert run == ["digit_classifier"] and skipped == {"inception": {"skipped": "weights not found: w.pth (README: Pretrained weights)"}}


def test_a_required_backend_without_weights_fails_naming_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError, match=rf"{tmp_path}/hub/checkpoints/{INCEPTION_FILE} not found; download https://"):
        build_backend("inception", 2048, torch.device("cpu"))


@pytest.mark.skipif(not hub_file(INCEPTION_FILE).exists(), reason=f"{INCEPTION_FILE} not in $TORCH_HOME/hub/checkpoints")
def test_real_inception_fid_runs_on_the_cached_weights(digits):
    backend = build_backend("inception", 64, torch.device("cpu"))
    a = fid.extract(backend, fid.real_batches(digits["images"][:100], 50), 100, "a")
    assert a.shape == (100, 64)
    mu, sigma = fid.gaussian_stats(a)
    assert fid.fid_against(mu, sigma, a) == pytest.approx(0, abs=1e-3)


@pytest.mark.skipif(not hub_file(ALEXNET_FILE).exists(), reason=f"{ALEXNET_FILE} not in $TORCH_HOME/hub/checkpoints")
def test_real_lpips_runs_on_the_cached_backbone(digits):
    dist, _ = LPIPS.get("lpips_alex")(torch.device("cpu"))
    x = digits["images"][:4].float() / 127.5 - 1
    assert torch.allclose(dist(x, x), torch.zeros(4), atol=1e-5) and (dist(x, x.flip(0)) > 0).all()


def test_evaluate_reports_fid_kid_is_lpips_and_the_fid_curve(feature_net, digits, tmp_path, mlflow_store):
    """A tiny DCGAN trained on the digits, evaluated as the stage does, with every metric's protocol."""
    from conftest import tiny_run
    from ganrepro.config import EvalConfig, TrainSettings
    from ganrepro.tracking import Tracker
    from ganrepro.training.loop import train

    run = tiny_run(steps=4, train=TrainSettings(log_every=1, sample_every=9, n_samples=4, snapshots=2))
    images = torch.nn.functional.interpolate(digits["images"][:600].float(), size=32).to(torch.uint8)
    processed = {"images": images, "labels": digits["labels"][:600], "n_classes": 10}
    for cfg, out in ((run, "run"), (run.model_copy(update={"seed": 1}), "seed1")):  # two training seeds
        with Tracker(out, stage="train", profile="quick") as tracker:
            train(cfg, processed, tmp_path / out, tracker)
    cfg = EvalConfig.model_validate({
        "fid": {"backends": ["digit_classifier"], "n_real": 500, "n_fake": 200, "paper_n_fake": 50,
                "curve_n_fake": 100, "batch_size": 100, "kid_subsets": 5, "kid_subset_size": 50, "kid_n_real": 300},
        "lpips": {"backends": ["lpips_digit"], "n_pairs": 20},
        "inception_score": {"backends": ["digit_classifier"], "optional_backends": ["inception"], "n_fake": 100, "splits": 5},
    })
    res = evaluation.evaluate(run, processed, tmp_path / "run" / "checkpoint.pt", cfg, torch.device("cpu"),
                              other_seeds=[tmp_path / "seed1" / "checkpoint.pt"])
    fid_ = res["fid"]["digit_classifier"]
    assert fid_["value"] > 0 and fid_["protocol"]["n_fake"] == 200 and fid_["protocol"]["n_real"] == 500
    assert res["fid_paper_n"]["digit_classifier"]["protocol"]["n_fake"] == 50
    kid = res["kid"]["digit_classifier"]
    assert kid["protocol"]["n_real"] == 300 and kid["protocol"]["subset_size"] == 50 and kid["std"] >= 0
    assert 1 <= res["inception_score"]["digit_classifier"]["value"] <= 10  # at most the 10 classes
    assert "skipped" in res["inception_score"]["inception"]
    assert res["lpips_real_fake"]["lpips_digit"]["protocol"]["pairs"] == "real x independent fake"
    snaps = sorted((tmp_path / "run" / "snapshots").glob("*.pt"))
    curve = evaluation.fid_curve(run, processed, snaps, cfg, torch.device("cpu"))
    assert list(curve.columns) == ["step", "fid_digit_classifier"] and list(curve.step) == [2, 4]
    assert (curve.fid_digit_classifier > 0).all()
    spread = res["fid_seeds"]["digit_classifier"]
    assert spread["n"] == 2 and spread["values"][0] == fid_["value"] and spread["values"][1] != fid_["value"]
    assert spread["std"] == pytest.approx(abs(spread["values"][0] - spread["values"][1]) / 2 ** 0.5, rel=1e-3)


def test_sample_mode_train_samples_with_each_batch_s_batchnorm_statistics(tmp_path):
    """eval.sample_mode: `eval` uses BatchNorm's running statistics, so an image does not depend on the
    others in its batch; `train` (pytorch/examples dcgan, heykeetae) normalises by each sampled batch,
    checked against BatchNorm's formula applied by hand to the first BN layer's input."""
    from conftest import tiny_run
    from ganrepro.models import build_models
    from ganrepro.utils import save_torch

    run = tiny_run()
    G, _ = build_models(run.family, run.arch, run.img_size, 1, 10)
    with torch.no_grad():  # running statistics far from any batch's, so the two modes differ visibly
        for m in G.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.fill_(0.5), m.running_var.fill_(4.0)
    path = tmp_path / "ckpt.pt"
    save_torch(path, {"G": G.state_dict()})
    z = torch.randn(8, run.arch["z_dim"], generator=torch.Generator().manual_seed(0))
    outs = {}
    for mode in ("eval", "train"):
        g = evaluation.load_generator(run, path, 1, 10, torch.device("cpu"), mode)
        assert all(m.training == (mode == "train") for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d))
        with torch.no_grad():
            outs[mode] = (g(z), g(z[:4]))
    assert torch.allclose(outs["eval"][0][:4], outs["eval"][1], atol=1e-6)  # eval: batch-independent
    assert not torch.allclose(outs["train"][0][:4], outs["train"][1], atol=1e-3)  # train: depends on the batch
    # train mode's first BatchNorm by hand: (x - batch mean) / sqrt(batch var + eps) * weight + bias
    g = evaluation.load_generator(run, path, 1, 10, torch.device("cpu"), "train")
    bn = next(m for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen = {}
    bn.register_forward_hook(lambda m, inp, out: seen.update(x=inp[0].clone(), y=out.clone()))  # before the in-place ReLU
    with torch.no_grad():
        g(z)
    x = seen["x"]
    mean, var = x.mean((0, 2, 3), keepdim=True), x.var((0, 2, 3), unbiased=False, keepdim=True)
    by_hand = (x - mean) / torch.sqrt(var + bn.eps) * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
    assert torch.allclose(seen["y"], by_hand, atol=1e-5)
