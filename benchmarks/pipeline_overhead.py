"""Pipeline overhead: images per second of our training loop against a bare PyTorch loop.

What it measures
    (a) ours: `ganrepro.training.loop.train` exactly as the train stage calls it, with a real
        `Tracker` writing to a temporary MLflow store (sqlite + artifacts), tqdm on, and the quick
        profile's train settings (log every 10 steps, a sample grid every 300 and at the end,
        5 G snapshots, a resumable checkpoint every 100 steps);
    (b) bare: the same G, D, Adam and non-saturating BCE steps written inline over the same
        `loop.batches(...)` stream, with no logging, sampling or checkpointing.
How
    DCGAN at the quick widths (ngf = ndf = 32, z 100, 32 px, batch 64, 1 channel; the quick profile's
    `dcgan` preset from params.yaml) on the real mnist5k digits, same seed and same number of steps
    for both, alternated a/b/a/b for 5 rounds; medians. images/s = steps x batch / seconds of the
    step loop (ours: from the first step to the last, with the logging, grids, snapshots and
    checkpoints inside it, the span `train` reports as `train_seconds`; bare: the same span). The whole call
    (MLflow run creation, config logging, final checkpoint, samples) is given beside it. Both loops
    must end with bit-identical weights (checked): the comparison is the same work.
    Our per-step extras are timed by wrapping the library's functions in this process only.
Also (speed-ups the issue asks to try, on the bare loop): channels_last, and torch.compile of G and D;
    throughput after warm-up, compile time, and how far each moves the weights from the default.
Goal
    ours >= 0.95x bare: headline `pipeline_over_bare_throughput` = the median over rounds of ours / bare
    (images/s), each round's pair run back to back (ours first in even rounds, bare first in odd ones), so
    that a slow spell of the machine hits both.

    python benchmarks/pipeline_overhead.py --quick    # 200 steps a run (about 3 min on an idle 2-core CPU)
    python benchmarks/pipeline_overhead.py            # 800 steps a run (the quick profile's own count)
"""
from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from common import ROOT, load_digits, write_section

RUN = "dcgan_cifar10"  # the dcgan preset; the quick profile resolves it to ngf = ndf = 32, 32 px, batch 64


def quick_config(steps: int):
    """The quick profile's DCGAN run, on CPU, for `steps` generator steps."""
    from ganrepro import pipeline
    from ganrepro.config import load_params

    params = load_params(ROOT / "params.yaml")
    params = params.model_copy(update={"profile": "quick"})
    cfg = pipeline.run(params, RUN)
    assert cfg.family == "dcgan" and cfg.objective.get("loss", "bce") == "bce", cfg
    return cfg.model_copy(update={"steps": steps, "epochs": None, "device": "cpu"})


# ---------------------------------------------------------------- (a) our loop, instrumented
class Timers:
    """Wraps library functions, in this process only, to time each call; `window` is the step loop's span."""

    def __init__(self):
        self.calls: list[tuple[str, float, float]] = []  # (label, start, seconds)
        self.window = (0.0, 0.0)
        self.cpu_s = 0.0  # process CPU seconds of the step loop
        self._undo = []

    def wrap(self, owner, attr: str, label: str) -> None:
        original = getattr(owner, attr)

        @functools.wraps(original)
        def timed(*a, **kw):
            t = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                self.calls.append((label, t, time.perf_counter() - t))

        setattr(owner, attr, timed)
        self._undo.append((owner, attr, original))

    def in_loop(self) -> dict[str, float]:
        """Seconds per label of the calls made inside the step loop (not the final checkpoint etc.)."""
        start, end = self.window
        out: dict[str, float] = {}
        for label, t, s in self.calls:
            out[label] = out.get(label, 0.0) + (s if start <= t <= end else 0.0)
        return out

    def restore(self) -> None:
        for owner, attr, original in reversed(self._undo):
            setattr(owner, attr, original)
        self._undo.clear()


