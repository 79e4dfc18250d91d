"""The paper dry run (ganrepro.dryrun): its fixtures are read by torchvision's own classes and by our
datasets exactly as the real downloads would be, its overrides change only counts, and (slow) the
orchestrator runs the paper profile's whole DAG on the biggest runs."""
from __future__ import annotations

import gzip
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from ganrepro import pipeline, records
from ganrepro.config import Params, eval_config
from ganrepro.data.datasets import DATASETS, TORCHVISION_SETS, load_manifest, md5_checks
from ganrepro.data.download import cut_network
from ganrepro.dryrun import BANNER, OVERRIDES, fixtures, run
from ganrepro.dryrun.serve import serve


def load() -> Params:
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["profile"] = "paper"
    return Params.model_validate(data)


# ---------------------------------------------------------------- the overrides
def test_the_overrides_change_counts_only_never_architectures_sizes_or_protocols(tmp_path):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    kept = run.write_params(tmp_path, None)  # as the orchestrator writes the workspace's params.yaml
    dry = Params.model_validate(yaml.safe_load((tmp_path / "params.yaml").read_text()))
    paper = load()
    assert dry.profile == "paper" and kept == list(paper.runs)
    prof = dry.active
    assert prof.dry_run and not prof.verify_downloads and prof.device == "cpu" and prof.seeds == 1 and prof.steps == 2
    for name in [pipeline.EXPERIMENT, *paper.runs]:
        a, b = pipeline.run(paper, name), pipeline.run(dry, name)
        same = {"family", "arch", "objective", "img_size", "batch_size", "lr_g", "lr_d", "betas", "data"}
        assert {k: getattr(a, k) for k in same} == {k: getattr(b, k) for k in same}, name
        assert b.steps == 2 and b.epochs is None and b.device == "cpu"
        ea, eb = eval_config(paper, name), eval_config(dry, name)
        for metric in ("fid", "lpips", "inception_score"):
            assert getattr(ea, metric).backends == getattr(eb, metric).backends, (name, metric)
            assert getattr(ea, metric).optional_backends == getattr(eb, metric).optional_backends
        assert ea.fid.dims == eb.fid.dims and ea.fid.paper_n_fake == eb.fid.paper_n_fake
    assert eval_config(dry, "deq_pokemon_3b_lr1e4").fid.dims == 64
    assert eval_config(dry, "fastgan_m1_vangogh").fid.backends == ["inception"]


def test_runs_cut_to_the_ones_asked_and_an_unknown_run_is_named(tmp_path):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    assert run.write_params(tmp_path, ["began_celeba_g05"]) == ["began_celeba_g05"]
    assert list(yaml.safe_load((tmp_path / "params.yaml").read_text())["runs"]) == ["began_celeba_g05"]
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    with pytest.raises(run.DryRunError, match="unknown run 'began_celebA'"):
        run.write_params(tmp_path, ["began_celebA"])


def test_every_dataset_of_the_paper_profile_has_a_fixture_with_a_full_largest_batch():
    paper = load()
    for name in pipeline.datasets(paper):
        assert fixtures.has_fixture(name) or DATASETS.get(name).offline, name
    largest = max(r.batch_size for r in pipeline.runs(paper))
    assert fixtures.N_IMAGES >= largest
    dry = OVERRIDES["eval"]
    assert fixtures.N_IMAGES >= max(dry["fid"]["n_real"], dry["lpips"]["n_pairs"])


