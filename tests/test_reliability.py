"""Resume after SIGKILL (bit for bit), determinism, divergence, and data-parallel training.

The resume and torchrun tests run training in child processes, as a user's stage would run.
"""
from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, fake_processed, poison_g_step, tiny_run
from ganrepro.config import TrainSettings
from ganrepro.tracking import Tracker
from ganrepro.training import loop
from ganrepro.training.checkpoint import load_checkpoint

STEPS = 12
TRAIN = TrainSettings(log_every=1, sample_every=100, n_samples=4, snapshots=3, checkpoint_every=2)

# A child process that trains the BEGAN tiny run (k_t, lr schedule, RNG-driven z) into argv[1];
# argv[2] seconds of sleep per step make it slow enough to be killed mid-way.
CHILD = f"""
import sys, time
sys.path[:0] = [{str(ROOT / 'tests')!r}, {str(ROOT / 'src')!r}]
from conftest import fake_processed
from test_reliability import began_cfg
from ganrepro.tracking import Tracker
from ganrepro.training import loop

out, pause = sys.argv[1], float(sys.argv[2])
step = loop.train_step
loop.train_step = lambda objective, data: (time.sleep(pause), step(objective, data))[1]
cfg = began_cfg()
with Tracker("resume", stage="train", profile="quick", resume_run_id=loop.resume_run_id(out, cfg)) as tracker:
    loop.train(cfg, fake_processed(n=32), out, tracker)
"""


def began_cfg():
    return tiny_run(preset="began", family="began", objective={"name": "began", "gamma": 0.5, "lr_window": 3},
                    arch={"z_dim": 8, "h_dim": 8, "ngf": 4, "ndf": 4}, lr_g=1e-4, lr_d=1e-4,
                    betas=(0.9, 0.999), steps=STEPS, train=TRAIN)


