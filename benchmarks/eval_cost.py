"""Evaluation cost: FID when the real statistics are cached, against the first computation.

What it measures
    `ganrepro.evaluation.compute_fid` (what the evaluate stage runs: FID and KID of one G on every
    available feature backend) for a run whose real-data statistics file is absent (the first
    computation: real features of n_real images, their mean and covariance, the .npz written) and
    present (cached: only the fakes are sampled and embedded). Also the images per second of
    feature extraction for each backend, and each part of the cost timed alone.
How
    The quick profile's eval settings from params.yaml (n_real 5000, n_fake 1000, batch 250, KID
    50 x 250) on the real mnist5k digits at 32 px; the fakes come from a DCGAN G at the quick widths
    (untrained: the cost does not depend on what G draws). The feature net is a digit classifier
    trained for one epoch here (as the tests do) and saved where the backend looks for it, under a
    temporary working folder, so nothing of the project's data/ is read or written.
    After one untimed warm-up call, first / cached alternated for 3 rounds (5 without --quick); medians.
Goal
    cached <= 10% of first: headline `fid_cached_over_first` = cached / first (median seconds).

    python benchmarks/eval_cost.py --quick
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from common import ROOT, load_digits, train_feature_net, write_section

RUN = "dcgan_cifar10"  # a quick run on mnist5k at 32 px; its eval settings are the profile's own


def quick_run():
    """(the run's config, its eval settings) at the quick profile, on CPU."""
    from ganrepro import pipeline
    from ganrepro.config import eval_config, load_params

    params = load_params(ROOT / "params.yaml").model_copy(update={"profile": "quick"})
    run = pipeline.run(params, RUN).model_copy(update={"device": "cpu"})
    return run, eval_config(params, RUN)


def generator(run, channels: int, n_classes: int):
    from ganrepro.models import build_models

    torch.manual_seed(run.seed)
    G, _ = build_models(run.family, run.arch, run.img_size, channels, n_classes)
    return G.eval()


def timed(fn, *a, **kw) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn(*a, **kw)
    return time.perf_counter() - t, out


# ---------------------------------------------------------------- first vs cached
def first_vs_cached(run, cfg, processed: dict, G, rounds: int) -> tuple[list[float], list[float], dict]:
    from ganrepro import evaluation

    n_real = min(cfg.fid.n_real, len(processed["images"]))
    stats = evaluation.real_stats_file(run, "digit_classifier", cfg, n_real)
    first, cached, result = [], [], {}
    cpu = {"first": [], "cached": []}
    dev = torch.device("cpu")
    print("warm-up (untimed)", flush=True)  # first calls of every op, lazy imports: in neither column
    evaluation.compute_fid(run, processed["images"], evaluation.sampler(G, processed["n_classes"], 0), cfg, dev)
    for r in range(rounds):
        stats.unlink(missing_ok=True)
        for kind, times in (("first", first), ("cached", cached)):
            print(f"round {r + 1}/{rounds}: {kind}", flush=True)
            sample = evaluation.sampler(G, processed["n_classes"], run.seed + 1)  # the same fakes every time
            c = time.process_time()
            s, result = timed(evaluation.compute_fid, run, processed["images"], sample, cfg, dev)
            times.append(s)
            cpu[kind].append(time.process_time() - c)
    return first, cached, result | {"cpu": cpu}


# ---------------------------------------------------------------- the parts, one by one
def parts(run, cfg, processed: dict, G) -> tuple[list[tuple[str, int, float]], object]:
    """(part, images, seconds) for each piece of compute_fid, timed alone."""
    import numpy as np

    from ganrepro import evaluation
    from ganrepro.metrics import fid
    from ganrepro.metrics.features import build_backend
    from ganrepro.metrics.kid import kid

    images, dev, b = processed["images"], torch.device("cpu"), cfg.fid.batch_size
    n_real, n_fake = min(cfg.fid.n_real, len(images)), cfg.fid.n_fake
    out = []
    s, backend = timed(build_backend, "digit_classifier", cfg.fid.dims, dev)
    s2, _ = timed(backend.protocol)
    out.append(("load the feature net (+ sha256 of its weights)", 0, s + s2))
    s, real = timed(fid.extract, backend, fid.real_batches(images, b), n_real, "real")
    out.append(("real features (digit classifier)", n_real, s))
    s, (mu, sigma) = timed(fid.gaussian_stats, real)
    out.append(("mean and covariance of the real features", n_real, s))
    path = Path("stats-part.npz")
    s, _ = timed(lambda: np.savez(path, mu=mu, sigma=sigma, features=real[: cfg.fid.kid_n_real].astype(np.float32)))
    out.append(("write the .npz", 0, s))
    s, _ = timed(lambda: {k: v for k, v in np.load(path).items()})
    out.append(("read the cached .npz", 0, s))
    sample = evaluation.sampler(G, processed["n_classes"], run.seed + 1)
    s, fakes = timed(lambda: torch.cat([sample(b) for _ in range(0, n_fake, b)])[:n_fake])
    out.append((f"sample fakes (DCGAN G, {run.img_size} px)", n_fake, s))
    s, fake = timed(fid.extract, backend, iter(fakes.split(b)), n_fake, "fake")
    out.append(("fake features (digit classifier)", n_fake, s))
    s, _ = timed(fid.fid_against, mu, sigma, fake)
    out.append((f"Frechet distance ({backend.dims}-d)", 0, s))
    s, _ = timed(kid, real[: cfg.fid.kid_n_real], fake, cfg.fid.kid_subsets, cfg.fid.kid_subset_size)
    out.append((f"KID ({cfg.fid.kid_subsets} subsets of {cfg.fid.kid_subset_size})", 0, s))
    return out, backend


def inception_rate(images: torch.Tensor, n: int = 200, batch: int = 50) -> str:
    """Images/s of Inception feature extraction, or why it was not measured."""
    from ganrepro.metrics import fid
    from ganrepro.metrics.features import build_backend, weights_missing

    missing = weights_missing("inception")
    if missing is not None:
        return f"not measured: its weights are not in the torch cache (`{missing}` is missing; README: Pretrained weights)"
    backend = build_backend("inception", 2048, torch.device("cpu"))
    fid.extract(backend, fid.real_batches(images[:batch], batch), batch, "inception warm-up")
    s, _ = timed(fid.extract, backend, fid.real_batches(images, batch), n, "inception")
    return f"{n / s:.0f} images/s ({n} images, batch {batch}, resized to 299 px, 2048-d)"


# ---------------------------------------------------------------- report
def tables(cfg, first: list[float], cached: list[float], result: dict, part_rows, inception: str,
           net_metrics: dict) -> tuple[str, float]:
    ratio = statistics.median(cached) / statistics.median(first)
    fmt = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    value = result["fid"]["digit_classifier"]["value"]
    main = "\n".join([
        "| `compute_fid` (FID + KID, digit-classifier features) | seconds, each round | median seconds |",
        "|---|---|---|",
        f"| first: real statistics computed and cached ({cfg.fid.n_real} real) | {fmt(first)} | {statistics.median(first):.2f} |",
        f"| cached: real statistics read from the .npz | {fmt(cached)} | {statistics.median(cached):.2f} |",
        f"| **cached / first** | {', '.join(f'{c / f:.3f}' for c, f in zip(cached, first))} | **{ratio:.3f}** |",
    ])
    cpu = result["cpu"]
    cpu_ratio = statistics.median(cpu["cached"]) / statistics.median(cpu["first"])
    main += (f"\n\nBy process CPU time, all threads together (about threads x wall on an idle CPU): first "
             f"{statistics.median(cpu['first']):.2f} s, cached {statistics.median(cpu['cached']):.2f} s, "
             f"cached / first {cpu_ratio:.3f}.")
    rows = ["| part, timed alone | images | seconds | images/s |", "|---|---|---|---|"]
    for name, n, s in part_rows:
        rows.append(f"| {name} | {n or ''} | {s:.3f} | {f'{n / s:.0f}' if n else ''} |")
    sec = {name.split(" (")[0]: x for name, _, x in part_rows}
    per_fake = sec["fake features"] + sec["sample fakes"] + sec["Frechet distance"] + sec["KID"]
    floor = (f"What caching cannot remove: sampling and embedding the {cfg.fid.n_fake} fakes, the distance and "
             f"KID, {per_fake:.2f} s of the parts above, against {per_fake + sec['real features']:.2f} s with the "
             f"{cfg.fid.n_real} reals embedded too: a floor of about {per_fake / (per_fake + sec['real features']):.2f} "
             f"for cached / first at this protocol (embedding alone: n_fake / n_real = "
             f"{cfg.fid.n_fake / cfg.fid.n_real:.2f}). Where that floor is above 0.10, the 10% goal is out of reach by "
             "caching alone: it needs fewer fakes per real, or a cheaper way to draw and embed them.")
    skipped = {k: v["skipped"] for k, v in result["fid"].items() if "skipped" in v}
    notes = (f"Both computations give the same FID ({value}, untrained G): the cache changes the cost, not the "
             f"number. Backends skipped by `compute_fid`: {skipped or 'none'}.\n\n"
             f"Feature extraction: digit classifier as in the table above (the feature net here was trained for "
             f"one epoch, holdout accuracy {net_metrics['holdout_accuracy']}; its speed does not depend on that). "
             f"Inception: {inception}.")
    return main + "\n\n" + "\n".join(rows) + "\n\n" + floor + "\n\n" + notes, ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 rounds (else 5)")
    ap.add_argument("--rounds", type=int, help="first/cached rounds, alternated")
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's, one per core)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from ganrepro.metrics.digit_classifier import INPUT_SIZE

    rounds = args.rounds or (3 if args.quick else 5)
    run, cfg = quick_run()
    old = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        os.chdir(tmp)  # data/feature_nets and data/fid_stats resolve here, not in the project
        try:
            digits = load_digits(Path(tmp) / "digits", [INPUT_SIZE, run.img_size])
            net_metrics = train_feature_net(digits[INPUT_SIZE])
            processed = digits[run.img_size]
            G = generator(run, processed["images"].shape[1], processed["n_classes"])
            first, cached, result = first_vs_cached(run, cfg, processed, G, rounds)
            part_rows, _ = parts(run, cfg, processed, G)
            inception = inception_rate(processed["images"])
        finally:
            os.chdir(old)
    body, ratio = tables(cfg, first, cached, result, part_rows, inception, net_metrics)
    load = os.getloadavg()
    body = (f"The quick profile's FID protocol: n_real {cfg.fid.n_real}, n_fake {cfg.fid.n_fake}, batch "
            f"{cfg.fid.batch_size}, KID {cfg.fid.kid_subsets} x {cfg.fid.kid_subset_size}, on mnist5k at "
            f"{run.img_size} px, fakes from a DCGAN G at the quick widths; {rounds} rounds, first and cached "
            f"alternated. Goal: cached <= 10% of first.\n\n{body}\n\nLoad average at the end (1, 5, 15 min): "
            f"{load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} on {os.cpu_count()} cores.")
    write_section("eval_cost", "Evaluation cost: FID with cached real statistics against the first computation",
                  body, headline={"fid_cached_over_first": round(ratio, 4)})


if __name__ == "__main__":
    main()