def instrument() -> Timers:
    from ganrepro.tracking import Tracker
    from ganrepro.training import loop

    timers = Timers()

    class Bar(loop.tqdm):  # the loop's own progress bar, unchanged, recording when iteration starts and ends
        def __iter__(self):
            start, cpu = time.perf_counter(), time.process_time()
            yield from super().__iter__()
            timers.window, timers.cpu_s = (start, time.perf_counter()), time.process_time() - cpu

    timers._undo.append((loop, "tqdm", loop.tqdm))
    loop.tqdm = Bar
    timers.wrap(loop, "train_step", "train_step (D + G step)")
    timers.wrap(loop, "check_finite", "check_finite")
    timers.wrap(Tracker, "log_metrics", "MLflow log_metrics (buffered)")
    timers.wrap(Tracker, "flush", "MLflow flush (before each checkpoint)")
    timers.wrap(Tracker, "log_image", "MLflow log_image (grids)")
    timers.wrap(loop, "sample_grid", "sample grids")
    timers.wrap(loop, "save_torch", "G snapshots")
    timers.wrap(loop, "save_checkpoint", "checkpoints")
    return timers


def ours(cfg, processed: dict, out_dir: Path, round_: int) -> dict:
    from ganrepro.tracking import Tracker
    from ganrepro.training.loop import train

    timers = instrument()
    t0 = time.perf_counter()
    try:
        with Tracker(f"bench-overhead-{round_}", stage="benchmark", profile=cfg.profile) as tracker:
            summary, _ = train(cfg, processed, out_dir, tracker)
    finally:
        timers.restore()
    whole = time.perf_counter() - t0
    ckpt = torch.load(out_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
    start, end = timers.window
    return {"loop_s": end - start, "cpu_s": timers.cpu_s, "train_seconds": summary["train_seconds"], "whole_s": whole,
            "parts": timers.in_loop(), "G": ckpt["G"], "D": ckpt["D"]}


# ---------------------------------------------------------------- (b) the bare loop
def bare(cfg, processed: dict, steps: int, variant: str = "default", warmup: int = 0) -> dict:
    """The same DCGAN training written inline: no logging, grids, snapshots or checkpoints.

    variant: default | channels_last | compile. `warmup` of the `steps` are run before the clock starts.
    """
    from ganrepro.models import build_models
    from ganrepro.training.loop import batches
    from ganrepro.utils import seed_everything

    images, labels = processed["images"], processed["labels"]
    t0 = time.perf_counter()
    seed_everything(cfg.seed)
    G, D = build_models(cfg.family, cfg.arch, cfg.img_size, images.shape[1], processed["n_classes"])
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    torch.manual_seed(cfg.seed)  # as `train` does after building
    fmt = torch.channels_last if variant == "channels_last" else torch.contiguous_format
    G, D = G.to(memory_format=fmt), D.to(memory_format=fmt)
    g, d = (torch.compile(G), torch.compile(D)) if variant == "compile" else (G, D)
    data = batches(images, labels, cfg.batch_size, cfg.seed, torch.device("cpu"))
    z_dim, b = cfg.arch["z_dim"], cfg.batch_size

    def step() -> None:
        real = next(data)[0].contiguous(memory_format=fmt)
        with torch.no_grad():
            fake = g(torch.randn(b, z_dim))
        d_real, d_fake = d(real), d(fake)
        loss_d = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        d_fake = d(g(torch.randn(b, z_dim)))
        loss_g = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))  # non-saturating
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

    for _ in range(warmup):
        step()
    t1, c1 = time.perf_counter(), time.process_time()
    for _ in range(steps - warmup):
        step()
    t2, c2 = time.perf_counter(), time.process_time()
    return {"loop_s": t2 - t1, "cpu_s": c2 - c1, "whole_s": t2 - t0, "warmup_s": t1 - t0,
            "G": G.state_dict(), "D": D.state_dict()}


def max_diff(a: dict, b: dict) -> float:
    return max((x.float() - y.float()).abs().max().item() for x, y in zip(a.values(), b.values()))


# ---------------------------------------------------------------- the benchmark
def alternate(cfg, processed: dict, tmp: Path, rounds: int) -> tuple[list[dict], list[dict]]:
    """Rounds of one run each, ours first in even rounds and bare first in odd ones (no order bias)."""
    a, b = [], []
    for r in range(rounds):
        for which in (("ours", "bare") if r % 2 == 0 else ("bare", "ours")):
            print(f"round {r + 1}/{rounds}: {which}", flush=True)
            if which == "ours":
                a.append(ours(cfg, processed, tmp / f"run{r}", r))
            else:
                b.append(bare(cfg, processed, cfg.steps))
    return a, b