def test_a_folder_that_is_not_a_dry_run_workspace_is_not_emptied(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(run.DryRunError, match="not a dry-run workspace"):
        run.fresh_folder(tmp_path, ROOT)
    assert (tmp_path / "mine.txt").exists()
    with pytest.raises(run.DryRunError, match="contain the project"):
        run.fresh_folder(ROOT.parent, ROOT)


# ---------------------------------------------------------------- torchvision fixtures
TV_SPLITS = {  # name -> (class kwargs as ganrepro.data.datasets opens them, training images, other splits to open)
    "mnist": ({"train": True}, fixtures.N_IMAGES, [{"train": False}]),
    "fashion_mnist": ({"train": True}, fixtures.N_IMAGES, [{"train": False}]),
    "cifar10": ({"train": True}, 65, [{"train": False}]),
    "celeba": ({"split": "all", "target_type": "identity"}, fixtures.N_IMAGES,
               [{"split": s, "target_type": ["attr", "identity", "bbox", "landmarks"]} for s in ("train", "valid", "test")]),
}


@pytest.mark.parametrize("name", sorted(TORCHVISION_SETS))
def test_torchvision_reads_each_fixture_with_its_own_class(name, tmp_path):
    import torchvision.datasets as tvd

    raw = tmp_path / name
    fixtures.build(name, tmp_path, tmp_path / "manifests", tmp_path / "served", "http://unused")
    cls = getattr(tvd, TORCHVISION_SETS[name])
    kwargs, n, others = TV_SPLITS[name]
    spec = DATASETS.get(name)
    with md5_checks(cls, verify=False):  # only md5s are skipped: every file must exist where torchvision looks
        ds = cls(root=str(raw), download=False, **kwargs)
        assert len(ds) == n
        img, _ = ds[0]
        assert img.mode == ("L" if spec.channels == 1 else "RGB")
        assert img.size == {"celeba": (178, 218), "cifar10": (32, 32)}.get(name, (28, 28))
        opened = [cls(root=str(raw), download=False, **kw) for kw in others]
        assert sum(len(d) for d in opened) == (n if name == "celeba" else fixtures.N_TEST)
        if name == "celeba":
            x, (attr, identity, bbox, landmarks) = opened[0][0]
            assert attr.shape == (40,) and set(attr.tolist()) <= {0, 1} and bbox.shape == (4,) and landmarks.shape == (10,)
            assert len(opened[0].attr_names) == 40
        if name == "cifar10":
            assert ds.classes == fixtures.CIFAR_CLASSES and ds.data.shape == (n, 32, 32, 3)
    with cut_network() as attempts:  # the download stage finds the set complete: no network at all
        spec.download(raw, verify=False)
    assert attempts == []
    images = list(spec.iter_images(raw, verify=False))
    assert len(images) == n and {im.size for im, _ in images} == {img.size}
    labels = {label for _, label in images}
    assert labels <= set(range(spec.n_classes))
    if name in ("cifar10", "celeba"):  # with md5 checks on (a real run) torchvision refuses the synthetic files
        with pytest.raises(FileNotFoundError, match="missing or corrupted"):
            next(spec.iter_images(raw))


def test_the_idx_files_are_big_endian_ubyte_beside_their_gz(tmp_path):
    fixtures.build("mnist", tmp_path, tmp_path, tmp_path, "http://unused")
    folder = tmp_path / "mnist" / "MNIST" / "raw"
    names = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}
    assert {p.name for p in folder.iterdir()} == names | {f"{n}.gz" for n in names}
    data = (folder / "train-images-idx3-ubyte").read_bytes()
    assert data[:4] == b"\x00\x00\x08\x03" and int.from_bytes(data[4:8], "big") == fixtures.N_IMAGES
    assert data[8:16] == (28).to_bytes(4, "big") * 2 and len(data) == 16 + fixtures.N_IMAGES * 784
    labels = (folder / "train-labels-idx1-ubyte").read_bytes()
    assert labels[:4] == b"\x00\x00\x08\x01" and len(labels) == 8 + fixtures.N_IMAGES
    for n in names:
        assert gzip.decompress((folder / f"{n}.gz").read_bytes()) == (folder / n).read_bytes()


def test_the_cifar_batches_and_celeba_lists_have_the_real_layout(tmp_path):
    fixtures.build("cifar10", tmp_path, tmp_path, tmp_path, "http://unused")
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    with open(folder / "data_batch_1", "rb") as f:
        batch = pickle.load(f, encoding="latin1")
    assert set(batch) == {"batch_label", "labels", "data", "filenames"}
    assert batch["data"].dtype.name == "uint8" and batch["data"].shape[1] == 3072
    with open(folder / "batches.meta", "rb") as f:
        assert pickle.load(f, encoding="latin1")["label_names"][0] == "airplane"
    fixtures.build("celeba", tmp_path, tmp_path, tmp_path, "http://unused")
    base = tmp_path / "celeba" / "celeba"
    attr = (base / "list_attr_celeba.txt").read_text().splitlines()
    assert attr[0] == str(fixtures.N_IMAGES) and attr[1].split()[0] == "5_o_Clock_Shadow" and len(attr[1].split()) == 40
    assert attr[2].startswith("000001.jpg ") and len(attr[2].split()) == 41
    assert (base / "list_eval_partition.txt").read_text().splitlines()[0] == "000001.jpg 0"
    assert (base / "list_bbox_celeba.txt").read_text().splitlines()[1] == "image_id x_1 y_1 width height"
    assert len(list((base / "img_align_celeba").glob("*.jpg"))) == fixtures.N_IMAGES


