"""FID math against independent references (scipy's sqrtm, closed forms), and the stats cache."""
import numpy as np
import pytest
import scipy.linalg

from ganrepro.metrics import fid


def reference_fid(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def random_spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T + d * np.eye(d)


def test_frechet_distance_matches_scipy_sqrtm_on_known_gaussians():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = random_spd(rng, 6), random_spd(rng, 6)
    assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference_fid(mu1, s1, mu2, s2), rel=1e-6)


@pytest.mark.parametrize("d, n1, n2", [(256, 1000, 600), (256, 100, 40)])  # full rank; rank-deficient (N < d)
def test_frechet_distance_equals_pytorch_fids_function(d, n1, n2):
    """Our eigenvalue route to Tr((S1 S2)^(1/2)) against pytorch-fid's sqrtm, on low-rank-plus-noise
    features like a network's (the rank-deficient case is the paper dry run's and a small n_fake's)."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(0)
    basis = rng.normal(size=(d, 16))
    a = rng.normal(size=(n1, 16)) @ basis.T + 0.3 * rng.normal(size=(n1, d))
    b = 1.1 * rng.normal(size=(n2, 16)) @ basis.T + 0.3 * rng.normal(size=(n2, d)) + 0.05
    stats = [*fid.gaussian_stats(a), *fid.gaussian_stats(b)]
    assert fid.frechet_distance(*stats) == pytest.approx(calculate_frechet_distance(*stats), rel=1e-6)


def test_diagonal_gaussians_have_the_closed_form():
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    expected = 5.0 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()  # ||mu||^2 + sum (sqrt a - sqrt b)^2
    assert fid.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected)


def test_fid_of_a_sample_with_itself_is_zero_and_a_shift_adds_its_squared_norm():
    x = np.random.default_rng(1).normal(size=(2000, 8))
    mu, sigma = fid.gaussian_stats(x)
    assert fid.fid_against(mu, sigma, x) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([3.0, 0, 0, 0, 0, 0, 0, -4.0])
    assert fid.fid_against(mu, sigma, x + shift) == pytest.approx(25.0, rel=1e-6)


def test_gaussian_stats_use_the_unbiased_covariance():
    x = np.random.default_rng(2).normal(size=(50, 3))
    mu, sigma = fid.gaussian_stats(x)
    centred = x - x.mean(0)
    assert np.allclose(mu, x.mean(0)) and np.allclose(sigma, centred.T @ centred / 49)


class CountingBackend:
    name, calls = "fake", 0

    def __call__(self, x):
        self.calls += 1
        return x.flatten(1).double().numpy()[:, :4]

    def protocol(self):
        return {"backend": "fake", "dims": 4}


def test_real_stats_are_computed_once_then_read_from_the_cache(tmp_path):
    import torch

    images = torch.randint(0, 256, (40, 1, 4, 4), dtype=torch.uint8)
    backend, path = CountingBackend(), tmp_path / "stats.npz"
    mu1, s1, f1, proto = fid.real_stats(path, backend, images, n=30, batch_size=10, keep=12)
    assert backend.calls == 3 and proto == {"backend": "fake", "dims": 4, "n_real": 30}
    assert f1.shape == (12, 4) and f1.dtype == np.float32
    mu2, s2, f2, _ = fid.real_stats(path, backend, images, n=30, batch_size=10, keep=12)
    assert backend.calls == 3 and np.array_equal(mu1, mu2) and np.array_equal(s1, s2) and np.array_equal(f1, f2)
    fid.real_stats(path, backend, images, n=30, batch_size=10, keep=20)  # more kept features than cached
    assert backend.calls == 6
    assert [p.name for p in tmp_path.iterdir()] == ["stats.npz"]
