"""reports/paper-plan.md from a dry run's workspace: the paper's step counts (not the dry run's),
epochs at the real dataset sizes, images per step with n_critic, and the GPU-hour arithmetic."""
import copy
import json

import pytest
import yaml

from ganrepro.report import plan

ADAM = {"lr_g": 1.0e-4, "lr_d": 1.0e-4, "betas": [0.0, 0.9]}
MODELS = {
    "dcgan": {"paper": "DCGAN (t)", "family": "dcgan", "objective": {"name": "gan", "loss": "bce"},
              "arch": {"z_dim": 100, "ngf": 64, "ndf": 64}, "img_size": 64, "batch_size": 64, **ADAM, "epochs": 25},
    "wgan_gp": {"paper": "WGAN (t)", "family": "wgan_gp", "objective": {"name": "wgan_gp", "n_critic": 5},
                "arch": {"z_dim": 100, "ngf": 64, "ndf": 64}, "img_size": 64, "batch_size": 1, **ADAM, "epochs": 50},
    "began": {"paper": "BEGAN (t)", "family": "began", "objective": {"name": "began", "gamma": 0.5},
              "arch": {"z_dim": 64, "h_dim": 64, "ngf": 128, "ndf": 128}, "img_size": 64, "batch_size": 16,
              **ADAM, "steps": 200000},
    "fastgan_m1": {"paper": "FastGAN (t)", "family": "fastgan",
                   "objective": {"name": "fastgan", "recon_loss": "lpips", "lpips_net": "vgg"},
                   "arch": {"z_dim": 256, "ngf": 64, "ndf": 64, "dec_ch": 32, "n_decoders": 1},
                   "img_size": 256, "batch_size": 8, **ADAM, "epochs": 300},
}
RUNS = {
    "dcgan_cifar10": {"preset": "dcgan", "dataset": "cifar10", "feeds": "t"},
    "wgan_mnist": {"preset": "wgan_gp", "dataset": "mnist", "overrides": {"epochs": 10}, "feeds": "t"},
    "wgan_pokemon": {"preset": "wgan_gp", "dataset": "pokemon", "feeds": "t", "eval": {"fid": {"dims": 64}}},
    "began_celeba": {"preset": "began", "dataset": "celeba", "feeds": "t"},
    "fastgan_vangogh": {"preset": "fastgan_m1", "dataset": "vangogh", "feeds": "t"},
}
PAPER = {  # the real paper profile (the reference params.yaml)
    "description": "paper", "device": "auto", "seeds": 3,
    "train": {"snapshots": 25},
    "eval": {"fid": {"backends": ["inception"], "n_real": 50000, "n_fake": 10000, "curve_n_fake": 5000},
             "lpips": {"backends": ["lpips_alex"], "n_pairs": 1000},
             "inception_score": {"backends": ["inception"], "n_fake": 50000}},
    "profiling": {"steps": 50, "warmup": 5},
    "feature_net": {"epochs": 3, "batch_size": 64, "lr": 1.0e-3, "holdout": 500, "seed": 0},
}
OVERRIDES = {"device": "cpu", "seeds": 1, "steps": 2, "dry_run": True, "profiling": {"steps": 2, "warmup": 1},
             "eval": {"fid": {"n_real": 64, "n_fake": 32, "curve_n_fake": 16}}}
# Expected paper steps: total_steps = ceil(epochs x (N // batch) / n_critic), or the preset's steps
STEPS = {"dcgan_cifar10": 19525,  # 25 x (50,000 // 64 = 781)
         "wgan_mnist": 120000,  # 10 x 60,000 / 5
         "wgan_pokemon": 13590,  # 50 x 1,359 (the manifest's files) / 5
         "began_celeba": 200000,  # the preset's steps
         "fastgan_vangogh": 28200,  # 300 x (756 // 8 = 94)
         "experiment": 19525}  # dcgan on cifar10
