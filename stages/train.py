"""Stage train: train one run, `--run experiment` (params.yaml's top-level knobs) or a paper run.

Writes data/runs/<run>/ (checkpoint.pt, samples.png, grids/, snapshots/, config.yaml),
reports/metrics/train/<run>.json (numbers; the rest in reports/protocols/train/<run>.json) and
reports/plots/<run>_losses.csv; logs the run to MLflow.
With `profiles.<profile>.seeds: N > 1`, N - 1 more seeds train into data/runs/<run>/seeds/<seed>/
(one MLflow run each, `<run>-seed<k>`), for the seed-to-seed spread that `evaluate` reports.
Each MLflow run ends with the trained generator logged as an MLflow PyTorch model (ganrepro.tracking).

A killed training resumes from its last checkpoint when the stage is rerun (`dvc repro`), in the
same MLflow run. `torchrun --nproc_per_node N stages/train.py --run <run>` trains data-parallel.
A run whose resolved config another run shares (at the quick profile: runs differing only in the
dataset they ask for) copies that run's finished training instead of training again (ganrepro.reuse).
"""
import shutil

from ganrepro import cli, paths, pipeline, records, reuse
from ganrepro.config import load_params
from ganrepro.data.preprocess import load_processed
from ganrepro.models import export
from ganrepro.tracking import Tracker, run_tags
from ganrepro.training import distributed
from ganrepro.training.loop import resume_run_id, train
from ganrepro.utils import atomic_path, check_writable


def main() -> None:
    params = load_params()
    run = pipeline.run(params, cli.run_name())
    pipeline.check_resolved(f"{run.name}.train.json", pipeline.train_config(params, run))
    processed = load_processed(pipeline.processed_file(run))
    metrics = pipeline.metrics_file("train", run)
    check_writable(pipeline.run_dir(run), paths.PLOTS, metrics.parent, records.protocol_path(metrics).parent)
    fingerprint = reuse.training_fingerprint(run, params.active.seeds, pipeline.processed_file(run))
    source = reuse.find_training(run, pipeline.runs(params), pipeline.run_dir, fingerprint)
    if source is not None:  # every rank finds the same; rank 0 copies
        if distributed.is_main():
            copy(run, source, fingerprint)
        return distributed.teardown()
    for cfg, out_dir in pipeline.seed_runs(run, params.active.seeds):
        name = run.name if cfg.seed == run.seed else f"{run.name}-seed{cfg.seed}"
        with Tracker(name, stage="train", profile=run.profile, enabled=distributed.is_main(),
                     resume_run_id=resume_run_id(out_dir, cfg), tags=run_tags(cfg, name)) as tracker:
            result = train(cfg, processed, out_dir, tracker)
            if tracker.enabled:  # rank 0: the sampling G, from the checkpoint evaluation will score
                tracker.log_generator(export.from_checkpoint(out_dir / "checkpoint.pt", processed["images"].shape[1],
                                                             processed["n_classes"]))
        if cfg.seed == run.seed:
            summary, history = result
    if distributed.is_main():
        with atomic_path(paths.PLOTS / f"{run.name}_losses.csv") as tmp:
            history.to_csv(tmp, index=False)
        records.write(pipeline.metrics_file("train", run), summary, "train", pipeline.metrics_key(run))
        reuse.write_fingerprint(pipeline.run_dir(run), fingerprint)
    distributed.teardown()


def copy(run, source, fingerprint: str) -> None:
    """`source`'s finished training as `run`'s: its folder, loss curve and train record, marked
    `same_training_as`. No MLflow run here: evaluate gives the copy one, with the source's losses."""
    reuse.copy_training(pipeline.run_dir(source), pipeline.run_dir(run), run, source.name, fingerprint)
    with atomic_path(paths.PLOTS / f"{run.name}_losses.csv") as tmp:
        shutil.copyfile(paths.PLOTS / f"{source.name}_losses.csv", tmp)
    record = records.read(pipeline.metrics_file("train", source), pipeline.metrics_key(source))
    records.write(pipeline.metrics_file("train", run), reuse.mark(record, source.name), "train",
                  pipeline.metrics_key(run))
    print(f"train {run.name}: the same training as {source.name} (ganrepro.reuse), copied")


if __name__ == "__main__":
    cli.main(main, "train")
