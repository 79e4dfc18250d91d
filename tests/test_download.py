"""The downloader against a real HTTP server on 127.0.0.1 serving archives the test builds."""
from __future__ import annotations

import hashlib
import http.server
import io
import shutil
import tarfile
import threading
from functools import partial
from pathlib import Path

import pytest

from conftest import ASSETS
from ganrepro.data.datasets import DATASETS, download_manifest
from ganrepro.data.download import ChecksumError, DownloadError, extract, fetch_url


class TruncatingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files; /truncated/<name> promises the whole file but sends half, then hangs up."""

    def do_GET(self):
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
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(TruncatingHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


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
