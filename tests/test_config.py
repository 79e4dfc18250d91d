"""params.yaml validation: every bad input names the key and what is valid."""
import shutil

import pytest
import yaml

from conftest import ROOT
from ganrepro.config import ConfigError, load_params, resolve_experiment


@pytest.fixture
def params_file(tmp_path):
    path = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", path)
    return path


def edit(path, fn):
    data = yaml.safe_load(path.read_text())
    fn(data)
    path.write_text(yaml.safe_dump(data))


def test_the_shipped_params_validate_and_resolve_to_the_quick_stand_in():
    params = load_params(ROOT / "params.yaml")
    run = resolve_experiment(params)
    assert params.profile == "quick"
    assert run.data == "mnist5k" and run.dataset == params.dataset and run.substituted


@pytest.mark.parametrize("text", ["lr: 2e-4", "lr: 0.0002", "lr: 2.0e-4", "lr: '2e-4'"])
def test_lr_as_dvc_writes_it_and_as_pyyaml_reads_it_by_hand(params_file, text):
    lines = [text if line.startswith("lr:") else line for line in params_file.read_text().splitlines()]
    params_file.write_text("\n".join(lines))
    assert yaml.safe_load(text)["lr"] in ("2e-4", 0.0002)  # PyYAML reads 2e-4 as a string
    params = load_params(params_file)
    assert params.lr == pytest.approx(2e-4) and isinstance(params.lr, float)
    assert resolve_experiment(params).lr_g == pytest.approx(2e-4)


def test_experiment_lr_keeps_the_presets_lr_ratio(params_file):
    def ttur(d):
        d["models"]["dcgan"]["lr_d"] = 4 * d["models"]["dcgan"]["lr_g"]
        d["lr"] = 1e-3

    edit(params_file, ttur)
    run = resolve_experiment(load_params(params_file))
    assert run.lr_g == pytest.approx(1e-3) and run.lr_d == pytest.approx(4e-3)


BAD = [
    (lambda d: d.update(lr=-1e-4), r"lr: Input should be greater than 0"),
    (lambda d: d.update(lr=0), r"lr: Input should be greater than 0"),
    (lambda d: d.update(lr="fast"), r"lr: .*valid number.*'fast'"),
    (lambda d: d.update(steps="many"), r"steps: .*valid integer.*'many'"),
    (lambda d: d.update(steps=1.5), r"steps: .*integer"),
    (lambda d: d.update(seed=-1), r"seed: .*greater than or equal to 0"),
    (lambda d: d.update(lrr=1), r"lrr: unknown key; valid keys here: profile, model, dataset, lr, steps, seed"),
    (lambda d: d["profiles"]["quick"].update(stepz=3), r"profiles.quick.stepz: unknown key; valid keys here: .*presets"),
    (lambda d: d["models"]["dcgan"].update(betas=[0.5]), r"models.dcgan.betas"),
    (lambda d: d["profiles"]["quick"]["eval"]["fid"].update(dims=100), r"profiles.quick.eval.fid.dims: .*64, 192, 768 or 2048"),
    (lambda d: d.pop("seed"), r"seed: required key is missing"),
    (lambda d: d.update(profile="huge"), r"profile: unknown profile 'huge'; valid: paper, quick"),
    (lambda d: d.update(model="stylegan"), r"model: unknown model 'stylegan'; valid: began, began_ref, dcgan, deq_gan"),
]


@pytest.mark.parametrize("mutate,message", BAD)
def test_bad_params_name_the_key_and_what_is_valid(params_file, mutate, message):
    edit(params_file, mutate)
    with pytest.raises(ConfigError, match=message) as e:
        load_params(params_file)
    assert str(params_file) in str(e.value)