PROFILE = {  # one step each, as the profile stage writes it: FLOPs and ATen ops decide the bound
    "dcgan_cifar10": {"flops_per_step": 2e11, "aten_ops_per_step": 500},  # FLOP bound
    "wgan_mnist": {"flops_per_step": 1e10, "aten_ops_per_step": 2000},  # launch bound
    "wgan_pokemon": {"flops_per_step": 1e10, "aten_ops_per_step": 2000},
    "began_celeba": {"flops_per_step": 1.6e12, "aten_ops_per_step": 300},
    "fastgan_vangogh": {"flops_per_step": 1e12, "aten_ops_per_step": 4000},
    "experiment": {"flops_per_step": 2e11, "aten_ops_per_step": 500},
}


def params_yaml(profile: dict) -> dict:
    return {"profile": "paper", "model": "dcgan", "dataset": "cifar10", "lr": 2.0e-4, "steps": None, "seed": 0,
            "models": MODELS, "runs": RUNS, "profiles": {"paper": profile}}


def dry_profile() -> dict:
    prof = copy.deepcopy(PAPER)
    for key, value in OVERRIDES.items():
        if key == "eval":
            prof["eval"]["fid"].update(value["fid"])
        else:
            prof[key] = value
    return prof


@pytest.fixture
def workspace(tmp_path):
    ws = tmp_path / "ws"
    (ws / "reports" / "metrics" / "train").mkdir(parents=True)
    (ws / "params.yaml").write_text(yaml.safe_dump(params_yaml(dry_profile())))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params_yaml(PAPER)))  # the project's: the reference
    profile = {}
    for i, (run, counts) in enumerate(PROFILE.items()):
        profile[run] = {**counts, "params_g": 1000 + i, "params_d": 2000 + i, "peak_memory_mb": 10.0 + i,
                        "seconds_per_step": 0.5 + i, "device": "cpu: x86_64", "threads": 2, "torch": "2.x",
                        "date": "2026-12-01"}
        (ws / "reports" / "metrics" / "train" / f"{run}.json").write_text(json.dumps({"steps": 2, "train_seconds": 1.5}))
    (ws / "reports" / "metrics" / "profile.json").write_text(json.dumps(profile))
    return ws


def write(ws, **kwargs):
    kwargs.setdefault("reference", ws.parent / "params.yaml")
    out = plan.write_plan(ws, ws.parent / "out" / "paper-plan.md", OVERRIDES,
                          {"download": 12.5, "train_run@dcgan_cifar10": 30.0}, **kwargs)
    return out.read_text()


def rows_of(ws, reference=True, measured=None):
    from ganrepro.config import load_params

    ref = load_params(ws.parent / "params.yaml") if reference else None
    params = plan.paper_params(load_params(ws / "params.yaml"), ref)
    return params, {r["run"]: r for r in plan.plan_rows(params, json.loads((ws / "reports/metrics/profile.json").read_text()),
                                                        measured=measured)}


def table_row(text: str, run: str) -> list[str]:
    line = next(l for l in text.splitlines() if l.startswith("|") and f"| `{run}` |" in l)
    return [c.strip() for c in line.strip("|").split("|")]


def test_steps_are_the_paper_presets_not_the_dry_runs_two(workspace):
    for reference in (True, False):  # with the project's params.yaml, or the dry run's profile less `steps`
        params, rows = rows_of(workspace, reference)
        assert params.active.steps is None
        assert {run: r["steps"] for run, r in rows.items()} == STEPS
    text = write(workspace)
    assert table_row(text, "dcgan_cifar10")[5] == "19,525" and table_row(text, "began_celeba")[5] == "200,000"