def throughput_table(cfg, a: list[dict], b: list[dict]) -> tuple[str, float]:
    imgs = cfg.steps * cfg.batch_size
    ra, rb = [imgs / r["loop_s"] for r in a], [imgs / r["loop_s"] for r in b]
    wa, wb = (statistics.median(imgs / r["whole_s"] for r in rs) for rs in (a, b))
    ratio = statistics.median(x / y for x, y in zip(ra, rb))  # paired: a round's two runs are adjacent in time
    same = max(max(max_diff(x["G"], y["G"]), max_diff(x["D"], y["D"])) for x, y in zip(a, b))
    fmt = lambda xs: ", ".join(f"{x:.0f}" for x in xs)  # noqa: E731
    med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
    rows = [
        "| loop | images/s of the step loop, each round | median images/s, step loop | median images/s, whole call "
        "| median s, step loop | median s, whole call | median CPU s, step loop |",
        "|---|---|---|---|---|---|---|",
        f"| ours: `loop.train`, MLflow, tqdm, grids, snapshots, checkpoints | {fmt(ra)} | {statistics.median(ra):.0f} "
        f"| {wa:.0f} | {med(a, 'loop_s'):.2f} | {med(a, 'whole_s'):.2f} | {med(a, 'cpu_s'):.2f} |",
        f"| bare PyTorch loop, same steps and batches | {fmt(rb)} | {statistics.median(rb):.0f} "
        f"| {wb:.0f} | {med(b, 'loop_s'):.2f} | {med(b, 'whole_s'):.2f} | {med(b, 'cpu_s'):.2f} |",
        f"| **ours / bare** | {', '.join(f'{x / y:.3f}' for x, y in zip(ra, rb))} | {statistics.median(ra) / statistics.median(rb):.3f} (median of the round ratios: **{ratio:.3f}**) | {wa / wb:.3f} | | | {med(b, 'cpu_s') / med(a, 'cpu_s'):.3f} (bare / ours) |",
    ]
    note = ("\n\nThe headline is the median of the rounds' step-loop ratios (ours over the bare loop run beside it, first in every other round; "
            "the ratio of the two medians is beside it). The whole "
            "call adds, for ours, the MLflow run's creation and end, config logging, the final checkpoint, sample "
            "grid and figures, and for both, building the models: fixed costs that a longer run spreads thinner. "
            "CPU s is the process's CPU time over the step loop, all threads together (about threads x wall on an "
            "idle CPU; waiting threads spin, so it rises with contention too). "
            f"`train`'s own `train_seconds` for the same loop: {', '.join(str(r['train_seconds']) for r in a)} s. "
            f"Same work: the largest |difference| between ours' and the bare loop's final G and D weights over the "
            f"{len(a)} rounds is {same:.3g} ({'bit-identical' if same == 0 else 'NOT identical'}).")
    return "\n".join(rows) + note, ratio


def parts_table(cfg, a: list[dict]) -> str:
    labels = list(a[0]["parts"])
    med = {k: statistics.median(r["parts"].get(k, 0.0) for r in a) for k in labels}
    loop_s = statistics.median(r["loop_s"] for r in a)
    rows = ["| inside our step loop (median of the rounds) | seconds | % of the step loop | ms per step |",
            "|---|---|---|---|"]
    for k in labels:
        rows.append(f"| {k} | {med[k]:.3f} | {100 * med[k] / loop_s:.1f} | {1000 * med[k] / cfg.steps:.2f} |")
    rest = loop_s - sum(med.values())
    rows.append(f"| the rest: tqdm, the loop's own lines | {rest:.3f} | {100 * rest / loop_s:.1f} "
                f"| {1000 * rest / cfg.steps:.2f} |")
    return ("Where our step loop's time goes: the library's functions wrapped with a timer in this process, "
            "calls inside the loop only. None of these calls runs inside another, so nothing is counted twice:\n\n" + "\n".join(rows))


