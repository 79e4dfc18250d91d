"""The reference rows (stage reference): the real-image floor and uniform noise, under the runs' protocol.

Samplers checked directly; the stage's FID checked against pytorch-fid's Frechet distance on the
same features; the rows' place on the pages checked on fixture metrics.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_fid.fid_score import calculate_frechet_distance

from conftest import fake_processed
from ganrepro import records
from ganrepro.evaluation import noise_sampler, real_sampler
from ganrepro.metrics import fid
from ganrepro.metrics.features import build_backend
from ganrepro.report.claims import Metrics, paper_tables
from test_corrupt_files import run_stage, trained  # noqa: F401  (a module fixture: trained project, fid_stats)
from test_tracking import use_project


def test_real_images_are_drawn_without_replacement_until_all_are_used():
    images = fake_processed(n=16)["images"]
    sample = real_sampler(images, seed=0)
    first, second = sample(10), sample(10)  # 16 distinct, then a new permutation
    as_levels = lambda x: ((x + 1) * 127.5).round().to(torch.uint8)  # noqa: E731
    rows = {tuple(im.flatten().tolist()) for im in as_levels(torch.cat([first, second[:6]]))}
    assert rows == {tuple(im.flatten().tolist()) for im in images}
    assert torch.equal(as_levels(first), images[torch.randperm(16, generator=torch.Generator().manual_seed(0))[:10]])


def test_noise_is_uniform_on_the_256_levels_a_png_holds():
    x = noise_sampler((1, 32, 32), seed=0)(64)  # (64, 1, 32, 32)
    levels = (x + 1) * 127.5
    assert torch.allclose(levels, levels.round(), atol=1e-4) and x.min() >= -1 and x.max() <= 1
    assert abs(x.mean().item()) < 0.02 and abs(x.std().item() - 3 ** -0.5) < 0.02  # U(-1, 1): std 1/sqrt(3)


@pytest.fixture
def project(trained, tmp_path, monkeypatch):
    import shutil

    root = tmp_path / "project"
    shutil.copytree(trained, root)
    use_project(monkeypatch, root)
    return root


def test_the_stage_scores_real_images_near_the_floor_and_noise_far_above_as_pytorch_fid_does(project):
    assert run_stage("reference", []) == 0
    ref = records.read(project / "reports/metrics/reference.json")
    assert set(ref) == {"mnist5k_32px_2048d", "mnist5k_32px_64d"}  # the runs' FID dims (Table 2's 64 too)
    sets = ref["mnist5k_32px_2048d"]
    real, noise = (sets[w]["fid"]["digit_classifier"] for w in ("real", "noise"))
    assert 0 <= real["value"] < noise["value"]
    assert real["protocol"]["n_fake"] == noise["protocol"]["n_fake"]
    # the same real images, their features, and pytorch-fid's distance to the cached statistics
    from ganrepro.config import eval_config, load_params
    from ganrepro import pipeline

    params = load_params(project / "params.yaml")
    cfg = eval_config(params, "experiment")
    processed = torch.load(pipeline.processed_file(pipeline.run(params, "experiment")), weights_only=False)
    backend = build_backend("digit_classifier", cfg.fid.dims, torch.device("cpu"))
    stats_file, = (project / "data/fid_stats").glob("*digit_classifier*.npz")
    stats = np.load(stats_file)
    for which, sample in (("real", real_sampler(processed["images"], params.seed + 1)),
                          ("noise", noise_sampler(processed["images"].shape[1:], params.seed + 1))):
        feats = fid.extract(backend, fid.fake_batches(sample, cfg.fid.batch_size), cfg.fid.n_fake, which)
        expected = calculate_frechet_distance(feats.mean(0), np.cov(feats, rowvar=False), stats["mu"], stats["sigma"])
        assert sets[which]["fid"]["digit_classifier"]["value"] == pytest.approx(expected, rel=1e-3, abs=1e-4), which
    assert sets["real"]["inception_score"]["digit_classifier"]["value"] > 0


def test_every_fid_and_is_table_ends_in_the_reference_rows_of_its_backend():
    claims = {"values": [
        {"id": "a", "paper": "p", "table": "T", "row": "dcgan", "run": "r1", "metric": "fid", "value": 10.0,
         "protocol": {"backend": "inception"}},
        {"id": "b", "paper": "p", "table": "T", "row": "sagan", "run": "r2", "metric": "fid", "value": 5.0},
        {"id": "c", "paper": "p", "table": "U", "row": "mem", "run": "r1", "metric": "peak_memory_mb", "value": 1.0},
    ]}
    value = lambda v: {"value": v, "protocol": {"backend": "digit_classifier", "n_fake": 100}}  # noqa: E731
    m = Metrics(evaluate={"r1": {"fid": {"digit_classifier": value(30.0)}}, "r2": {"fid": {"digit_classifier": value(40.0)}}},
                reference={"r1": {"real": {"fid": {"digit_classifier": value(3.0)}},
                                  "noise": {"fid": {"digit_classifier": value(600.0)}}}})
    tables = paper_tables(claims, m, "quick", {"r1": "mnist5k", "r2": "mnist5k"})
    t = tables[("p", "T")]
    assert list(t.row) == ["dcgan", "sagan", "real images (the floor)", "uniform noise"]
    assert list(t.our_value) == [30.0, 40.0, 3.0, 600.0] and t.paper_value.iloc[2:].isna().all()
    assert "n_fake=100" in t.protocol.iloc[2]
    assert list(tables[("p", "U")].row) == ["mem"]  # no FID or IS: no reference rows
    assert len(paper_tables(claims, Metrics(evaluate=m.evaluate), "quick", {})[("p", "T")]) == 2  # none computed
