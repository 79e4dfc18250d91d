"""KID and Inception Score against independent numpy references, and the IS logit backends."""
import numpy as np
import pytest
import torch

from ganrepro.metrics import features
from ganrepro.metrics import inception_score as isc
from ganrepro.metrics.digit_classifier import DigitClassifier
from ganrepro.metrics.kid import kid


def reference_mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b/d + 1)^3, written out term by term."""
    m, d = x.shape
    k = lambda a, b: (a @ b.T / d + 1.0) ** 3  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    off = ~np.eye(m, dtype=bool)
    return float(kxx[off].sum() / (m * (m - 1)) + kyy[off].sum() / (m * (m - 1)) - 2 * kxy.mean())


def reference_is(logits: np.ndarray) -> float:
    """exp(mean_i KL(p(y|x_i) || p(y))), one split."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    py = p.mean(axis=0)
    return float(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(py)), axis=1))))


# --- KID ---------------------------------------------------------------------------------

def test_kid_with_one_full_subset_matches_the_direct_unbiased_mmd():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 5)), rng.normal(0.3, 1.2, size=(60, 5))
    out = kid(x, y, subsets=1, subset_size=60, seed=3)
    assert out["value"] == pytest.approx(reference_mmd2_unbiased(x, y), rel=1e-6)
    assert out["std"] == 0.0


def test_kid_is_near_zero_for_one_distribution_and_positive_for_a_shift():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    same = kid(x, y, subsets=20, subset_size=200)["value"]
    shifted = kid(x, y + 1.0, subsets=20, subset_size=200)["value"]
    assert shifted > 0.1
    assert abs(same) < 0.02 * shifted


def test_kid_clamps_the_subset_size_and_records_the_protocol():
    rng = np.random.default_rng(2)
    out = kid(rng.normal(size=(50, 4)), rng.normal(size=(30, 4)), subsets=5, subset_size=1000)
    assert out["protocol"] == {
        "subsets": 5, "subset_size": 30, "kernel": "polynomial degree 3, gamma 1/d, coef0 1",
        "estimator": "unbiased MMD^2 (torch-fidelity)",
    }
    assert set(out) == {"value", "std", "protocol"}


def test_kid_rejects_mismatched_widths():
    with pytest.raises(ValueError, match="widths"):
        kid(np.zeros((10, 3)), np.zeros((10, 4)))


# --- Inception Score -----------------------------------------------------------------------

def test_uniform_logits_give_an_inception_score_of_one():
    out = isc.inception_score(np.zeros((50, 7)), splits=5)
    assert out["value"] == pytest.approx(1.0, abs=1e-12)
    assert out["std"] == pytest.approx(0.0, abs=1e-12)
    assert out["protocol"] == {"splits": 5, "n": 50, "classes": 7}


def test_confident_logits_spread_over_all_classes_give_the_class_count():
    classes = 12
    labels = np.tile(np.arange(classes), 5)
    logits = 100.0 * np.eye(classes)[labels]
    assert isc.inception_score(logits, splits=1)["value"] == pytest.approx(classes, rel=1e-9)


def test_inception_score_matches_the_numpy_kl_formula():
    logits = np.random.default_rng(3).normal(0, 2.0, size=(300, 10))
    out = isc.inception_score(torch.from_numpy(logits).float(), splits=1)
    assert out["value"] == pytest.approx(reference_is(logits.astype(np.float32).astype(np.float64)), rel=1e-6)


def test_inception_score_needs_at_least_as_many_samples_as_splits():
    with pytest.raises(ValueError, match=r"\b4 samples.*\b10 splits"):
        isc.inception_score(np.zeros((4, 3)), splits=10)


# --- logit backends ------------------------------------------------------------------------

@pytest.fixture
def random_classifier(tmp_path, monkeypatch):
    torch.manual_seed(0)
    net = DigitClassifier().eval()
    file = tmp_path / "digit_classifier.pt"
    torch.save(net.state_dict(), file)
    monkeypatch.setattr(features, "DIGIT_CLASSIFIER", file)
    return net, file


def test_digit_classifier_logits_have_ten_classes_for_rgb_and_grey(random_classifier):
    net, file = random_classifier
    backend = isc.LOGITS.get("digit_classifier")(torch.device("cpu"))
    rgb = torch.rand(4, 3, 32, 32) * 2 - 1
    grey = torch.rand(5, 1, 28, 28) * 2 - 1
    assert backend(rgb).shape == (4, 10) and backend(grey).shape == (5, 10)
    with torch.no_grad():
        np.testing.assert_allclose(backend(grey), net(grey).double().numpy(), rtol=1e-6)
    p = backend.protocol()
    assert p["backend"] == "digit_classifier" and p["dims"] == 10 and p["weights"] == file.name
    assert len(p["weights_sha256"]) == 64
    assert isc.logits_missing("digit_classifier") is None


def test_digit_classifier_backend_names_a_missing_file(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / "digit_classifier.pt"
    monkeypatch.setattr(features, "DIGIT_CLASSIFIER", missing)
    assert isc.logits_missing("digit_classifier") == missing
    with pytest.raises(features.MissingWeightsError, match="nowhere") as err:
        isc.LOGITS.get("digit_classifier")(torch.device("cpu"))
    assert err.value.file == missing


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # a set_dir() elsewhere would override TORCH_HOME
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    return tmp_path


def test_inception_backend_names_the_missing_pytorch_fid_weights(empty_torch_home):
    expected = empty_torch_home / "hub" / "checkpoints" / features.INCEPTION_FILE
    assert isc.logits_missing("inception") == expected
    with pytest.raises(features.MissingWeightsError, match="pt_inception-2015-12-05-6726825d.pth") as err:
        isc.LOGITS.get("inception")(torch.device("cpu"))
    assert err.value.file == expected
    assert "Inception Score" in str(err.value)


def test_inception_logits_are_pool3_times_fc_weight_without_the_bias():
    """Wiring on the random-init architecture: no weights file is involved."""
    torch.manual_seed(0)
    net = isc.fid_inception_net().eval()
    with torch.no_grad():
        net.fc.bias.normal_()  # a non-zero bias, so leaving it out is visible
        x = isc.inception_input(torch.rand(2, 1, 32, 32) * 2 - 1)
        logits = isc.inception_logits(net, x)
        with_bias = net(x)  # torchvision's forward: the same layers, then fc with its bias
    assert x.shape == (2, 3, 299, 299) and logits.shape == (2, isc.INCEPTION_CLASSES) == (2, 1008)
    torch.testing.assert_close(logits + net.fc.bias, with_bias, rtol=1e-4, atol=1e-4)


def test_inception_logit_backend_on_the_real_weights():
    missing = isc.logits_missing("inception")
    if missing is not None:
        pytest.skip(f"pytorch-fid Inception weights not on this machine: {missing}")
    backend = isc.LOGITS.get("inception")(torch.device("cpu"))
    out = backend(torch.rand(2, 1, 32, 32) * 2 - 1)
    assert out.shape == (2, 1008)
    assert backend.protocol()["weights"] == features.INCEPTION_FILE