def speedups(cfg, processed: dict, steps: int, warmup: int, compile_: bool) -> str:
    variants = ["default", "channels_last"] + (["compile"] if compile_ else []) + ["default, again"]
    res = {}
    for v in variants:  # the default again at the end: how far the machine drifted meanwhile
        print(f"speed-ups: {v}", flush=True)
        res[v] = bare(cfg, processed, steps, v.split(",")[0], warmup)
    imgs = (steps - warmup) * cfg.batch_size
    base = imgs / res["default"]["loop_s"]
    rows = ["| bare loop variant | images/s after warm-up | x default | warm-up s (build + first "
            f"{warmup} steps; compile included) | CPU ms per step | max abs weight change vs default after {steps} steps |",
            "|---|---|---|---|---|---|"]
    for v, r in res.items():
        rate = imgs / r["loop_s"]
        diff = max(max_diff(r["G"], res["default"]["G"]), max_diff(r["D"], res["default"]["D"]))
        rows.append(f"| {v} | {rate:.0f} | {rate / base:.2f} | {r['warmup_s']:.1f} | "
                    f"{1000 * r['cpu_s'] / (steps - warmup):.0f} | {diff:.2g} |")
    skipped = "" if compile_ else " torch.compile was not run (`--no-compile`)."
    return ("Speed-ups the issue asks to try, on the bare loop (one run each, same seed and batches, the default "
            "run first and last, "
            f"{steps - warmup} timed steps after {warmup} warm-up steps).{skipped} The library's defaults are "
            "unchanged; a speed-up is worth adopting only where it beats the default by more than the "
            "round-to-round spread above and the two default runs' difference.\n\n" + "\n".join(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="200 steps a run, 55 in the speed-up table (CPU, minutes)")
    ap.add_argument("--steps", type=int, help="generator steps per run (default: 200 with --quick, else 800)")
    ap.add_argument("--rounds", type=int, default=5, help="a/b rounds, alternated")
    ap.add_argument("--no-compile", action="store_true", help="leave torch.compile out of the speed-up table")
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's, one per core)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or (200 if args.quick else 800)

    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        tmp = Path(tmp)
        os.environ["GANREPRO_ROOT"] = str(tmp)  # a private MLflow store: sqlite + artifacts under tmp
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        from ganrepro.tracking import Tracker

        processed = load_digits(tmp, [32])[32]
        cfg = quick_config(steps)
        t = time.perf_counter()
        with Tracker("bench-store-setup", stage="benchmark", profile="quick"):
            pass  # create the sqlite store and experiment once, outside the timed rounds
        store_s = time.perf_counter() - t
        bare(cfg, processed, 5)  # warm-up, untimed: the first calls of every op, in neither column
        a, b = alternate(cfg, processed, tmp, args.rounds)
        table, ratio = throughput_table(cfg, a, b)
        parts = parts_table(cfg, a)
        speed_steps = 55 if args.quick else 105
        extra = speedups(cfg, processed, speed_steps, 5, not args.no_compile)

    load = os.getloadavg()
    body = (f"DCGAN (quick widths: ngf = ndf = {cfg.arch['ngf']}, z {cfg.arch['z_dim']}, {cfg.img_size} px, batch "
            f"{cfg.batch_size}, 1 channel) on the real mnist5k digits, {steps} generator steps a run, "
            f"ours and bare alternated for {args.rounds} rounds. Ours runs with the quick profile's train settings "
            f"(log every {cfg.train.log_every}, grid every {cfg.train.sample_every} and at the end, "
            f"{cfg.train.snapshots} snapshots, checkpoint every {cfg.train.checkpoint_every}), a real MLflow "
            f"store (sqlite) and tqdm on. Goal: ours >= 0.95x bare.\n\n{table}\n\n{parts}\n\n"
            f"One-off, not in either column: creating the MLflow sqlite store and experiment took {store_s:.1f} s.\n\n"
            f"{extra}\n\nLoad average at the end (1, 5, 15 min): {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} "
            f"on {os.cpu_count()} cores, {torch.get_num_threads()} torch threads. Other jobs on the CPU widen the "
            "spread between rounds: a multi-threaded step stalls whenever one of its threads is descheduled.")
    write_section("pipeline_overhead", "Pipeline overhead: our training loop against a bare PyTorch loop", body,
                  headline={"pipeline_over_bare_throughput": round(ratio, 4)})


if __name__ == "__main__":
    main()
