"""Stage profile: peak memory and time per generator step of each run's model, same conditions for all.

A fixed number of steps per model (params: profiles.<p>.profiling), not a whole training.
Writes reports/metrics/profile.json with the device, versions and date beside every figure, and per
run the parameter counts of G and D (`params_g`, `params_d`) and the FLOPs and ATen ops of one
training step (`flops_per_step`, `aten_ops_per_step`: one generator step with its n_critic critic
steps, counted on the first, untimed step), which the paper dry run's plan turns into GPU estimates.
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