# ---------------------------------------------------------------- manifest fixtures, over HTTP
@pytest.mark.parametrize("name", sorted(fixtures.MANIFEST_SETS))
def test_manifest_fixtures_download_over_local_http_with_real_sha256_checks(name, tmp_path, monkeypatch):
    real = load_manifest(name)
    with serve(tmp_path / "served") as url:
        fixtures.build(name, tmp_path / "raw", tmp_path / "manifests", tmp_path / "served", url)
        monkeypatch.setenv("GANREPRO_MANIFESTS", str(tmp_path / "manifests"))
        ours = load_manifest(name)
        assert set(real) <= set(ours) and ours["name"] == name
        if real["files"]:
            by_path = {f["path"]: f for f in real["files"]}
            for f in ours["files"]:  # the real manifest's paths and URL paths; only the host differs
                assert f["path"] in by_path and f["url"].startswith(url)
                assert f["url"].split("/", 3)[3] == by_path[f["path"]]["url"].split("://", 1)[1]
            assert len(ours["files"]) == fixtures.N_IMAGES
        else:
            assert ours["archive"]["format"] == real["archive"]["format"] and ours["archive"]["url"].startswith(url)
        spec = DATASETS.get(name)
        spec.download(tmp_path / "raw" / name)  # verify=True: every file sha256-checked, as a real run
    images = list(spec.iter_images(tmp_path / "raw" / name))
    assert len(images) == fixtures.N_IMAGES
    modes = {im.mode for im, _ in images}
    if name == "pokemon":
        assert modes == {"RGBA", "P"} and {im.size for im, _ in images} == {(96, 96), (128, 128)}
    if name == "vangogh":
        assert "RGBA" in modes and "RGB" in modes and len({im.size for im, _ in images}) > 10


def test_each_torchvision_dataset_is_probed_to_its_first_url():
    probes = run.probe_downloads(["mnist5k", "mnist", "cifar10", "celeba", "pokemon"])
    assert set(probes) == {"mnist", "cifar10", "celeba"}
    assert probes["celeba"].startswith("https://drive.google.com/")
    assert probes["cifar10"].endswith("cifar-10-python.tar.gz")


# ---------------------------------------------------------------- end to end (slow)
BIGGEST = {  # run -> (img_size, batch_size, FID dims): FastGAN 256px, BEGAN 64px (n = 128), DEQ 3 branches (FID-64)
    "fastgan_m1_vangogh": (256, 8, 2048),
    "began_celeba_g05": (64, 16, 2048),
    "deq_pokemon_3b_lr1e4": (64, 1, 64),
}


@pytest.mark.slow
def test_the_dry_run_runs_every_stage_of_the_paper_profile_on_the_biggest_runs(tmp_path):
    ws, plan = tmp_path / "workspace", tmp_path / "paper-plan.md"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "GANREPRO_ROOT", "TORCH_HOME")}
    out = subprocess.run([sys.executable, "-m", "ganrepro.dryrun", "--runs", ",".join(BIGGEST), "--keep", str(ws),
                          "--plan", str(plan)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000)
    assert out.returncode == 0, f"dry run failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    summary = json.loads((ws / ".dryrun" / "summary.json").read_text())
    stages = run.FIXED_STAGES + [f"{s}@{r}" for r in BIGGEST for s in ("train_run", "evaluate_run")]
    assert set(summary["stage_seconds"]) == set(stages)
    assert summary["overrides"] == OVERRIDES and set(summary["probes"]) == {"celeba", "cifar10"}
    reports = ws / "reports"
    for page in ["index", "experiment", "runs", "dcgan-vs-sagan", "deq-gan", "began", "fastgan-decoders"]:
        assert BANNER.lower() in (reports / f"{page}.md").read_text().lower(), f"{page}.md has no dry-run banner"
    for name, (size, batch, dims) in BIGGEST.items():
        cfg = yaml.safe_load((ws / "data" / "runs" / name / "config.yaml").read_text())
        assert (cfg["img_size"], cfg["batch_size"], cfg["steps"], cfg["device"]) == (size, batch, 2, "cpu")
        assert records.read(reports / "metrics" / "train" / f"{name}.json", name)["steps"] == 2
        metrics = records.read(reports / "metrics" / "evaluate" / f"{name}.json", name)
        fid = metrics["fid"]["inception"]
        p = fid["protocol"]
        assert (p["backend"], p["dims"], p["weights"]) == ("inception", dims, "pt_inception-2015-12-05-6726825d.pth")
        assert p["resize"] == "bilinear to 299x299 (pytorch-fid)" and p["quantised"] == "uint8"
        assert p["n_real"] == OVERRIDES["eval"]["fid"]["n_real"] and p["n_fake"] == OVERRIDES["eval"]["fid"]["n_fake"]
        assert set(metrics["fid"]) == {"inception"} and "inception" in metrics["kid"]
        assert "value" in metrics["inception_score"]["inception"] and "value" in metrics["lpips_real_fake"]["lpips_alex"]
        curve = (reports / "plots" / f"{name}_fid.csv").read_text().splitlines()
        assert curve[0] == "step,fid_inception" and len(curve) == 1 + OVERRIDES["train"]["snapshots"]
    assert records.read(reports / "metrics" / "evaluate" / "fastgan_m1_vangogh.json", "fastgan_m1_vangogh"
                        )["fid_paper_n"]["inception"]["protocol"]["n_fake"] == 50
    profile = records.read(reports / "metrics" / "profile.json")
    assert set(profile) == {"experiment", *BIGGEST} and profile["fastgan_m1_vangogh"]["img_size"] == 256
    assert plan.stat().st_size > 0
