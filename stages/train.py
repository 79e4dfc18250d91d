"""Stage train: train one run, `--run experiment` (params.yaml's top-level knobs) or a paper run.

Writes data/runs/<run>/ (checkpoint.pt, samples.png, grids/, snapshots/, config.yaml),
reports/metrics/train/<run>.json and reports/plots/<run>_losses.csv; logs the run to MLflow.
With `profiles.<profile>.seeds: N > 1`, N - 1 more seeds train into data/runs/<run>/seeds/<seed>/
(one MLflow run each), for the seed-to-seed spread that `evaluate` reports.

A killed training resumes from its last checkpoint when the stage is rerun (`dvc repro`), in the
same MLflow run. `torchrun --nproc_per_node N stages/train.py --run <run>` trains data-parallel.
"""
from ganrepro import cli, paths, pipeline
from ganrepro.config import load_params
from ganrepro.data.preprocess import load_processed
from ganrepro.tracking import Tracker
from ganrepro.training import distributed
from ganrepro.training.loop import resume_run_id, train
from ganrepro.utils import atomic_path, check_writable, write_json


def main() -> None:
    params = load_params()
    run = pipeline.run(params, cli.run_name())
    processed = load_processed(pipeline.processed_file(run))
    check_writable(pipeline.run_dir(run), paths.PLOTS, pipeline.metrics_file("train", run).parent)
    for cfg, out_dir in pipeline.seed_runs(run, params.active.seeds):
        name = run.name if cfg.seed == run.seed else f"{run.name}-seed{cfg.seed}"
        with Tracker(name, stage="train", profile=run.profile, enabled=distributed.is_main(),
                     resume_run_id=resume_run_id(out_dir, cfg)) as tracker:
            result = train(cfg, processed, out_dir, tracker)
        if cfg.seed == run.seed:
            summary, history = result
    if distributed.is_main():
        with atomic_path(paths.PLOTS / f"{run.name}_losses.csv") as tmp:
            history.to_csv(tmp, index=False)
        write_json(pipeline.metrics_file("train", run), summary)
    distributed.teardown()


if __name__ == "__main__":
    cli.main(main, "train")
