"""Stage train: train one run, `--run experiment` (params.yaml's top-level knobs) or a paper run.

Writes data/runs/<run>/ (checkpoint.pt, samples.png, grids/, config.yaml),
reports/metrics/train/<run>.json and reports/plots/<run>_losses.csv; logs the run to MLflow.
"""
from ganrepro import cli, paths, pipeline
from ganrepro.config import load_params
from ganrepro.data.preprocess import load_processed
from ganrepro.tracking import Tracker
from ganrepro.training.loop import train
from ganrepro.utils import atomic_path, write_json


def main() -> None:
    run = pipeline.run(load_params(), cli.run_name())
    processed = load_processed(pipeline.processed_file(run))
    with Tracker(run.name, stage="train", profile=run.profile) as tracker:
        summary, history = train(run, processed, pipeline.run_dir(run), tracker)
    with atomic_path(paths.PLOTS / f"{run.name}_losses.csv") as tmp:
        history.to_csv(tmp, index=False)
    write_json(pipeline.metrics_file("train", run), summary)


if __name__ == "__main__":
    cli.main(main, "train")