def test_images_per_step_and_epochs_use_n_critic_and_the_real_dataset_sizes(workspace, monkeypatch, tmp_path):
    fixtures = tmp_path / "fixture_manifests"  # the dry run serves its fixtures through manifests like this
    fixtures.mkdir()
    for name in ("pokemon", "vangogh"):
        (fixtures / f"{name}.json").write_text(json.dumps({"name": name, "files": [{"path": "a.png"}] * 3}))
    monkeypatch.setenv("GANREPRO_MANIFESTS", str(fixtures))
    _, rows = rows_of(workspace)
    assert rows["wgan_mnist"]["images_per_step"] == 5 and rows["dcgan_cifar10"]["images_per_step"] == 64
    assert rows["wgan_mnist"]["dataset_size"] == 60_000 and rows["began_celeba"]["dataset_size"] == 202_599
    assert rows["wgan_pokemon"]["dataset_size"] == 1359 and rows["fastgan_vangogh"]["dataset_size"] == 756
    assert rows["dcgan_cifar10"]["epochs"] == pytest.approx(19525 * 64 / 50_000)  # 24.992
    assert rows["wgan_mnist"]["epochs"] == pytest.approx(10.0)
    assert rows["wgan_pokemon"]["epochs"] == pytest.approx(50.0)
    assert rows["began_celeba"]["epochs"] == pytest.approx(200000 * 16 / 202_599)  # 15.79
    assert rows["fastgan_vangogh"]["epochs"] == pytest.approx(28200 * 8 / 756)
    text = write(workspace)
    row = table_row(text, "wgan_mnist")
    assert row[2] == "mnist (60,000)" and row[6] == "1 x 5" and row[7] == "10"
    assert table_row(text, "began_celeba")[7] == "15.8"


def test_gpu_hours_are_the_larger_bound_x_paper_steps_x_the_paper_seeds(workspace):
    params, rows = rows_of(workspace)
    for run, counts in PROFILE.items():
        flop_s = counts["flops_per_step"] / plan.ASSUMED_GPU_FLOPS
        launch_s = counts["aten_ops_per_step"] * plan.ASSUMED_SECONDS_PER_OP
        r = rows[run]
        assert r["gpu_seconds_per_step"] == pytest.approx(max(flop_s, launch_s))
        assert r["gpu_basis"] == ("FLOPs bound" if flop_s > launch_s else "launch bound")
        assert r["seeds"] == 3  # the paper profile's, not the dry run's 1
        assert r["gpu_hours"] == pytest.approx(max(flop_s, launch_s) * STEPS[run] * 3 / 3600)
    assert rows["dcgan_cifar10"]["gpu_basis"] == "FLOPs bound" and rows["wgan_mnist"]["gpu_basis"] == "launch bound"
    text = write(workspace)
    train_h = sum(r["gpu_hours"] for r in rows.values())
    assert f"**Training: {train_h:,.1f} GPU hours**" in text
    evals = plan.eval_images(params, list(rows.values()))
    assert f"**About {train_h + evals['hours']:,.1f} GPU hours**" in text


def test_a_measured_gpu_time_replaces_the_estimate(workspace):
    _, rows = rows_of(workspace, measured=plan.load_measured_gpu({"dcgan_cifar10": 0.2}))
    assert rows["dcgan_cifar10"]["gpu_hours"] == pytest.approx(0.2 * 19525 * 3 / 3600)
    assert rows["dcgan_cifar10"]["gpu_basis"].startswith("measured")
    assert rows["wgan_mnist"]["gpu_basis"] == "launch bound"  # the others keep the estimate
    gpu = {"wgan_mnist": {"seconds_per_step": 0.05, "device": "cuda: NVIDIA H100"},
           "dcgan_cifar10": {"seconds_per_step": 9.0, "device": "cpu: x86_64"}}  # a CPU figure is no GPU measurement
    (workspace.parent / plan.GPU_PROFILE_FILE).parent.mkdir(parents=True)
    (workspace.parent / plan.GPU_PROFILE_FILE).write_text(json.dumps(gpu))
    text = write(workspace)  # found beside the reference params.yaml (the project's) by default
    row = table_row(text, "wgan_mnist")
    assert row[14] == "measured (cuda: NVIDIA H100)" and row[15] == "5.0"  # 0.05 x 120,000 x 3 / 3600
    assert table_row(text, "dcgan_cifar10")[14] == "FLOPs bound"


