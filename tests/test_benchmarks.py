"""The DEQ benchmark's bookkeeping: its grid covers the pipeline's default, and it picks the best
setting by the issue's rule. (The benchmarks themselves measure; they are run by `make bench`.)"""
import sys
from types import SimpleNamespace

import pytest
import torch

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import deq_vs_wgan as dvw  # noqa: E402  (benchmarks/ is not a package)


@pytest.mark.parametrize("quick", [True, False])
def test_the_grid_measures_the_pipeline_default_exactly_once(quick):
    wgan, centre = dvw.base_configs(quick, torch.device("cpu"))
    measured = dvw.settings(wgan, centre, quick) if quick else dvw.table1_settings(torch.device("cpu"))
    dvw.mark_default(measured, dvw.base_configs(quick, torch.device("cpu"), centre=False)[1])
    default = [s for s in measured if s.is_default]
    assert len(default) == 1 and default[0].label.endswith("(default)") and default[0].backward == dvw.JFB  # params.yaml: Anderson + 1-step JFB
    assert centre.arch == {**centre.arch, **dvw.CENTRE["quick" if quick else "paper"]}  # the grid does not follow it


def fake(label, peak, seconds, fid, backward=""):
    setting = dvw.Setting(label, "backward", None, backward=backward, peak_mb=peak, times=[(seconds, 0.0)])
    return SimpleNamespace(setting=setting, fid=fid, diverged=False)


def test_the_best_setting_is_the_fastest_meeting_the_goal_at_no_worse_fid():
    wgan = dvw.Setting("WGAN-GP", "baseline", None, peak_mb=10.0, times=[(1.0, 0.0)])
    jfb = fake("jfb", 5.0, 1.4, 100.0, dvw.JFB)  # memory 0.5x: misses the goal
    runs = [fake("wgan", 10.0, 1.0, 90.0), jfb, fake("fast but worse", 3.0, 1.0, 106.0),
            fake("meets", 3.9, 1.45, 104.0), fake("meets, faster", 3.5, 1.2, 99.0)]
    best, meets = dvw.pick_best(runs, wgan)
    assert meets and best.setting.label == "meets, faster"  # "fast but worse" is over the 5% FID slack
    best, meets = dvw.pick_best(runs[:3], wgan)  # nothing meets: the smallest max(mem/0.4, time/1.5)
    assert not meets and best.setting.label == "jfb"
