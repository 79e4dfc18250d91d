"""The table renderer on a small fixture: paper value, ours and both protocols side by side."""
import pandas as pd

from conftest import tiny_run
from ganrepro.report.render import TABLE_COLUMNS, banner, run_table, write_table

CLAIMS = [{"id": "c", "paper": "dcgan-vs-sagan", "where": "Sec. 5", "row": "DCGAN", "preset": "dcgan",
           "dataset": "cifar10", "metric": "fid", "value": 148.72, "protocol": {"backend": "inception", "dims": 2048}}]
EVAL = {
    "fid": {"digit_classifier": {"value": 54.6, "protocol": {"backend": "digit_classifier", "dims": 128,
                                                             "n_real": 5000, "n_fake": 5000}},
            "inception": {"skipped": "weights not found: pt_inception.pth"}},
    "lpips_diversity": {"lpips_digit": {"value": 1.05, "protocol": {"backend": "lpips_digit", "n_pairs": 500}}},
}


def test_run_table_puts_the_papers_value_beside_ours_with_both_protocols(tmp_path):
    run = tiny_run(dataset="cifar10", data="mnist5k")
    df = run_table(run, EVAL, CLAIMS)
    assert list(df.columns) == TABLE_COLUMNS
    fid = df[df.metric == "FID (digit_classifier features)"].iloc[0]
    assert fid.paper_value == 148.72 and fid.our_value == 54.6 and fid.profile == "quick"
    assert fid.paper_protocol == "backend=inception, dims=2048"
    assert "backend=digit_classifier" in fid.protocol and "n_fake=5000" in fid.protocol
    assert fid.data == "mnist5k (quick stand-in for cifar10)"
    skipped = df[df.metric == "FID (inception features)"].iloc[0]
    assert pd.isna(skipped.our_value) and "not found" in skipped.protocol
    csv, md = write_table(df, tmp_path / "t")
    assert pd.read_csv(csv).shape == df.shape
    assert "| dcgan-vs-sagan | Sec. 5" in md.read_text()


def test_no_claim_matches_another_dataset():
    df = run_table(tiny_run(dataset="mnist", data="mnist5k"), EVAL, CLAIMS)
    assert df.paper_value.isna().all()


def test_the_quick_banner_says_its_numbers_are_not_paper_scale():
    from ganrepro.config import load_params
    from conftest import ROOT

    params = load_params(ROOT / "params.yaml")
    text = banner(params, tiny_run(dataset="cifar10", data="mnist5k"))
    assert "Quick profile" in text and "not paper-scale results" in text and "`mnist5k` stands in for `cifar10`" in text
