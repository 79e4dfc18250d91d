"""The paper dry run: the paper profile's whole DAG, offline, on a CPU, in minutes (`make paper-dryrun`).

Every paper run (params.yaml `runs:` and the experiment) trains at its paper architecture,
resolution and batch size for 2 generator steps, one seed; every metric runs at the paper's
protocol (backends, dims, resize) on small sample counts; the pages are rendered under the banner
"paper dry run: shapes and protocols only, no results". It checks that `make paper` can run, not
what it would find.

    python -m ganrepro.dryrun                       # workspace build/paper-dryrun/, plan reports/paper-plan.md
    python -m ganrepro.dryrun --runs began_celeba_g05,deq_pokemon_3b_lr1e4 --keep /tmp/dry --plan /tmp/plan.md

What it does (ganrepro.dryrun.run): copies the project's files (git-tracked, plus untracked ones
not ignored) into a workspace, commits them to a fresh git repo there, writes its params.yaml with
`profile: paper` and `profiles.paper` updated by `OVERRIDES` below (nothing else changes); builds
synthetic datasets in their real on-disk formats (ganrepro.dryrun.fixtures), serves the URL
datasets' files from 127.0.0.1 (ganrepro.dryrun.serve) through manifests in $GANREPRO_MANIFESTS,
writes stand-in weights (ganrepro.standin_weights) into a private $TORCH_HOME, probes each
torchvision dataset's real download code up to its first network call, runs `dvc repro` there,
times every stage and writes the plan (ganrepro.report.plan.write_plan).
"""
from __future__ import annotations

# What the dry run changes in `profiles.paper`, and nothing else: architectures, resolutions, batch
# sizes, objectives, learning rates, metric backends, dims and resizes stay the paper's. Nested
# mappings update key by key (`eval.fid` keeps `backends` and `dims`).
OVERRIDES: dict = {
    "device": "cpu",                 # the paper's `auto` would pick a GPU; this runs on any machine
    "seeds": 1,                      # the paper trains 3 seeds per run
    "steps": 2,                      # every run's generator steps, over its preset's epochs/steps
    "dry_run": True,                 # the report's banner: shapes and protocols only, no results
    "verify_downloads": False,       # the synthetic fixtures' md5s cannot match torchvision's
    # one snapshot (the FID curve's one point, at step 2; each 2048-d FID is ~3 s of eigendecompositions
    # on 2 cores, metrics/fid.py); a mid-run checkpoint at step 1, as a resumable paper run writes
    "train": {"log_every": 1, "sample_every": 2, "n_samples": 16, "snapshots": 1, "checkpoint_every": 1},
    "eval": {
        # n_fake stays >= 50: the FastGAN runs' `paper_n_fake: 50` (the paper's count) must not exceed it
        "fid": {"n_real": 64, "n_fake": 50, "curve_n_fake": 10, "batch_size": 25,
                "kid_subsets": 10, "kid_subset_size": 25, "kid_n_real": 64},
        "lpips": {"n_pairs": 8},
        "inception_score": {"n_fake": 20, "splits": 2},
    },
    # on CPU: one step under torch's profiler (peak memory, FLOPs), then one timed step
    "profiling": {"steps": 1, "warmup": 0},
    "feature_net": {"epochs": 1},    # the quick profile's digit classifier: a stage of the DAG, unused by paper metrics
}

BANNER = "paper dry run: shapes and protocols only, no results"


def merged(base: dict, update: dict) -> dict:
    """`base` updated by `update`, nested mappings key by key (neither is modified)."""
    out = dict(base)
    for key, value in update.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
