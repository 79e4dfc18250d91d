"""Typed, validated configuration: params.yaml -> `Params` -> one `RunConfig` per training run.

params.yaml has three parts (see its comments):
  * `profile`: quick | paper, the scale every stage runs at;
  * the experiment knobs `model`, `dataset`, `lr`, `steps`, `seed` (`dvc exp run -S lr=2e-4`);
  * `models` (each paper's published setup) and `profiles` (what each scale overrides).

Unknown keys, wrong types and bad values raise `ConfigError`, naming the key and what is valid.
PyYAML reads a hand-written `lr: 2e-4` as the *string* "2e-4" (YAML 1.1 wants a dot), while
`dvc exp run -S lr=2e-4` writes 0.0002: both parse to the float 0.0002 here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError, model_validator

PARAMS_FILE = Path("params.yaml")


class ConfigError(ValueError):
    """A bad params.yaml (or -S value): the message names the key and what would be valid."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- params.yaml schema
class ModelPreset(Strict):
    """One paper's published training setup for a model family (paper scale)."""

    family: str = Field(description="registered model family, e.g. dcgan")
    objective: dict[str, Any] = Field(description="{name: <registered objective>, **its args}")
    arch: dict[str, Any] = Field(default_factory=dict, description="checked by the family's Arch")
    img_size: PositiveInt
    batch_size: PositiveInt
    lr_g: PositiveFloat
    lr_d: PositiveFloat
    lr_scale: PositiveFloat = Field(
        1.0, description="multiplies lr_g and lr_d after every override: a profile that shortens training "
                         "raises the lr and keeps each run's lr relative to the others' (DEQ-GAN's lr column)")
    betas: tuple[float, float]
    epochs: Optional[PositiveInt] = None
    steps: Optional[PositiveInt] = None
    paper: str = Field(description="which paper and table/figure this preset reproduces")

    @model_validator(mode="after")
    def _length(self) -> "ModelPreset":
        if not (self.epochs or self.steps):
            raise ValueError("give `epochs` or `steps`")
        return self


class FIDConfig(Strict):
    """FID (and KID on the same features) of the final G, and of each training snapshot (the curve)."""

    backends: list[str] = Field(description="feature backends that must run")
    optional_backends: list[str] = Field(default_factory=list, description="run if weights cached")
    dims: Literal[64, 192, 768, 2048] = 2048
    n_real: PositiveInt
    n_fake: PositiveInt
    paper_n_fake: Optional[PositiveInt] = Field(
        None, description="also report FID/KID at the paper's own (small) number of fake images")
    curve_n_fake: PositiveInt = Field(500, description="fake images per snapshot of the FID-vs-step curve")
    kid_subsets: PositiveInt = 100
    kid_subset_size: PositiveInt = 1000
    kid_n_real: PositiveInt = Field(10000, description="real features kept in the stats cache for KID")
    batch_size: PositiveInt = 50

    @model_validator(mode="after")
    def _paper_n(self) -> "FIDConfig":
        if self.paper_n_fake and self.paper_n_fake > self.n_fake:
            raise ValueError(f"paper_n_fake ({self.paper_n_fake}) must not exceed n_fake ({self.n_fake})")
        return self


class LPIPSConfig(Strict):
    backends: list[str]
    optional_backends: list[str] = Field(default_factory=list)
    n_pairs: PositiveInt


class ISConfig(Strict):
    """Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))) over `splits` splits."""

    backends: list[str]
    optional_backends: list[str] = Field(default_factory=list)
    n_fake: PositiveInt
    splits: PositiveInt = 10


class EvalConfig(Strict):
    """`sample_mode`: the module mode G samples in for every metric (ganrepro.evaluation.load_generator).
    `eval` (ours; the FastGAN seed Fast_GAN_Vrije's Keras G, whose BatchNorm defaults to training=False):
    BatchNorm with its running statistics. `train` (pytorch/examples dcgan main.py:268-269, heykeetae
    Self-Attention-GAN trainer.py:92-93 and :180-183, upstream FastGAN train.py:165-169, DEQ-GAN main2.py
    :147 and :215-217; docs/reference-diffs.md 5): BatchNorm with the statistics of each sampled batch
    (eval.fid.batch_size images for FID and IS, 100 for LPIPS), and spectral norm's power iteration steps.
    Training's own sample grids (samples.png) are always drawn in eval mode."""

    fid: FIDConfig
    lpips: LPIPSConfig
    inception_score: ISConfig
    sample_mode: Literal["eval", "train"] = "eval"


