"""Stage train: train one run, `--run experiment` (params.yaml's top-level knobs) or a paper run.

Writes data/runs/<run>/ (checkpoint.pt, samples.png, grids/, snapshots/, config.yaml),
reports/metrics/train/<run>.json and reports/plots/<run>_losses.csv; logs the run to MLflow.
With `profiles.<profile>.seeds: N > 1`, N - 1 more seeds train into data/runs/<run>/seeds/<seed>/
(one MLflow run each), for the seed-to-seed spread that `evaluate` reports.
"""
from ganrepro import cli, paths, pipeline
from ganrepro.config import load_params
from ganrepro.data.preprocess import load_processed
from ganrepro.tracking import Tracker
from ganrepro.training.loop import train
from ganrepro.utils import atomic_path, write_json


def main() -> None:
    params = load_params()
    run = pipeline.run(params, cli.run_name())
    processed = load_processed(pipeline.processed_file(run))
    for cfg, out_dir in pipeline.seed_runs(run, params.active.seeds):
        name = run.name if cfg.seed == run.seed else f"{run.name}-seed{cfg.seed}"
        with Tracker(name, stage="train", profile=run.profile) as tracker:
            result = train(cfg, processed, out_dir, tracker)
        if cfg.seed == run.seed:
            summary, history = result
    with atomic_path(paths.PLOTS / f"{run.name}_losses.csv") as tmp:
        history.to_csv(tmp, index=False)
    write_json(pipeline.metrics_file("train", run), summary)


if __name__ == "__main__":
    cli.main(main, "train")
