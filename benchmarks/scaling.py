"""Scaling: seconds per generator step against resolution and batch size, for every model family.

What it measures
    Wall-clock seconds of one generator step (n_critic D steps, then one G step, as the training
    loop runs them: `loop.train_step` on `loop.build(...)` objects, the way src/ganrepro/profiling.py
    times steps) for each family at its quick widths (params.yaml `profiles.quick.presets`), at
    32/64/128 px and batch sizes 8/32 (8/32/64 without --quick), on the machine at hand: the CPU,
    and the GPU too where torch sees one (with a bf16-autocast column there).
    DCGAN is also timed with G and D in channels_last memory format (a speed-up the issue asks to try).
How
    One run per family resolved from params.yaml at the quick profile, then only `img_size` and
    `batch_size` changed: dcgan (dcgan_cifar10), sagan (sagan_cifar10), wgan_gp (wgan_mnist), began
    (began_celeba_g05), deq (deq_mnist_1b), fastgan (fastgan_m1_vangogh, 1 decoder, l1 reconstruction).
    Data: random uint8 images with 1 channel and 10 classes (the quick profile's mnist5k shape; step
    time does not depend on what the pixels show). Per cell: 1 warm-up step, then the median of up
    to 3 timed steps (5 without --quick), fewer when a cell's timed steps pass `--cell-seconds`.
    A combination a family cannot build is listed with the reason. No goal: this is a map, not a test.

    python benchmarks/scaling.py --quick
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from tqdm import tqdm

from common import ROOT, write_section

FAMILIES = {  # family -> the paper run whose quick preset gives its widths
    "dcgan": "dcgan_cifar10",
    "sagan": "sagan_cifar10",
    "wgan_gp": "wgan_mnist",
    "began": "began_celeba_g05",
    "deq": "deq_mnist_1b",
    "fastgan": "fastgan_m1_vangogh",
}
VARIANTS = {"default": "", "channels_last": "dcgan", "bf16": "cuda"}  # variant -> only for (family | device)


def quick_runs() -> dict:
    from ganrepro import pipeline
    from ganrepro.config import load_params

    params = load_params(ROOT / "params.yaml").model_copy(update={"profile": "quick"})
    return {fam: pipeline.run(params, name) for fam, name in FAMILIES.items()}


def fake_data(size: int, batch: int, n_critic: int) -> dict:
    n = max(4 * batch * n_critic, 64)
    g = torch.Generator().manual_seed(0)
    return {"images": torch.randint(0, 256, (n, 1, size, size), generator=g, dtype=torch.uint8),
            "labels": torch.randint(0, 10, (n,), generator=g), "n_classes": 10}


def time_cell(cfg, device: torch.device, variant: str, steps: int, cell_seconds: float) -> dict:
    """Build the family at cfg's size and batch, then time generator steps; or say why it could not."""
    from ganrepro.profiling import synchronizer
    from ganrepro.training.loop import batches, build, train_step
    from ganrepro.utils import seed_everything

    seed_everything(cfg.seed)
    try:
        G, D, objective = build(cfg, 1, 10, device)
    except ValueError as e:  # the family's own size check
        return {"skip": str(e)}
    if variant == "channels_last":
        G.to(memory_format=torch.channels_last)
        D.to(memory_format=torch.channels_last)
    processed = fake_data(cfg.img_size, cfg.batch_size, objective.n_critic)
    data = batches(processed["images"], processed["labels"], cfg.batch_size, cfg.seed, device)
    sync = synchronizer(device)
    amp = (torch.autocast("cuda", dtype=torch.bfloat16) if variant == "bf16" else torch.autocast("cpu", enabled=False))

    def one() -> tuple[float, float]:
        sync()
        t, c = time.perf_counter(), time.process_time()
        with amp:
            train_step(objective, data)
        sync()
        return time.perf_counter() - t, time.process_time() - c

    try:
        warm = one()[0]
        times, cpu = [], []
        while len(times) < steps and (not times or sum(times) < cell_seconds):
            t, c = one()
            times.append(t)
            cpu.append(c)
    except (RuntimeError, NotImplementedError) as e:  # out of memory, an op without a bf16 kernel, ...
        return {"skip": f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"}
    params = sum(p.numel() for m in (G, D) for p in m.parameters())
    return {"s": statistics.median(times), "cpu": statistics.median(cpu), "n": len(times), "warm": warm,
            "n_critic": objective.n_critic,
            "params": params}


def cells(runs: dict, devices: list[torch.device], sizes: list[int], batch_sizes: list[int]) -> list[tuple]:
    out = []
    for dev in devices:
        for fam, cfg in runs.items():
            for variant, only in VARIANTS.items():
                if only and only not in (fam, dev.type):
                    continue
                for size in sizes:
                    for b in batch_sizes:
                        out.append((dev, fam, variant, size, b, cfg))
    return out


def measure(todo: list[tuple], steps: int, cell_seconds: float) -> dict:
    res = {}
    for dev, fam, variant, size, b, cfg in tqdm(todo, desc="scaling", unit="cell"):
        cfg = cfg.model_copy(update={"img_size": size, "batch_size": b, "device": dev.type})
        res[(dev.type, fam, variant, size, b)] = time_cell(cfg, dev, variant, steps, cell_seconds)
    return res


def table(res: dict, runs: dict, devices: list[torch.device], sizes: list[int], batch_sizes: list[int]) -> str:
    head = ["device", "family (widths)", "variant", "px", "n_critic", "params G+D (M)",
            *(f"s/step (CPU s), batch {b}" for b in batch_sizes), f"images/s, batch {batch_sizes[-1]}",
            f"s/step x{batch_sizes[-1] // batch_sizes[0]} batch / s/step batch {batch_sizes[0]}"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    skips = []
    for dev in devices:
        for fam, cfg in runs.items():
            widths = ", ".join(f"{k} {v}" for k, v in cfg.arch.items() if k in ("ngf", "ndf", "z_dim", "dec_ch"))
            for variant, only in VARIANTS.items():
                if only and only not in (fam, dev.type):
                    continue
                for size in sizes:
                    r = [res[(dev.type, fam, variant, size, b)] for b in batch_sizes]
                    ok = [x for x in r if "s" in x]
                    for b, x in zip(batch_sizes, r):
                        if "skip" in x:
                            skips.append(f"{dev.type} {fam} {variant} {size} px batch {b}: {x['skip']}")
                    if not ok:
                        continue
                    cols = [f"{x['s']:.3f} ({x['cpu']:.3f})" + ("" if x["n"] > 1 else " 1 step") if "s" in x
                            else "skipped" for x in r]
                    last, first = r[-1], r[0]
                    rate = f"{batch_sizes[-1] * last['n_critic'] / last['s']:.0f}" if "s" in last else ""
                    grow = f"{last['s'] / first['s']:.1f}" if "s" in last and "s" in first else ""
                    rows.append(f"| {dev.type} | {fam} ({widths}) | {variant} | {size} | {ok[0]['n_critic']} | "
                                f"{ok[0]['params'] / 1e6:.2f} | {' | '.join(cols)} | {rate} | {grow} |")
    skipped = "\n".join(f"* {s}" for s in skips) if skips else "none: every family built at every size and batch."
    return "\n".join(rows) + "\n\nSkipped combinations, with the reason:\n\n" + skipped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="batch 8 and 32, 3 timed steps a cell (CPU, minutes)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--batches", type=int, nargs="+", help="default: 8 32 with --quick, else 8 32 64")
    ap.add_argument("--families", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    ap.add_argument("--cell-seconds", type=float, default=None,
                    help="stop timing a cell once its timed steps pass this (default 6 with --quick, else 30)")
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's, one per core)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batch_sizes = args.batches or ([8, 32] if args.quick else [8, 32, 64])
    steps, cell_seconds = (3, 6.0) if args.quick else (5, 30.0)
    cell_seconds = args.cell_seconds or cell_seconds
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    runs = {f: r for f, r in quick_runs().items() if f in args.families}

    t0 = time.perf_counter()
    res = measure(cells(runs, devices, args.sizes, batch_sizes), steps, cell_seconds)
    wall = time.perf_counter() - t0
    gpu = (f"GPU: {torch.cuda.get_device_name(0)} (timed with torch.cuda.synchronize)." if torch.cuda.is_available()
           else "No GPU on this machine: CPU only (the script adds CUDA rows, and a bf16-autocast variant, where "
                "torch sees a GPU).")
    load = os.getloadavg()
    body = (f"Seconds per generator step (n_critic D steps + 1 G step, `loop.train_step`), median of up to {steps} "
            f"timed steps after 1 warm-up, each family at its quick widths, 1 channel. {gpu} "
            f"`channels_last`: DCGAN's G and D converted with `.to(memory_format=torch.channels_last)` "
            f"(inputs left as the loop gives them). Each cell: wall seconds per step, and in brackets the "
            f"process's CPU seconds per step, all threads together (about threads x wall on an idle CPU; "
            f"'1 step': the cell's time budget allowed only one timed step). `images/s` counts the real images a step consumes "
            f"(batch x n_critic). The last column is how much longer a step takes at batch "
            f"{batch_sizes[-1]} than at {batch_sizes[0]} (x{batch_sizes[-1] // batch_sizes[0]} would be linear).\n\n"
            f"{table(res, runs, devices, args.sizes, batch_sizes)}\n\nMeasured in {wall / 60:.1f} min. Load "
            f"average at the end (1, 5, 15 min): {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} on {os.cpu_count()} "
            "cores: with other jobs on the CPU, the absolute times are upper bounds.")
    write_section("scaling", "Scaling: time per generator step against resolution and batch size", body)


if __name__ == "__main__":
    main()