class TrainSettings(Strict):
    log_every: PositiveInt = 10
    sample_every: PositiveInt = 500
    n_samples: PositiveInt = 64
    snapshots: int = Field(0, ge=0, description="evenly spaced G snapshots kept for the FID curve")
    checkpoint_every: int = Field(0, ge=0, description="steps between resumable checkpoints (0: only at the end)")


MemoryProtocol = Literal["ours", "reference"]


class ReferenceSampling(Strict):
    """The sampling pass the `reference` memory protocol counts: after generator steps 0, every,
    2 every, ..., G (in train mode, as the loop leaves it) on `n` fresh z, with autograd on if `grad`,
    the graph alive until the samples are read back. The defaults are the WGAN reference's,
    Monjur-Mahathir/DEQ-GAN-755-PROJECT@7366c8b wgan/models/wgan_gradient_penalty.py:213, :236-239
    (800 z, not under no_grad, every SAVE_PER_TIMES = 100 G steps from g_iter 0). The DEQ side's own,
    main2.py:75, :147, :209, :215-216 @ 7366c8b, is {n: 32, every: 10, grad: false}."""

    n: PositiveInt = 800
    every: PositiveInt = 100
    grad: bool = True


class StepCounts(Strict):
    steps: PositiveInt
    warmup: int = Field(ge=0)


class ProfilingConfig(StepCounts):
    """`memory_protocol` (every run's row; see ganrepro.profiling): `ours`, the peak over building the
    models and the profiled steps; `reference`, the same window with the `sampling` pass inside it."""

    memory_protocol: MemoryProtocol = "ours"
    sampling: ReferenceSampling = ReferenceSampling()
    profile_only: Optional[StepCounts] = Field(
        None, description="steps and warmup of the runs.<run>.profile_only rows (default: the runs')")


class FeatureNetConfig(Strict):
    epochs: PositiveInt
    batch_size: PositiveInt
    lr: PositiveFloat
    holdout: PositiveInt
    seed: int = Field(ge=0)


class ProfileConfig(Strict):
    description: str
    device: str = "auto"
    dataset: Optional[str] = Field(None, description="offline stand-in for every dataset, or null")
    img_size: Optional[PositiveInt] = Field(None, description="every run's image size, or null")
    presets: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per preset: preset fields to override (arch/objective key by key)")
    steps: Optional[PositiveInt] = Field(
        None, description="every run's generator steps, over its preset's epochs or steps (the paper dry run: 2)")
    dry_run: bool = Field(False, description="a dry run: shapes and protocols only; pages say so, no results")
    verify_downloads: bool = Field(
        True, description="check torchvision's md5s; false only for the dry run's synthetic fixtures")
    train: TrainSettings = TrainSettings()
    seeds: PositiveInt = Field(1, description="training seeds per run (seed, seed+1, ...), for the spread")
    reference_rows: bool = Field(True, description="the real-image floor and uniform-noise rows beside every FID "
                                 "and IS (stage reference: FID and IS of 2 x n_fake images per dataset and size)")
    eval: EvalConfig
    profiling: ProfilingConfig
    feature_net: FeatureNetConfig


class ProfileOnly(Strict):
    """A profiled-only row (see `resolve_profile_only`): `preset` (default: the run's own) on the run's
    dataset at the preset's own img_size, arch and batch at every profile, under `memory_protocol`."""

    preset: Optional[str] = None
    memory_protocol: MemoryProtocol = "ours"
    sampling: Optional[ReferenceSampling] = Field(None, description="default: the profile's profiling.sampling")


class RunSpec(Strict):
    """A run a paper reports: a preset on a dataset, with its own overrides."""

    preset: str
    dataset: str
    feeds: str = Field(description="the paper, table or figure this run feeds")
    overrides: dict[str, Any] = Field(default_factory=dict, description="preset fields for this run")
    eval: dict[str, Any] = Field(default_factory=dict, description="evaluation settings for this run, "
                                 "key by key over the profile's `eval`, e.g. {fid: {dims: 64}}")
    profile_only: dict[str, ProfileOnly] = Field(
        default_factory=dict, description="extra rows of profile.json, by name: this run's dataset, profiled "
        "(never trained) at a preset's paper-scale setting, e.g. {'wgan_pokemon@reference': {memory_protocol: reference}}")


class Params(Strict):
    profile: str
    model: str
    dataset: str
    lr: PositiveFloat
    steps: Optional[PositiveInt] = None
    seed: int = Field(ge=0)
    models: dict[str, ModelPreset]
    runs: dict[str, RunSpec] = Field(default_factory=dict)
    profiles: dict[str, ProfileConfig]

    @property
    def active(self) -> ProfileConfig:
        return self.profiles[self.profile]