RESOLVE_BAD = [
    (lambda d: d.update(dataset="imagenet"), r"dataset: unknown dataset 'imagenet'; valid: .*cifar10.*mnist5k"),
    (lambda d: d["profiles"]["quick"].update(dataset="nope"), r"profiles.quick.dataset: unknown dataset 'nope'"),
    (lambda d: d["models"]["dcgan"].update(family="nope"), r"models.dcgan.family: unknown model 'nope'; valid: .*dcgan"),
    (lambda d: d["models"]["dcgan"]["arch"].update(nfg=3), r"models.dcgan.arch: nfg: unknown key; valid keys here: z_dim, ngf, ndf"),
    (lambda d: d["models"]["dcgan"]["arch"].update(ngf=0), r"models.dcgan.arch: ngf: Input should be greater than 0"),
]


@pytest.mark.parametrize("mutate,message", RESOLVE_BAD)
def test_bad_names_are_reported_when_the_run_is_resolved(params_file, mutate, message):
    edit(params_file, mutate)
    with pytest.raises((ConfigError, KeyError), match=message):
        resolve_experiment(load_params(params_file))


def test_unknown_objective_and_loss_list_the_valid_names():
    from ganrepro.training.loop import build
    from conftest import tiny_run
    import torch

    with pytest.raises(KeyError, match=r"objective.name: unknown objective 'gann'; valid: .*gan"):
        build(tiny_run(objective={"name": "gann"}), 1, 10, torch.device("cpu"))
    with pytest.raises(ConfigError, match=r"objective gan: loss: Value error, unknown loss 'l2'; valid: bce, hinge, wasserstein"):
        build(tiny_run(objective={"name": "gan", "loss": "l2"}), 1, 10, torch.device("cpu"))
    with pytest.raises(ConfigError, match=r"objective gan: n_critic: Input should be greater than 0"):
        build(tiny_run(objective={"name": "gan", "n_critic": 0}), 1, 10, torch.device("cpu"))