def child(out: Path, pause: float, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(out), str(pause)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def assert_same(a, b, where: str = "") -> None:
    """Equal to the bit: tensors with torch.equal, containers element by element."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b or (a != a and b != b), f"{where}: {a!r} != {b!r}"


STATE = ["G", "D", "opt_g", "opt_d", "objective", "rng", "step", "config", "history", "complete"]


@pytest.fixture
def child_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["GANREPRO_ROOT"] = str(tmp_path)  # a private MLflow store
    return env


def test_a_killed_training_resumes_bit_for_bit(tmp_path, child_env):
    straight = child(tmp_path / "straight", 0.0, child_env)
    assert straight.wait(timeout=300) == 0, straight.stderr.read()

    killed = child(tmp_path / "killed", 0.3, child_env)
    ckpt, deadline = tmp_path / "killed" / "checkpoint.pt", time.time() + 300
    while not (ckpt.exists() and load_checkpoint(ckpt)["step"] >= 4):
        assert killed.poll() is None and time.time() < deadline, "the child ended before it could be killed"
        time.sleep(0.2)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    partial = load_checkpoint(ckpt)
    assert 4 <= partial["step"] < STEPS and partial["complete"] is False

    resumed = child(tmp_path / "killed", 0.0, child_env)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    a, b = load_checkpoint(tmp_path / "straight" / "checkpoint.pt"), load_checkpoint(ckpt)
    assert b["complete"] and b["step"] == STEPS
    for key in STATE:
        assert_same(a[key], b[key], key)
    snaps = sorted(p.name for p in (tmp_path / "killed" / "snapshots").iterdir())
    assert snaps == sorted(p.name for p in (tmp_path / "straight" / "snapshots").iterdir())

    # the resumed training continued its MLflow run: one run, FINISHED, every step's loss logged once
    db = sqlite3.connect(tmp_path / "mlflow.db")
    runs = db.execute("select run_uuid, status from runs where name='resume'").fetchall()
    assert len(runs) == 2 and all(status == "FINISHED" for _, status in runs)
    assert b["mlflow_run_id"] == partial["mlflow_run_id"]
    steps = [s for (s,) in db.execute("select step from metrics where run_uuid=? and key='loss_g' order by step",
                                      (b["mlflow_run_id"],))]
    assert steps[-1] == STEPS and set(steps) == set(range(1, STEPS + 1))


def test_two_runs_with_the_same_seed_are_identical_on_cpu(tmp_path, mlflow_store):
    results = []
    for name in ("a", "b"):
        with Tracker(name, stage="train", profile="quick") as tracker:
            summary, history = loop.train(began_cfg(), fake_processed(n=32), tmp_path / name, tracker)
        results.append((summary, history, load_checkpoint(tmp_path / name / "checkpoint.pt")))
    (sa, ha, ca), (sb, hb, cb) = results
    assert ha.equals(hb) and {k: v for k, v in sa.items() if "second" not in k} == \
        {k: v for k, v in sb.items() if "second" not in k}
    for key in STATE:
        assert_same(ca[key], cb[key], key)
    other = tiny_run(**{**began_cfg().model_dump(), "seed": 1})
    with Tracker("c", stage="train", profile="quick") as tracker:
        _, hc = loop.train(other, fake_processed(n=32), tmp_path / "c", tracker)
    assert not hc.equals(ha)  # the seed matters


def test_divergence_keeps_the_last_good_checkpoint_and_fails_the_run(tmp_path, mlflow_store, monkeypatch):
    from ganrepro.objectives.began import BEGANObjective

    poison_g_step(monkeypatch, BEGANObjective, at_call=5, value=float("inf"))
    with pytest.raises(loop.DivergenceError, match=r"diverged at step 5: \{'loss_g': inf\}"):
        with Tracker("div", stage="train", profile="quick") as tracker:
            loop.train(began_cfg(), fake_processed(n=32), tmp_path / "run", tracker)
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert ckpt["step"] == 4 and ckpt["complete"] is False  # the last good one, resumable
    db = sqlite3.connect(mlflow_store / "mlflow.db")
    (run_id, status), = db.execute("select run_uuid, status from runs where name='div'").fetchall()
    error = db.execute("select value from tags where run_uuid=? and key='error'", (run_id,)).fetchone()[0]
    assert status == "FAILED" and "diverged at step 5" in error


def test_a_changed_config_starts_afresh_instead_of_resuming(tmp_path, mlflow_store):
    cfg = began_cfg()
    with Tracker("a", stage="train", profile="quick") as tracker:
        loop.train(cfg, fake_processed(n=32), tmp_path / "run", tracker)
    (tmp_path / "run" / "grids" / "stale.png").write_bytes(b"x")
    changed = cfg.model_copy(update={"steps": 6})
    assert loop.resume_run_id(tmp_path / "run", changed) is None
    with Tracker("b", stage="train", profile="quick") as tracker:
        summary, _ = loop.train(changed, fake_processed(n=32), tmp_path / "run", tracker)
    assert "resumed_from_step" not in summary and load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 6
    assert not (tmp_path / "run" / "grids" / "stale.png").exists()


def test_batches_are_a_function_of_seed_and_index_and_shard_disjointly():
    data = fake_processed(n=40)
    stream = loop.batches(data["images"], data["labels"], 4, 7, torch.device("cpu"))
    first = [next(stream)[0] for _ in range(25)]  # 10 batches an epoch: crosses two epoch boundaries
    resumed = loop.batches(data["images"], data["labels"], 4, 7, torch.device("cpu"), start=13)
    assert all(torch.equal(next(resumed)[0], x) for x in first[13:])
    shards = [loop.batches(data["images"], data["labels"], 4, 7, torch.device("cpu"), rank=r, world=2)
              for r in (0, 1)]
    seen = [torch.cat([next(s)[0] for _ in range(5)]) for s in shards]  # one epoch: 5 batches per rank
    rows = {tuple(x.flatten().tolist()) for x in torch.cat(seen)}
    assert len(rows) == 40  # the two ranks read every image of the epoch once between them


DDP_CHILD = f"""
import sys
sys.path[:0] = [{str(ROOT / 'tests')!r}, {str(ROOT / 'src')!r}]
import torch
from conftest import fake_processed, tiny_run
from ganrepro.config import TrainSettings
from ganrepro.tracking import Tracker
from ganrepro.training import distributed, loop

out, models = sys.argv[1], {{}}
build = loop.build
loop.build = lambda *a, **k: models.setdefault("GD", build(*a, **k))  # keep each rank's G to compare
cfg = tiny_run(steps=4, train=TrainSettings(log_every=1, sample_every=2, n_samples=4, checkpoint_every=2))
with Tracker("ddp", stage="train", profile="quick", enabled=distributed.is_main()) as tracker:
    summary, history = loop.train(cfg, fake_processed(n=32), out, tracker)
G = models["GD"][0]
torch.save({{"G": dict(G.named_parameters()), "summary": summary, "rank": distributed.rank()}},
           f"{{out}}/../rank{{distributed.rank()}}.pt")
distributed.teardown()
"""


def test_torchrun_trains_data_parallel_on_two_cpu_processes(tmp_path, child_env):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), "--no-python", sys.executable, "-c", DDP_CHILD,
           str(tmp_path / "run")]
    done = subprocess.run(cmd, env={**child_env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["summary"]["steps"] == 4 and r["summary"]["processes"] == 2 for r in ranks)
    # averaged gradients keep the ranks' weights in step (BatchNorm's running statistics stay each
    # rank's own, as under DDP's reducer; rank 0's are the ones saved)
    assert_same(ranks[0]["G"], ranks[1]["G"], "G")
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert ckpt["step"] == 4 and ckpt["complete"]
    assert all(v == v and abs(v) < float("inf") for row in ckpt["history"] for v in row.values())
    db = sqlite3.connect(tmp_path / "mlflow.db")
    assert db.execute("select count(*) from runs where name='ddp'").fetchone()[0] == 1  # rank 0 alone logs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