# ---------------------------------------------------------------- resolved per run
class RunConfig(Strict):
    """Everything one training run needs, resolved from params.yaml. Saved beside its outputs."""

    name: str
    profile: str
    preset: str
    paper: str
    family: str
    objective: dict[str, Any]
    arch: dict[str, Any]
    dataset: str  # the dataset asked for
    data: str  # the dataset used (differs from `dataset` when the profile substitutes it)
    img_size: PositiveInt
    batch_size: PositiveInt
    lr_g: PositiveFloat
    lr_d: PositiveFloat
    betas: tuple[float, float]
    epochs: Optional[PositiveInt]
    steps: Optional[PositiveInt]
    seed: int
    device: str
    train: TrainSettings

    @property
    def substituted(self) -> bool:
        return self.data != self.dataset


# ---------------------------------------------------------------- loading
def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and validate params.yaml; every error names the file and the key."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: file not found (run from the project root, beside dvc.yaml)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    try:
        params = Params.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_validation_error(path, Params, e)) from None
    _check_names(params, path)
    return params


def _check_names(params: Params, path: Path) -> None:
    if params.profile not in params.profiles:
        raise ConfigError(
            f"{path}: profile: unknown profile {params.profile!r}; valid: {', '.join(sorted(params.profiles))}"
        )
    if params.model not in params.models:
        raise ConfigError(
            f"{path}: model: unknown model {params.model!r}; valid: {', '.join(sorted(params.models))}"
        )
    taken = {"experiment", *params.runs}
    for run, spec in params.runs.items():
        for name, entry in spec.profile_only.items():
            where = f"{path}: runs.{run}.profile_only.{name}"
            if entry.preset is not None and entry.preset not in params.models:
                raise ConfigError(f"{where}.preset: unknown preset {entry.preset!r}; "
                                  f"valid: {', '.join(sorted(params.models))}")
            if name in taken:
                raise ConfigError(f"{where}: the name is already a run's or another profile_only row's")
            taken.add(name)


def resolve_experiment(params: Params) -> RunConfig:
    """The experiment's run: the preset `model`, with the top-level knobs and the profile applied.

    The knob `lr` is G's lr as used, whatever the profile's `lr_scale`; D keeps its ratio to G's."""
    run = resolve_run(params, name="experiment", preset=params.model, dataset=params.dataset)
    ratio = run.lr_d / run.lr_g  # D keeps the preset's lr_d/lr_g ratio (TTUR)
    update = {"lr_g": params.lr, "lr_d": params.lr * ratio}
    if params.steps:
        update |= {"steps": params.steps, "epochs": None}
    return run.model_copy(update=update)


def resolve_paper_run(params: Params, name: str) -> RunConfig:
    if name not in params.runs:
        raise ConfigError(f"runs: unknown run {name!r}; valid: {', '.join(sorted(params.runs))}")
    spec = params.runs[name]
    return resolve_run(params, name, spec.preset, spec.dataset, spec.overrides, where=f"runs.{name}")


def resolve_run(params: Params, name: str, preset: str, dataset: str, overrides: dict | None = None,
                where: str | None = None) -> RunConfig:
    """Preset (paper scale) <- the run's own overrides <- the profile's for the preset -> a RunConfig.

    The profile goes last: it sets the scale (widths, step counts), so a run's `epochs` at paper
    scale does not stretch a quick run.

    `where` names the run's keys in errors: `runs.<name>`, or None for the experiment's top-level keys.
    """
    from ganrepro.data.datasets import DATASETS
    from ganrepro.models import MODELS

    prof = params.active
    key = (lambda k: f"{where}.{k}") if where else (lambda k: {"preset": "model"}.get(k, k))
    if preset not in params.models:
        raise ConfigError(f"{key('preset')}: unknown preset {preset!r}; valid: {', '.join(sorted(params.models))}")
    DATASETS.get(dataset, key=key("dataset"))
    data = prof.dataset or dataset
    DATASETS.get(data, key=f"profiles.{params.profile}.dataset")
    p = params.models[preset].model_dump()
    p = _merge(p, overrides or {}, key("overrides"))
    p = _merge(p, prof.presets.get(preset, {}), f"profiles.{params.profile}.presets.{preset}")
    if prof.steps:
        p = {**p, "steps": prof.steps, "epochs": None}
    from ganrepro.objectives import parse_objective

    family = MODELS.get(p["family"], key=f"models.{preset}.family")
    parse_objective(p["objective"], key=f"{where or 'experiment'} ({preset}, profile {params.profile}): objective")
    _validate(family.Arch, params.models[preset].arch, f"models.{preset}.arch")  # the preset, even if overridden
    return RunConfig(
        name=name,
        profile=params.profile,
        preset=preset,
        paper=p["paper"],
        family=p["family"],
        objective=p["objective"],
        arch=_validate(family.Arch, p["arch"], f"{where or 'experiment'}: arch of {preset} at profile {params.profile}"),
        dataset=dataset,
        data=data,
        img_size=prof.img_size or p["img_size"],
        batch_size=p["batch_size"],
        lr_g=p["lr_g"] * p["lr_scale"],
        lr_d=p["lr_d"] * p["lr_scale"],
        betas=p["betas"],
        epochs=p["epochs"],
        steps=p["steps"],
        seed=params.seed,
        device=prof.device,
        train=prof.train,
    )


