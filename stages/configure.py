"""Stage configure: params.yaml -> data/configs/, what every later stage reads, resolved per stage and run.

    data/configs/<run>.train.json   train_run@<run> (and train): the run's resolved config, seeds
    data/configs/<run>.eval.json    evaluate_run@<run> (and evaluate): eval settings, seeds, device
    data/configs/data.json          download, preprocess: datasets and sizes
    data/configs/feature_net.json   feature_net
    data/configs/fid_stats.json     fid_stats
    data/configs/profile.json       profile

Each stage depends on its own file instead of on params.yaml's sections, so a change to one run's
settings reruns that run's stages alone (ganrepro.pipeline.resolved). A bad params.yaml stops here,
with the key named, before any file is written.
"""
from ganrepro import cli, pipeline
from ganrepro.config import load_params
from ganrepro.utils import write_json


def main() -> None:
    files = pipeline.resolved(load_params())  # every run resolved (and so validated) before any write
    for old in pipeline.CONFIGS.glob("*.json"):  # runs no longer in params.yaml (outside dvc repro)
        if old.name not in files:
            old.unlink()
    for name, payload in files.items():
        write_json(pipeline.config_file(name), payload)
    print(f"configure: {len(files)} files in {pipeline.CONFIGS}/")


if __name__ == "__main__":
    cli.main(main, "configure")
