"""Peak memory and time per generator step of a model, measured the same way for every model.

    CUDA: torch.cuda.max_memory_allocated() after reset_peak_memory_stats(), around `steps` steps.
    CPU:  the peak of the running sum of bytes allocated minus freed, as recorded op by op by
          torch.profiler(profile_memory=True), in op start order, over the same steps.
Both count tensor memory held by the allocator (weights, optimiser state, activations, grads),
not the process's RSS. Time is wall-clock per step (CUDA-synchronised), after `warmup` steps; the
epoch time is that median step time x the generator steps in one pass over the data.

The memory protocol (profiling key `memory_protocol`, per row `memory_protocol`):
  ours       the peak over building the models and the profiled training steps (above): training alone.
  reference  the DEQ-GAN reference's: the same running max, reset once before the models are built
             (the reference's fresh process) and never again, with its sampling pass inside the
             window: after steps 0, every, 2 every, ... G on `sampling.n` fresh z with autograd on if
             `sampling.grad`, in train mode, the graph alive until the samples are read back.
             Monjur-Mahathir/DEQ-GAN-755-PROJECT@7366c8b wgan/models/wgan_gradient_penalty.py: the
             peak is printed after every G step (:211) and logged every 100 (:276-277), never reset
             before the end (:286); the grid before each log runs G on 800 z under autograd (:236-239).
             So its Table 1 WGAN figure includes an 800-sample forward's graph. The DEQ side (main2.py
             @ 7366c8b) logs the same never-reset peak every 10 batches (:209, :230) after 32 fixed z
             under no_grad (:75, :215-216): `sampling: {n: 32, every: 10, grad: false}`.
             The sampling pass is not timed. On CUDA: torch.cuda.max_memory_allocated; on CPU: the
             profiler's running sum (below) over the same window.

Beside them, at no extra step: the parameter counts of G and D, and the first (untimed) step's
floating-point operations, counted by torch.utils.flop_counter.FlopCounterMode (matmuls,
convolutions and attention, forward and backward; elementwise ops and the optimiser are not
counted), and its dispatched ATen ops (views and the optimisers' steps not counted), a floor on
the kernels the step launches on a GPU. One step = one generator step with its n_critic critic
steps, as the loop trains it.
"""
from __future__ import annotations

import contextlib
import datetime
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from ganrepro.config import ProfileOnly, ProfilingConfig, ReferenceSampling, RunConfig
from ganrepro.data.datasets import DATASETS
from ganrepro.models import describe_arch
from ganrepro.training.loop import batches, build, train_step
from ganrepro.utils import resolve_device, seed_everything

MIB = 2**20


def environment(device: torch.device) -> dict:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {"device": f"{device.type}: {name}", "torch": torch.__version__, "threads": torch.get_num_threads()}


def cpu_memory(prof, start: int = 0) -> tuple[int, int]:
    """(peak, end) of the running sum of bytes allocated - freed, op by op in start order, from `start`
    (what was allocated before this profiler window, when a measurement spans several)."""
    running, peak = start, 0
    for e in sorted(prof.events(), key=lambda e: e.time_range.start):
        running += e.self_cpu_memory_usage
        peak = max(peak, running)
    return peak, running


def cpu_peak_bytes(prof) -> int:
    return cpu_memory(prof)[0]


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class OpCounter(TorchDispatchMode):
    """Counts the ATen ops dispatched while active, except views (no kernel) and whatever runs inside
    an optimiser's `step` (Adam launches a handful of fused foreach kernels on CUDA but one op per
    tensor on CPU, so counting it here would overstate a GPU's launches)."""

    def __init__(self):
        super().__init__()
        self.ops, self._paused = 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not self._paused and not func.is_view and func.namespace == "aten":  # not profiler.record_function
            self.ops += 1
        return func(*args, **(kwargs or {}))

    @contextlib.contextmanager
    def outside_optimisers(self):
        def pause(*_):
            self._paused += 1

        def resume(*_):
            self._paused -= 1

        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

        handles = [register_optimizer_step_pre_hook(pause), register_optimizer_step_post_hook(resume)]
        try:
            with self:
                yield self
        finally:
            for h in handles:
                h.remove()


class _GlobalOnly:
    """Stands in for FlopCounterMode's ModuleTracker: every FLOP is counted under "Global" only."""

    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return None


class StepFlopCounter(FlopCounterMode):
    """FlopCounterMode's total, without its per-module breakdown. The breakdown's ModuleTracker puts
    backward hooks on module inputs that make torch.autograd.grad on a leaf fail ("A leaf node was
    passed to _will_engine_execute_node"), which is what WGAN-GP's gradient penalty calls."""

    def __init__(self):
        super().__init__(display=False)
        self.mod_tracker = _GlobalOnly()


@contextlib.contextmanager
def counting(out: dict):
    """FLOPs and ATen ops of what runs inside, into out["flops"] and out["ops"]."""
    flops, ops = StepFlopCounter(), OpCounter()
    with flops, ops.outside_optimisers():
        yield
    out["flops"], out["ops"] = flops.get_total_flops(), ops.ops


def synchronizer(device: torch.device):
    """Waits for the device's queued work, before a clock is read (a no-op on CPU)."""
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def sampling_pass(G: torch.nn.Module, sampling: ReferenceSampling) -> None:
    """The reference's image grid (wgan_gradient_penalty.py:236-239 @ 7366c8b): G on n fresh z, under
    autograd if `grad`, in whatever mode the loop left G (train: batch statistics, as the reference,
    which never calls .eval()); the graph is freed when the samples have been read back."""
    with torch.set_grad_enabled(sampling.grad):
        samples = G(G.sample_z(sampling.n))
    samples.detach().cpu()


