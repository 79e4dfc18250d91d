"""Stage profile: peak memory and time per generator step of each run's model, same conditions for all.

A fixed number of steps per model (params: profiles.<p>.profiling), not a whole training.
Writes reports/metrics/profile.json (per run: peak memory, seconds per step and per epoch) and
reports/protocols/profile.json: the device, versions and date beside every figure, and per
run the parameter counts of G and D (`params_g`, `params_d`) and the FLOPs and ATen ops of one
training step (`flops_per_step`, `aten_ops_per_step`: one generator step with its n_critic critic
steps, counted on the first, untimed step), which the paper dry run's plan turns into GPU estimates.

Every row says its `memory_protocol` (profiles.<p>.profiling.memory_protocol: ours | reference; see
ganrepro.profiling). Beside the runs, the rows of `runs.<run>.profile_only` (e.g.
`wgan_pokemon@reference`): a preset profiled, never trained, at its paper-scale architecture,
resolution and batch at every profile, on the run's preprocessed images reshaped to that setting
(DEQ-GAN Table 1's baselines; config.resolve_profile_only, profiling.profile_only_row).
Runs whose step cost is set by the same fields (pipeline.PROFILED; at the quick profile, e.g. the three
WGAN-GP runs) are measured once: the others' rows are its numbers, with `same_profile_as: <run>`.
"""
import json

from ganrepro import cli, paths, pipeline, records
from ganrepro.config import load_params, resolve_profile_only
from ganrepro.data.preprocess import load_processed
from ganrepro.profiling import profile_only_row, profile_run


def main() -> None:
    params = load_params()
    pipeline.check_resolved("profile.json", pipeline.profile_config(params))
    cfg = params.active.profiling
    out, measured = {}, {}
    for run in pipeline.runs(params):
        key = json.dumps(pipeline.profiled(run), sort_keys=True)
        if key in measured:
            out[run.name] = {**out[measured[key]], "same_profile_as": measured[key]}
            continue
        measured[key] = run.name
        out[run.name] = profile_run(run, load_processed(pipeline.processed_file(run)), cfg.steps, cfg.warmup,
                                    cfg.memory_protocol, cfg.sampling)
    for name, (source, run, entry) in resolve_profile_only(params).items():  # e.g. wgan_pokemon@reference
        processed = load_processed(pipeline.processed_file(pipeline.run(params, source)))
        out[name] = profile_only_row(run, entry, processed, source, cfg)
    records.write(paths.METRICS / "profile.json", out, "profile")
    print(out)


if __name__ == "__main__":
    cli.main(main, "profile")
