"""Stage train: train the experiment (params.yaml's model/dataset/lr/steps/seed at the profile's scale).

Writes data/runs/<run>/ (checkpoint.pt, samples.png, grids/, config.yaml),
reports/metrics/train.json and reports/plots/<run>_losses.csv; logs the run to MLflow.
"""
from ganrepro import cli, paths, pipeline
from ganrepro.config import load_params
from ganrepro.data.preprocess import load_processed
from ganrepro.tracking import Tracker
from ganrepro.training.loop import train
from ganrepro.utils import atomic_path, write_json


def main() -> None:
    params = load_params()
    (run,) = pipeline.runs(params)
    processed = load_processed(pipeline.processed_file(run))
    with Tracker(run.name, stage="train", profile=run.profile) as tracker:
        summary, history = train(run, processed, pipeline.run_dir(run), tracker)
    with atomic_path(paths.PLOTS / f"{run.name}_losses.csv") as tmp:
        history.to_csv(tmp, index=False)
    write_json(paths.METRICS / "train.json", {run.name: summary})


if __name__ == "__main__":
    cli.main(main, "train")