def test_missing_or_broken_params_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nothere.yaml: file not found"):
        load_params(tmp_path / "nothere.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("lr: [1, 2\n")
    with pytest.raises(ConfigError, match=r"params.yaml: not valid YAML"):
        load_params(bad)


def test_a_bad_profile_override_names_the_profile_key(params_file):
    edit(params_file, lambda d: d["profiles"]["quick"]["presets"]["dcgan"]["arch"].update(ndf=-2))
    with pytest.raises(ConfigError, match=r"arch of dcgan at profile quick: ndf: Input should be greater than 0"):
        resolve_experiment(load_params(params_file))
    edit(params_file, lambda d: d["profiles"]["quick"]["presets"]["dcgan"].update(stepz=3))
    with pytest.raises(ConfigError, match=r"profiles.quick.presets.dcgan: stepz: unknown key; valid keys here: family, "):
        resolve_experiment(load_params(params_file))


def test_the_profile_scale_merges_over_a_runs_overrides(params_file):
    from ganrepro.config import resolve_paper_run

    def add_run(d):
        d["runs"]["wide"] = {"preset": "dcgan", "dataset": "mnist", "feeds": "t",
                             "overrides": {"arch": {"ndf": 48, "z_dim": 64}, "lr_g": 1e-3, "epochs": 3}}

    edit(params_file, add_run)
    params = load_params(params_file)
    run = resolve_paper_run(params, "wide")
    # preset <- the run's own <- the quick profile's scale: quick's widths and steps win, the rest stays
    assert run.arch == {"z_dim": 64, "ngf": 32, "ndf": 32}
    assert run.lr_g == 1e-3 and run.steps == 2400 and run.batch_size == 32 and run.epochs is None
    assert run.dataset == "mnist" and run.data == "mnist5k"
    edit(params_file, lambda d: d.update(profile="paper"))
    run = resolve_paper_run(load_params(params_file), "wide")
    assert run.arch == {"z_dim": 64, "ngf": 64, "ndf": 48} and run.epochs == 3 and run.steps is None
    with pytest.raises(ConfigError, match=r"runs: unknown run 'narrow'; valid: .*wide"):
        resolve_paper_run(params, "narrow")


def test_a_profiles_lr_scale_multiplies_each_runs_own_lr(params_file):
    from ganrepro.config import resolve_paper_run

    def scale(d):
        d["profiles"]["quick"]["presets"]["deq_gan"]["lr_scale"] = 3.0

    edit(params_file, scale)
    params = load_params(params_file)
    low, high = (resolve_paper_run(params, f"deq_pokemon_1b_lr{lr}") for lr in ("1e4", "2e4"))
    # the runs' own lrs (1e-4 from the preset, 2e-4 as an override) x the profile's scale: the ratio stays
    assert (low.lr_g, low.lr_d) == (pytest.approx(3e-4), pytest.approx(3e-4))
    assert (high.lr_g, high.lr_d) == (pytest.approx(6e-4), pytest.approx(6e-4))
    edit(params_file, lambda d: d["profiles"]["quick"]["presets"]["deq_gan"].update(lr_scale=0))
    with pytest.raises(ConfigError, match=r"profiles.quick.presets.deq_gan: lr_scale: Input should be greater than 0"):
        resolve_paper_run(load_params(params_file), "deq_pokemon_1b_lr1e4")
    edit(params_file, lambda d: d.update(profile="paper"))
    assert resolve_paper_run(load_params(params_file), "deq_pokemon_1b_lr2e4").lr_g == pytest.approx(2e-4)


def test_a_bad_run_names_its_key(params_file):
    from ganrepro.config import resolve_paper_run

    edit(params_file, lambda d: d["runs"].update(bad={"preset": "dcgan", "dataset": "svhn", "feeds": "t"}))
    with pytest.raises(KeyError, match=r"runs.bad.dataset: unknown dataset 'svhn'"):
        resolve_paper_run(load_params(params_file), "bad")
    edit(params_file, lambda d: d["runs"].update(bad={"preset": "nope", "dataset": "mnist", "feeds": "t"}))
    with pytest.raises(ConfigError, match=r"runs.bad.preset: unknown preset 'nope'; valid: .*dcgan"):
        resolve_paper_run(load_params(params_file), "bad")


def test_extra_training_seeds_get_their_own_folders(params_file):
    from ganrepro import paths, pipeline

    params = load_params(params_file)
    run = resolve_experiment(params)
    seeds = pipeline.seed_runs(run, 3)
    assert [cfg.seed for cfg, _ in seeds] == [run.seed, run.seed + 1, run.seed + 2]
    assert [d for _, d in seeds] == [paths.RUNS / "experiment", paths.RUNS / "experiment/seeds" / str(run.seed + 1),
                                     paths.RUNS / "experiment/seeds" / str(run.seed + 2)]
    assert params.active.seeds == 1 and params.profiles["paper"].seeds == 3


# ---------------------------------------------------------------- the reference baseline's switches and rows
REF_BAD = [
    (lambda d: d["models"]["wgan_gp"]["arch"].update(critic_norm="batch"),
     r"models.wgan_gp.arch: critic_norm: Input should be 'none' or 'instance_affine' \(got 'batch'\)"),
    (lambda d: d["models"]["wgan_gp"]["arch"].update(conditional="maybe"),
     r"models.wgan_gp.arch: conditional: Input should be a valid boolean.*\(got 'maybe'\)"),
    (lambda d: d["models"]["wgan_gp"]["arch"].update(critic_nrom="none"),
     r"models.wgan_gp.arch: critic_nrom: unknown key; valid keys here: .*critic_norm, g_conv_bias, g_init"),
    (lambda d: d["models"]["wgan_gp"]["objective"].update(gp_norm="per_channel"),
     r"objective wgan_gp: gp_norm: Input should be 'per_sample' or 'per_pixel_channel' \(got 'per_channel'\)"),
]


@pytest.mark.parametrize("mutate,message", REF_BAD)
def test_bad_reference_switches_name_the_key_and_the_valid_values(params_file, mutate, message):
    from ganrepro.config import resolve_paper_run

    edit(params_file, mutate)
    with pytest.raises(ConfigError, match=message) as e:
        resolve_paper_run(load_params(params_file), "wgan_pokemon")
    assert "\n" not in str(e.value)


PROFILING_BAD = [
    (lambda d: d["profiles"]["quick"]["profiling"].update(memory_protocol="theirs"),
     r"profiles.quick.profiling.memory_protocol: Input should be 'ours' or 'reference' \(got 'theirs'\)"),
    (lambda d: d["profiles"]["quick"]["profiling"]["sampling"].update(n=0), r"profiles.quick.profiling.sampling.n: .*greater than 0"),
    (lambda d: d["profiles"]["quick"]["profiling"]["profile_only"].update(stepz=1),
     r"profiles.quick.profiling.profile_only.stepz: unknown key; valid keys here: steps, warmup"),
    (lambda d: d["runs"]["wgan_pokemon"]["profile_only"]["wgan_pokemon@ours"].update(protocol="ours"),
     r"runs.wgan_pokemon.profile_only.wgan_pokemon@ours.protocol: unknown key; valid keys here: preset, memory_protocol, sampling"),
    (lambda d: d["runs"]["wgan_pokemon"]["profile_only"]["wgan_pokemon@ours"].update(preset="wgan_gp_rf"),
     r"runs.wgan_pokemon.profile_only.wgan_pokemon@ours.preset: unknown preset 'wgan_gp_rf'; valid: .*wgan_gp_ref"),
    (lambda d: d["runs"]["wgan_pokemon"]["profile_only"].update(wgan_mnist={}),
     r"runs.wgan_pokemon.profile_only.wgan_mnist: the name is already a run's"),
]


@pytest.mark.parametrize("mutate,message", PROFILING_BAD)
def test_bad_profiling_settings_name_the_key(params_file, mutate, message):
    edit(params_file, mutate)
    with pytest.raises(ConfigError, match=message):
        load_params(params_file)


def test_profile_only_rows_resolve_to_the_paper_setting_at_the_quick_profile():
    from ganrepro.config import resolve_profile_only

    params = load_params(ROOT / "params.yaml")
    rows = resolve_profile_only(params)
    assert list(rows) == ["wgan_pokemon@ours", "wgan_pokemon@reference", "wgan_ref_pokemon@ours", "wgan_ref_pokemon@reference",
                          "deq_pokemon@ours", "deq_pokemon@reference", "deq_ref_pokemon@ours", "deq_ref_pokemon@reference"]
    assert {name: e.memory_protocol for name, (_, _, e) in rows.items()} == {
        name: name.split("@")[1] for name in rows}
    source, ours, _ = rows["wgan_pokemon@ours"]
    assert source == "wgan_pokemon" and ours.preset == "wgan_gp" and ours.device == "cpu"
    assert (ours.img_size, ours.batch_size, ours.arch["ngf"], ours.arch["ndf"], ours.data) == (64, 1, 64, 64, "pokemon")
    _, ref, _ = rows["wgan_ref_pokemon@reference"]
    assert ref.preset == "wgan_gp_ref" and (ref.img_size, ref.batch_size, ref.arch["ngf"]) == (32, 1, 256)
    assert ref.objective["gp_norm"] == "per_pixel_channel" and ref.betas == (0.5, 0.999)
    # Table 1's DEQ side: the paper preset and the reference code's, each with main2.py's sampling pass
    source, deq, entry = rows["deq_pokemon@reference"]
    assert source == "deq_pokemon_1b_lr1e4" and deq.preset == "deq_gan"
    assert (deq.img_size, deq.batch_size, deq.arch["ngf"], deq.arch["f_max_iter"]) == (64, 1, 64, 30)
    assert entry.sampling.model_dump() == {"n": 32, "every": 10, "grad": False}
    _, deq_ref, _ = rows["deq_ref_pokemon@ours"]
    assert deq_ref.preset == "deq_gan_ref" and deq_ref.arch["injection"] == "dcgan_decoder" and deq_ref.img_size == 64


def test_a_bad_sample_mode_names_the_key_and_the_valid_modes(params_file):
    edit(params_file, lambda d: d["profiles"]["quick"]["eval"].update(sample_mode="batch"))
    with pytest.raises(ConfigError, match=r"profiles.quick.eval.sample_mode: Input should be 'eval' or 'train' \(got 'batch'\)"):
        load_params(params_file)
