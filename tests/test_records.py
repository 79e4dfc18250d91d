"""Metric files hold numbers, protocol files the rest, and the two join back into the stage's record."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import leaves
from ganrepro import records

EVALUATE = {  # the shape evaluate writes (ganrepro.evaluation.evaluate)
    "fid": {"digit_classifier": {"value": 35.2, "protocol": {"n_fake": 1000, "dims": 128, "quantised": "uint8"}},
            "inception": {"skipped": "weights not found: pt_inception-2015-12-05-6726825d.pth"}},
    "fid_seeds": {"digit_classifier": {"mean": 35.2, "std": None, "n": 1, "values": [35.2], "protocol": {"n": 1}}},
    "inception_score": {"digit_classifier": {"value": 4.1, "std": 0.08, "protocol": {"splits": 10}}},
}


def test_split_keeps_only_headline_numbers_with_value_collapsed():
    numbers, rest = records.split(EVALUATE, records.HEADLINE["evaluate"])
    assert numbers == {"fid": {"digit_classifier": 35.2}, "fid_seeds": {"digit_classifier": {"mean": 35.2}},
                       "inception_score": {"digit_classifier": 4.1}}
    assert all(isinstance(v, float) for v in leaves(numbers))
    assert rest["fid"]["inception"]["skipped"].startswith("weights not found")
    assert rest["inception_score"]["digit_classifier"] == {"std": 0.08, "protocol": {"splits": 10}}


@pytest.mark.parametrize("stage, record", [
    ("evaluate", EVALUATE),
    ("train", {"steps": 800, "train_seconds": 62.6, "images_per_second": 817.6, "final_loss_d": 0.61, "processes": 1}),
    ("profile", {"dcgan": {"peak_memory_mb": 25.6, "seconds_per_step": 0.08, "device": "cpu", "threads": 2,
                           "model_settings": {}}}),
])
def test_write_then_read_gives_back_the_record(tmp_path, monkeypatch, stage, record):
    monkeypatch.chdir(tmp_path)
    metric = Path("reports/metrics") / stage / "run.json"
    records.write(metric, record, stage, under="run")
    assert records.read(metric, under="run") == record
    numbers = json.loads(metric.read_text())
    assert set(numbers) == {"run"}  # nested under the run's name
    assert not [v for v in leaves(numbers) if isinstance(v, bool) or not isinstance(v, (int, float))]
    assert records.protocol_path(metric) == Path("reports/protocols") / stage / "run.json"
    assert records.protocol_path(metric).exists()


def test_protocol_path_works_under_any_root_and_refuses_other_files(tmp_path):
    assert records.protocol_path(tmp_path / "reports/metrics/profile.json") == tmp_path / "reports/protocols/profile.json"
    with pytest.raises(ValueError, match="not under reports/metrics"):
        records.protocol_path(tmp_path / "elsewhere/profile.json")