def resolve_profile_only(params: Params) -> dict[str, tuple[str, RunConfig, ProfileOnly]]:
    """Every `runs.<run>.profile_only` row -> (the run, its RunConfig, the row's settings).

    The RunConfig is the preset at its own paper-scale fields (with the run's overrides when the
    preset is the run's): none of the profile's scale overrides (dataset, img_size, presets, steps)
    apply, so the row measures the paper's architecture, resolution and batch at every profile, on
    the profile's device. Its `dataset` is the run's; the data is shaped by ganrepro.profiling.
    """
    bare = params.active.model_copy(update={"dataset": None, "img_size": None, "presets": {}, "steps": None})
    paper_scale = params.model_copy(update={"profiles": {**params.profiles, params.profile: bare}})
    out = {}
    for run, spec in params.runs.items():
        for name, entry in spec.profile_only.items():
            preset = entry.preset or spec.preset
            overrides = spec.overrides if preset == spec.preset else {}
            cfg = resolve_run(paper_scale, name, preset, spec.dataset, overrides, where=f"runs.{run}.profile_only.{name}")
            out[name] = (run, cfg, entry)
    return out


def _merge(preset: dict, override: dict, where: str) -> dict:
    """Override preset fields; `arch` and `objective` key by key; a step count replaces epochs."""
    out = {**preset, **override}
    for key in ("arch", "objective"):
        out[key] = {**preset.get(key, {}), **override.get(key, {})}
    if "steps" in override and "epochs" not in override:
        out["epochs"] = None
    if "epochs" in override and "steps" not in override:
        out["steps"] = None
    return _validate(ModelPreset, out, where)


def _validate(model: type[BaseModel], data: dict, where: str) -> dict:
    try:
        return model.model_validate(data).model_dump()
    except ValidationError as e:
        raise ConfigError(format_validation_error(where, model, e)) from None


def eval_config(params: Params, name: str) -> EvalConfig:
    """The profile's `eval`, with the run's own `eval` settings merged key by key."""
    base = params.active.eval.model_dump()
    spec = params.runs.get(name)
    for section, values in (spec.eval if spec else {}).items():
        if not isinstance(values, dict):
            raise ConfigError(f"runs.{name}.eval.{section}: expected a mapping of settings")
        base[section] = {**base.get(section, {}), **values}
    try:
        return EvalConfig.model_validate(base)
    except ValidationError as e:
        raise ConfigError(format_validation_error(f"runs.{name}.eval (over profiles.{params.profile}.eval)",
                                                  EvalConfig, e)) from None


def load_run_config(path: str | Path) -> RunConfig:
    return RunConfig.model_validate(yaml.safe_load(Path(path).read_text()))


def dump_yaml(cfg: BaseModel) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


# ---------------------------------------------------------------- readable errors
def format_validation_error(where: str | Path, model: type[BaseModel], err: ValidationError) -> str:
    """One line per problem: `<file>: <dotted.key>: <what is wrong>; valid keys: ...`."""
    lines = []
    for e in err.errors():
        key = ".".join(str(part) for part in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            valid = _fields_at(model, e["loc"][:-1])
            msg = f"unknown key; valid keys here: {', '.join(valid)}"
        elif e["type"] == "missing":
            msg = "required key is missing"
        else:
            msg = f"{e['msg']} (got {e.get('input')!r})"
        lines.append(f"{where}: {key}: {msg}")
    return "\n".join(lines)


def _fields_at(model: Any, loc: tuple) -> list[str]:
    """The field names of the pydantic model reached by following `loc` from `model`."""
    for part in loc:
        if isinstance(model, type) and issubclass(model, BaseModel):
            model = model.model_fields[part].annotation if part in model.model_fields else None
        elif get_origin(model) is dict:
            model = get_args(model)[1]
        if get_origin(model) is Union:  # Optional[X]
            model = next(a for a in get_args(model) if a is not type(None))
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []
