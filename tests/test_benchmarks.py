"""The DEQ benchmark's bookkeeping: its grid covers the pipeline's default, and it picks the best
setting by the issue's rule. (The benchmarks themselves measure; they are run by `make bench`.)"""
import sys
from types import SimpleNamespace

import pytest
import torch

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import deq_report  # noqa: E402  (benchmarks/ is not a package)
import deq_settings as ds  # noqa: E402
import deq_vs_wgan as dvw  # noqa: E402


@pytest.mark.parametrize("quick", [True, False])
def test_the_grid_measures_the_pipeline_default_exactly_once(quick):
    wgan, centre = ds.base_configs(quick, torch.device("cpu"))
    measured = ds.settings(wgan, centre, quick) if quick else ds.table1_settings(torch.device("cpu"))
    ds.mark_default(measured, ds.base_configs(quick, torch.device("cpu"), centre=False)[1])
    default = [s for s in measured if s.is_default]
    assert len(default) == 1 and default[0].label.endswith("(default)") and default[0].backward == ds.JFB  # params.yaml: Anderson + 1-step JFB
    assert centre.arch == {**centre.arch, **ds.CENTRE["quick" if quick else "paper"]}  # the grid does not follow it


def fake(label, peak, seconds, fid, backward=""):
    setting = ds.Setting(label, "backward", None, backward=backward, peak_mb=peak, times=[(seconds, 0.0)])
    return SimpleNamespace(setting=setting, fid=fid, diverged=False)


def test_the_best_setting_is_the_fastest_meeting_the_goal_at_no_worse_fid():
    wgan = ds.Setting("WGAN-GP", "baseline", None, peak_mb=10.0, times=[(1.0, 0.0)])
    jfb = fake("jfb", 5.0, 1.4, 100.0, ds.JFB)  # memory 0.5x: misses the goal
    runs = [fake("wgan", 10.0, 1.0, 90.0), jfb, fake("fast but worse", 3.0, 1.0, 106.0),
            fake("meets", 3.9, 1.45, 104.0), fake("meets, faster", 3.5, 1.2, 99.0)]
    best, meets = dvw.pick_best(runs, wgan)
    assert meets and best.setting.label == "meets, faster"  # "fast but worse" is over the 5% FID slack
    best, meets = dvw.pick_best(runs[:3], wgan)  # nothing meets: the smallest max(mem/0.4, time/1.5)
    assert not meets and best.setting.label == "jfb"


def test_table_1c_ratios_divide_the_deq_row_by_each_baseline_under_each_protocol():
    row = lambda mb, s: {"peak_memory_mb": mb, "seconds_per_step": s}  # noqa: E731
    rows = {"deq_pokemon@ours": row(80.0, 3.0), "deq_pokemon@reference": row(900.0, 3.0),
            "wgan_pokemon@ours": row(100.0, 1.0), "wgan_pokemon@reference": row(1000.0, 1.0),
            "wgan_ref_pokemon@ours": row(400.0, 4.0), "wgan_ref_pokemon@reference": row(1200.0, 4.0)}
    assert deq_report.protocols_ratios(rows) == {
        "wgan_pokemon@ours": 0.8, "wgan_pokemon@reference": 0.9, "wgan_pokemon@time": 3.0,
        "wgan_ref_pokemon@ours": 0.2, "wgan_ref_pokemon@reference": 0.75, "wgan_ref_pokemon@time": 0.75}
