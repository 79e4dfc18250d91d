"""Stage profile: peak memory and time per generator step of each run's model, same conditions for all.

A fixed number of steps per model (params: profiles.<p>.profiling), not a whole training.
Writes reports/metrics/profile.json with the device and versions beside every figure.
"""
from ganrepro import cli, paths, pipeline
from ganrepro.config import load_params
from ganrepro.data.preprocess import load_processed
from ganrepro.profiling import profile_run
from ganrepro.utils import write_json


def main() -> None:
    params = load_params()
    cfg = params.active.profiling
    out = {run.name: profile_run(run, load_processed(pipeline.processed_file(run)), cfg.steps, cfg.warmup)
           for run in pipeline.runs(params)}
    write_json(paths.METRICS / "profile.json", out)
    print(out)


if __name__ == "__main__":
    cli.main(main, "profile")
