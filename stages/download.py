"""Stage download: fetch (or, offline, copy from installed packages) every dataset the profile needs.

Writes data/raw/<dataset>/. URL datasets are sha256-checked; torchvision ones md5-checked. Sets that
are already complete are not fetched again. Every dataset is attempted even when one fails; then
the stage exits 2 with one line per failure (dataset, URL, where its files go by hand, how to resume).

    python stages/download.py                                 # the DVC stage: params.yaml's profile
    python stages/download.py --profile paper                 # make paper-data: every paper's data
    python stages/download.py --profile paper --paper deq-gan # make paper-data PAPER=deq-gan

--paper takes names from reports/claims.yaml `papers:` (repeatable, or comma-separated): the
datasets of that paper's runs alone, at the profile's substitution (none at paper scale).
With the profile's `verify_downloads: false` (the paper dry run's synthetic fixtures) files already
present are accepted without md5/sha256 checks, and the stage says so.
"""
from __future__ import annotations

import argparse

import yaml

from ganrepro import cli, paths, pipeline
from ganrepro.config import ConfigError, Params, load_params
from ganrepro.data.datasets import DATASETS
from ganrepro.data.download import DatasetDownloadError, DownloadError, DownloadFailures

CLAIMS = paths.REPORTS / "claims.yaml"


def download_all(names: list[str], verify: bool = True) -> None:
    """Download each dataset in turn, past failures; then raise `DownloadFailures` listing every one."""
    if not verify:
        print("download: verify_downloads is false: md5/sha256 checks of files already present were skipped "
              "(the dry run's fixtures; never for a real run)")
    failures = []
    for name in names:
        spec = DATASETS.get(name)
        print(f"download {name}: {spec.description}")
        try:
            spec.download(paths.RAW / name, verify=verify)
        except (DownloadError, FileNotFoundError) as e:
            line = str(e) if isinstance(e, DatasetDownloadError) else f"{name}: {e}"
            print(f"download {name}: FAILED (continuing with the others)")
            failures.append(line)
    if failures:
        raise DownloadFailures(failures, len(names))


def paper_names(claims_file=CLAIMS) -> dict[str, list[str]]:
    """paper -> its runs, from claims.yaml `papers:`."""
    papers = (yaml.safe_load(claims_file.read_text()) or {}).get("papers") or {}
    return {name: list(spec.get("runs", [])) for name, spec in papers.items()}


def paper_datasets(params: Params, papers: list[str], claims_file=CLAIMS) -> list[str]:
    """The datasets (as the profile uses them) of the runs of `papers`."""
    known = paper_names(claims_file)
    unknown = [p for p in papers if p not in known]
    if unknown:
        raise ConfigError(f"--paper: unknown paper {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(known))}")
    return sorted({pipeline.run(params, run).data for p in papers for run in known[p]})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Download the datasets a profile (or one paper) needs.")
    parser.add_argument("--profile", help="profile to run at, instead of params.yaml's `profile` (e.g. paper)")
    parser.add_argument("--paper", action="append", default=[],
                        help="only this paper's datasets (claims.yaml papers:); repeatable or comma-separated")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    params = load_params()
    if args.profile:
        if args.profile not in params.profiles:
            valid = ", ".join(sorted(params.profiles))
            raise ConfigError(f"--profile: unknown profile {args.profile!r}; valid: {valid}")
        params = params.model_copy(update={"profile": args.profile})
    papers = [p for arg in args.paper for p in arg.split(",") if p]
    if not (papers or args.profile):  # the DVC stage, not make paper-data
        pipeline.check_resolved("data.json", pipeline.data_config(params))
    names = paper_datasets(params, papers) if papers else pipeline.datasets(params)
    download_all(names, verify=params.active.verify_downloads)


if __name__ == "__main__":
    cli.main(main, "download")