def test_evaluation_counts_inception_images_as_the_stages_make_them(workspace):
    params, rows = rows_of(workspace)
    ev = plan.eval_images(params, list(rows.values()))
    # real statistics once per (dataset, size, dims, n_real); the experiment shares dcgan_cifar10's
    assert ev["real"] == {("cifar10", 64, 2048, 50000): 50000, ("mnist", 64, 2048, 50000): 50000,
                          ("pokemon", 64, 64, 1359): 1359, ("celeba", 64, 2048, 50000): 50000,
                          ("vangogh", 256, 2048, 756): 756}
    # n_fake for each of 3 seeds + 25 snapshots x curve_n_fake + the Inception Score's n_fake (first seed)
    assert set(ev["per_run"].values()) == {10000 * 3 + 25 * 5000 + 50000}
    assert ev["total"] == 152115 + 6 * 205000
    assert ev["hours"] == pytest.approx(ev["total"] / plan.INCEPTION_IMAGES_PER_SECOND / 3600)
    assert f"{ev['total']:,} Inception images" in write(workspace)


def test_the_plan_names_data_weights_overrides_timings_and_the_measuring_device(workspace):
    text = write(workspace)
    pokemon = next(l for l in text.splitlines() if l.startswith("| `pokemon` |"))
    assert "URL manifest" in pokemon and "`wgan_pokemon`" in pokemon
    assert "torchvision" in next(l for l in text.splitlines() if l.startswith("| `mnist` |"))
    vgg = next(l for l in text.splitlines() if l.startswith("| `vgg16-397923af.pth` |"))
    assert "`fastgan_vangogh`" in vgg and "`dcgan_cifar10`" not in vgg
    assert "| `pt_inception-2015-12-05-6726825d.pth` |" in text and "| `alexnet-owt-7be5be79.pth` |" in text
    assert "steps: 2\ndry_run: true" in text  # the overrides, as YAML
    assert "| train_run@dcgan_cifar10 | 30.0 |" in text and "| **total** | **42.5** |" in text
    assert "cpu: x86_64, 2 threads" in text and "2026-12-01" in text
    assert "ASSUMED_GPU_FLOPS" in text and "lower bound" in text


def test_without_a_real_paper_profile_the_plan_says_which_counts_are_the_dry_runs(workspace):
    for reference in (workspace / "params.yaml", workspace.parent / "nowhere.yaml"):  # its own is no reference
        text = write(workspace, reference=reference)
        assert "no reference params.yaml was found, so `device`, `seeds`" in text
        assert table_row(text, "dcgan_cifar10")[5] == "19,525"  # the steps are still the paper's
        assert "GPU h (x 1 seeds)" in text
    text = write(workspace)
    assert "GPU h (x 3 seeds)" in text and "no reference" not in text


def test_a_dry_run_that_covers_some_runs_says_the_totals_cover_only_those(workspace):
    ref = yaml.safe_load((workspace.parent / "params.yaml").read_text())
    ref["runs"]["extra_run"] = RUNS["dcgan_cifar10"]
    (workspace.parent / "params.yaml").write_text(yaml.safe_dump(ref))
    assert "the dry run covered 5 of its 6 runs, and the totals only those (not: `extra_run`)" in write(workspace)


def test_the_plan_names_the_reference_params_relative_to_the_project(workspace, monkeypatch):
    """The committed plan says `params.yaml`, not the absolute path of the clone it was written in."""
    monkeypatch.setenv("GANREPRO_ROOT", str(workspace.parent))
    assert "resolved with profile `paper` of `params.yaml`" in write(workspace)