def profile_run(cfg: RunConfig, processed: dict, steps: int, warmup: int, memory_protocol: str = "ours",
                sampling: ReferenceSampling | None = None) -> dict:
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    images = processed["images"]
    data = batches(images, processed["labels"], cfg.batch_size, cfg.seed, device)
    sync = synchronizer(device)
    sampling = sampling or ReferenceSampling()
    reference = {"ours": False, "reference": True}[memory_protocol]

    counted: dict = {}

    def run_steps(objective, n, count_first: bool = False, sample: bool = False) -> list[float]:
        """n timed steps; with count_first, the first is also counted (FLOPs, ops): a warmup step.
        With `sample`, the reference's sampling pass after steps 0, every, ..., outside the clock."""
        times = []
        for i in range(n):
            sync()
            t = time.perf_counter()
            with counting(counted) if count_first and i == 0 else contextlib.nullcontext():
                train_step(objective, data)
            sync()
            times.append(time.perf_counter() - t)
            if sample and i % sampling.every == 0:
                sampling_pass(objective.G, sampling)
        return times

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)  # once, before building: never again (both protocols)
        G, D, objective = build(cfg, images.shape[1], processed["n_classes"], device)
        first = max(warmup, 1)  # the counted step is never a timed one (the counters slow it down)
        times = run_steps(objective, first + steps, count_first=True, sample=reference)[first:]
        peak = torch.cuda.max_memory_allocated(device)
        method = "torch.cuda.max_memory_allocated"
    else:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            G, D, objective = build(cfg, images.shape[1], processed["n_classes"], device)
            # the peak needs at least one full step
            run_steps(objective, max(warmup, 1), count_first=True, sample=reference)
        peak = cpu_peak_bytes(prof)
        times = run_steps(objective, steps)  # timed outside the profiler, which slows ops down
        method = "torch.profiler peak allocated (CPU)"
    protocol = {"memory_protocol": memory_protocol}
    if reference:
        method += (f", reference protocol: never reset, with G on {sampling.n} z "
                   f"({'grad' if sampling.grad else 'no_grad'}) every {sampling.every} steps from step 0")
        protocol["memory_sampling"] = sampling.model_dump()
    return {
        "peak_memory_mb": round(peak / MIB, 2),
        "seconds_per_step": round(statistics.median(times), 5),
        # an epoch = one pass over the data; each generator step eats n_critic batches
        "seconds_per_epoch": round(statistics.median(times) * len(images) / (cfg.batch_size * objective.n_critic), 3),
        "n_images": len(images),
        "steps_timed": len(times),
        "batch_size": cfg.batch_size,
        "img_size": cfg.img_size,
        "memory_method": method,
        "params_g": n_params(G),
        "params_d": n_params(D),
        "n_critic": objective.n_critic,
        "flops_per_step": counted["flops"],  # one G step with its n_critic D steps, forward + backward
        "aten_ops_per_step": counted["ops"],
        "flops_method": "torch.utils.flop_counter.FlopCounterMode, first step (matmul/conv/attention only)",
        "date": datetime.date.today().isoformat(),
        "model_settings": describe_arch(cfg.family, cfg.arch),  # e.g. a DEQ's solver and backward
        **protocol,
        **environment(device),
    }


# ---------------------------------------------------------------- rows profiled, never trained
def at_shape(processed: dict, channels: int, size: int, n_classes: int) -> dict:
    """A preprocessed set as (N, channels, size, size) uint8: resized (bilinear, antialiased), grey
    repeated into colour (or colour averaged into grey), labels folded into n_classes. For rows whose
    memory and time depend on the images' shape and count, not on their pixels."""
    x = processed["images"]
    if x.shape[-1] != size:
        x = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True).round().clamp(0, 255).byte()
    if x.shape[1] != channels:
        if channels == 1:
            x = x.float().mean(1, keepdim=True).round().byte()
        elif x.shape[1] == 1:
            x = x.expand(-1, channels, -1, -1).contiguous()
        else:
            raise ValueError(f"cannot turn {x.shape[1]} channels into {channels}")
    return {"images": x, "labels": processed["labels"] % n_classes, "n_classes": n_classes}


def profile_only_row(cfg: RunConfig, entry: ProfileOnly, processed: dict, source: str, profiling: ProfilingConfig) -> dict:
    """A `runs.<source>.profile_only` row (config.resolve_profile_only): `cfg`, the preset at its
    paper-scale setting, on the source run's own preprocessed images (`processed`, at the current
    profile: a quick stand-in there) reshaped to the paper dataset's channels and cfg's img_size."""
    spec = DATASETS.get(cfg.dataset, key="dataset")
    shaped = at_shape(processed, spec.channels, cfg.img_size, spec.n_classes)
    x = processed["images"]
    counts = profiling.profile_only or profiling
    row = profile_run(cfg, shaped, counts.steps, counts.warmup, entry.memory_protocol, entry.sampling or profiling.sampling)
    return {**row, "profile_only": {"run": source, "preset": cfg.preset, "trained": False},
            "data": f"{processed.get('dataset', '?')} {x.shape[1]}x{x.shape[-1]}px -> {spec.channels}x{cfg.img_size}px "
                    f"({cfg.dataset}'s shape)"}
