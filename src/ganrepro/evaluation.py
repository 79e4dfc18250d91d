"""Evaluate a trained run: FID and KID on every available feature backend, Inception Score, LPIPS,
and the FID of each training snapshot (the FID-vs-step curve).

Each value carries its protocol (backend, weight file sha256, dims, n_real, n_fake, resize).
A backend listed as optional whose weights are not in the cache is reported as skipped, with why.
The result (see `evaluate`) is keyed metric -> backend -> {value, [std], protocol}:

    fid, kid                   at eval.fid.n_fake fake images
    fid_paper_n, kid_paper_n   at the paper's own count (eval.fid.paper_n_fake), where it is set
    inception_score            eval.inception_score.n_fake samples, `splits` splits
    lpips_diversity            mean LPIPS over independent fake x fake pairs
    lpips_real_fake            mean LPIPS over (real, fake) pairs: real drawn without replacement
    fid_seeds                  FID of every training seed's final G: mean, std (ddof 1), n, values

Generated images are quantised to uint8 before every metric (`quantise_uint8`), exactly as
torchvision's `save_image` writes the papers' sample PNGs that pytorch-fid then reads back; real
images are uint8 already. Every fake-image protocol records `quantised: uint8`.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from ganrepro import paths
from ganrepro.config import EvalConfig, RunConfig
from ganrepro.corrupt import check
from ganrepro.metrics import features, fid
from ganrepro.metrics.features import backend_dims, build_backend, weights_missing
from ganrepro.metrics.inception_score import LOGITS, inception_score, logits_missing
from ganrepro.metrics.kid import kid
from ganrepro.metrics.lpips import LPIPS, alexnet_weights, diversity, lpips_missing, real_fake
from ganrepro.models import build_models
from ganrepro.training.checkpoint import load_checkpoint


def load_generator(run: RunConfig, checkpoint: Path, channels: int, n_classes: int, device,
                   mode: str = "eval") -> torch.nn.Module:
    """G from `checkpoint` (its EMA weights where kept), in `mode` (eval.sample_mode, config.EvalConfig):
    `eval` uses BatchNorm's running statistics, `train` each sampled batch's own (the references' way)."""
    G, _ = build_models(run.family, run.arch, run.img_size, channels, n_classes)
    ckpt = load_checkpoint(checkpoint)
    G.load_state_dict(ckpt.get("objective", {}).get("G_ema") or ckpt["G"])  # EMA weights where kept
    return G.to(device).train({"eval": False, "train": True}[mode])


QUANTISED = {"quantised": "uint8"}  # recorded in the protocol of every metric of generated images


def fake_protocol(cfg: EvalConfig) -> dict:
    """What every metric of generated images records: uint8 quantisation, and G's mode where it is not eval."""
    return QUANTISED | ({"sample_mode": f"train: BatchNorm on each sampled batch ({cfg.fid.batch_size}; LPIPS 100)"}
                        if cfg.sample_mode == "train" else {})


def quantise_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> the nearest of the 256 levels a saved PNG holds, back in [-1, 1].

    torchvision's `save_image(x, normalize=True, value_range=(-1, 1))`: (x + 1) / 2 * 255 + 0.5,
    clamped to [0, 255] and truncated to uint8; then read back as uint8 / 255 (pytorch-fid's
    ToTensor), mapped to [-1, 1] as the real images are (uint8 / 127.5 - 1).
    """
    levels = (x.float().add(1).div(2).mul(255).add(0.5).clamp(0, 255)).to(torch.uint8)  # (B, C, H, W)
    return levels.float() / 127.5 - 1


def sampler(G, n_classes: int, seed: int) -> Callable[[int], torch.Tensor]:
    """n -> n generated images in [-1, 1], quantised to uint8 levels, from a seeded stream of z and labels.

    Randomness inside G (FastGAN's noise injection draws from torch's global generator) is seeded
    from the same stream, inside a forked RNG state: the same seed gives the same images whatever
    ran before, and the caller's global RNG is left as it was.
    """
    gen = torch.Generator().manual_seed(seed)
    device = next(G.parameters()).device
    calls = itertools.count()

    @torch.no_grad()
    def sample(n: int) -> torch.Tensor:
        y = torch.randint(n_classes, (n,), generator=gen).to(device)
        z = G.sample_z(n, generator=gen)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed * 1_000_003 + next(calls))  # G's own noise; z and y's stream untouched
            return quantise_uint8(G(z, y).float().clamp(-1, 1))

    return sample


def backends_to_run(names: list[str], optional: list[str], missing: Callable) -> tuple[list[str], dict]:
    """Required backends always run (and fail loudly); optional ones only if their weights exist."""
    run, skipped = list(names), {}
    for name in optional:
        if name in names:
            continue
        if (file := missing(name)) is None:
            run.append(name)
        else:
            skipped[name] = {"skipped": f"weights not found: {file.name} (README: Pretrained weights)"}
    return run, skipped


def weight_files(cfg: EvalConfig) -> list[tuple[Path, str, str]]:
    """(file, what it is, remedy) of every existing weight file the evaluation will load."""
    digits = features.digit_classifier_weights()
    files = {"inception": features.inception_weights(), "digit_classifier": digits,
             "lpips_alex": alexnet_weights(), "lpips_digit": digits}
    names: set[str] = set()
    for section, missing in ((cfg.fid, weights_missing), (cfg.inception_score, logits_missing), (cfg.lpips, lpips_missing)):
        names |= set(backends_to_run(section.backends, section.optional_backends, missing)[0])
    return sorted({files[n] for n in names if n in files and files[n][0].exists()})


def check_weight_files(cfg: EvalConfig) -> None:
    """Read every weight file the evaluation will load before any metric is computed: a damaged
    LPIPS file then stops the stage at once, not after a 50k-sample Inception Score."""
    for path, what, remedy in weight_files(cfg):
        check(path, what, remedy)


def real_stats_file(run: RunConfig, backend: str, cfg: EvalConfig, n_real: int) -> Path:
    dims = backend_dims(backend, cfg.fid.dims)
    return fid.stats_path(paths.FID_STATS, run.data, run.img_size, backend, dims, n_real)


def load_real_stats(run: RunConfig, name: str, images: torch.Tensor, cfg: EvalConfig, device) -> tuple:
    backend = build_backend(name, cfg.fid.dims, device)
    n_real = min(cfg.fid.n_real, len(images))
    stats = fid.real_stats(real_stats_file(run, name, cfg, n_real), backend, images, n_real,
                           cfg.fid.batch_size, keep=cfg.fid.kid_n_real)
    return backend, stats


def fid_and_kid(stats: fid.RealStats, fake: np.ndarray, cfg: EvalConfig) -> tuple[dict, dict]:
    protocol = {**stats.protocol, "n_fake": len(fake), **fake_protocol(cfg)}
    k = kid(stats.features, fake, cfg.fid.kid_subsets, cfg.fid.kid_subset_size)
    return ({"value": round(fid.fid_against(stats.mu, stats.sigma, fake), 4), "protocol": protocol},
            {"value": round(k["value"], 6), "std": round(k["std"], 6),
             "protocol": {**protocol, "n_real": len(stats.features), **k["protocol"]}})


def compute_fid(run: RunConfig, images: torch.Tensor, sample: Callable, cfg: EvalConfig, device) -> dict:
    """{fid, kid[, fid_paper_n, kid_paper_n]} -> backend -> result, from one set of fake features."""
    names, skipped = backends_to_run(cfg.fid.backends, cfg.fid.optional_backends, weights_missing)
    keys = ["fid", "kid"] + (["fid_paper_n", "kid_paper_n"] if cfg.fid.paper_n_fake else [])
    out = {k: dict(skipped) for k in keys}
    for name in names:
        backend, stats = load_real_stats(run, name, images, cfg, device)
        fake = fid.extract(backend, fid.fake_batches(sample, cfg.fid.batch_size), cfg.fid.n_fake,
                           f"fake features ({name})")
        out["fid"][name], out["kid"][name] = fid_and_kid(stats, fake, cfg)
        if cfg.fid.paper_n_fake:  # the first paper_n_fake of the same fakes
            out["fid_paper_n"][name], out["kid_paper_n"][name] = fid_and_kid(stats, fake[: cfg.fid.paper_n_fake], cfg)
    return out


def compute_is(sample: Callable, cfg: EvalConfig, device) -> dict:
    names, out = backends_to_run(cfg.inception_score.backends, cfg.inception_score.optional_backends, logits_missing)
    n, batch = cfg.inception_score.n_fake, cfg.fid.batch_size
    for name in names:
        net = LOGITS.get(name, key="eval.inception_score.backends")(device)
        logits = np.concatenate([net(sample(min(batch, n - i))) for i in range(0, n, batch)])
        res = inception_score(logits, cfg.inception_score.splits)
        out[name] = {"value": round(res["value"], 4), "std": round(res["std"], 4),
                     "protocol": {**net.protocol(), **res["protocol"], **fake_protocol(cfg)}}
    return out


def compute_lpips(images: torch.Tensor, sample: Callable, cfg: EvalConfig, device, seed: int) -> dict:
    names, skipped = backends_to_run(cfg.lpips.backends, cfg.lpips.optional_backends, lpips_missing)
    out = {"lpips_diversity": dict(skipped), "lpips_real_fake": dict(skipped)}
    n = cfg.lpips.n_pairs
    for name in names:
        dist, protocol = LPIPS.get(name, key="eval.lpips.backends")(device)
        out["lpips_diversity"][name] = {"value": round(diversity(dist, sample, n), 5),
                                        "protocol": {**protocol, "n_pairs": n, "pairs": "independent fake x fake", **fake_protocol(cfg)}}
        out["lpips_real_fake"][name] = {"value": round(real_fake(dist, images, sample, n, seed), 5),
                                        "protocol": {**protocol, "n_pairs": n, "pairs": "real x independent fake", **fake_protocol(cfg)}}
    return out


def evaluate(run: RunConfig, processed: dict, checkpoint: Path, cfg: EvalConfig, device,
             other_seeds: list[Path] = ()) -> dict:
    """Every metric of the G in `checkpoint`; FID also of the `other_seeds` checkpoints, for the spread."""
    images, n_classes = processed["images"], processed["n_classes"]
    G = load_generator(run, checkpoint, images.shape[1], n_classes, device, cfg.sample_mode)
    out = {
        **compute_fid(run, images, sampler(G, n_classes, run.seed + 1), cfg, device),
        "inception_score": compute_is(sampler(G, n_classes, run.seed + 3), cfg, device),
        **compute_lpips(images, sampler(G, n_classes, run.seed + 2), cfg, device, run.seed),
    }
    out["fid_seeds"] = seed_spread(run, processed, out["fid"], list(other_seeds), cfg, device)
    return out


def real_sampler(images: torch.Tensor, seed: int) -> Callable[[int], torch.Tensor]:
    """n -> n real images in [-1, 1], drawn without replacement (a new permutation once all are used)."""
    gen, order = torch.Generator().manual_seed(seed), torch.empty(0, dtype=torch.long)

    def sample(n: int) -> torch.Tensor:
        nonlocal order
        while len(order) < n:
            order = torch.cat([order, torch.randperm(len(images), generator=gen)])
        idx, order = order[:n], order[n:]
        return images[idx].float() / 127.5 - 1  # (n, C, H, W), uint8 levels already

    return sample


def noise_sampler(shape: tuple[int, int, int], seed: int) -> Callable[[int], torch.Tensor]:
    """n -> n images of independent uniform pixels in [-1, 1], quantised as fakes are: what "nothing learned" scores."""
    gen = torch.Generator().manual_seed(seed)
    return lambda n: quantise_uint8(torch.rand(n, *shape, generator=gen) * 2 - 1)


def reference(run: RunConfig, processed: dict, cfg: EvalConfig, device) -> dict:
    """The two yardsticks of a run's FID and IS, under its protocol: n_fake real images against the
    same real statistics (the floor; they are among the statistics' images), and uniform noise."""
    images = processed["images"]
    out = {}
    for name, make in (("real", lambda s: real_sampler(images, s)), ("noise", lambda s: noise_sampler(images.shape[1:], s))):
        fid_kid = compute_fid(run, images, make(run.seed + 1), cfg, device)
        out[name] = {"fid": fid_kid["fid"], "kid": fid_kid["kid"],
                     "inception_score": compute_is(make(run.seed + 3), cfg, device)}
    return out


def spread(values: list[float]) -> dict:
    """mean and sample standard deviation (ddof 1; None for one seed) of per-seed values."""
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return {"mean": round(float(np.mean(values)), 4), "std": None if std is None else round(std, 4),
            "n": len(values), "values": values}


def seed_spread(run: RunConfig, processed: dict, first: dict, others: list[Path], cfg: EvalConfig, device) -> dict:
    """backend -> spread of FID over the first seed (already in `first`) and the `others` checkpoints."""
    images, n_classes = processed["images"], processed["n_classes"]
    out = {}
    for name, res in first.items():
        if "value" not in res:
            continue
        values = [res["value"]]
        if others:  # one seed: its FID is the spread's only value, no network to build
            backend, stats = load_real_stats(run, name, images, cfg, device)
        for path in others:
            G = load_generator(run, path, images.shape[1], n_classes, device, cfg.sample_mode)
            fake = fid.extract(backend, fid.fake_batches(sampler(G, n_classes, run.seed + 1), cfg.fid.batch_size),
                               cfg.fid.n_fake, f"fake features, {path.parent.name} ({name})")
            values.append(round(fid.fid_against(stats.mu, stats.sigma, fake), 4))
        out[name] = {**spread(values), "protocol": res["protocol"]}
    return out


def fid_curve(run: RunConfig, processed: dict, snapshots: list[Path], cfg: EvalConfig, device) -> pd.DataFrame:
    """FID of each training snapshot on every required backend, at eval.fid.curve_n_fake: (step, fid_<backend>)."""
    images, n_classes = processed["images"], processed["n_classes"]
    real = {name: load_real_stats(run, name, images, cfg, device) for name in cfg.fid.backends}
    rows = []
    for path in sorted(snapshots):
        G = load_generator(run, path, images.shape[1], n_classes, device, cfg.sample_mode)
        row = {"step": int(load_checkpoint(path)["step"])}
        for name, (backend, stats) in real.items():
            fake = fid.extract(backend, fid.fake_batches(sampler(G, n_classes, run.seed + 1), cfg.fid.batch_size),
                               cfg.fid.curve_n_fake, f"snapshot {row['step']} ({name})")
            row[f"fid_{name}"] = round(fid.fid_against(stats.mu, stats.sigma, fake), 4)
        rows.append(row)
    return pd.DataFrame(rows, columns=["step", *(f"fid_{n}" for n in real)])


def real_stats_for(run: RunConfig, processed: dict, cfg: EvalConfig, device) -> list[Path]:
    """Compute (or keep) the cached real statistics of every backend that can run."""
    names, _ = backends_to_run(cfg.fid.backends, cfg.fid.optional_backends, weights_missing)
    n_real = min(cfg.fid.n_real, len(processed["images"]))
    for name in names:
        load_real_stats(run, name, processed["images"], cfg, device)
    return [real_stats_file(run, name, cfg, n_real) for name in names]
