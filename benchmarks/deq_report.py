"""The text of `deq_vs_wgan.py`'s report section: its tables, the verdict and why."""
from __future__ import annotations

import math

from common import write_section

from deq_settings import FID_SLACK, GOAL_MEMORY, GOAL_TIME, JFB, NAME, TAU, Setting, Trained, n_params, ratios
from ganrepro.profiling import MIB


def fmt(x: float, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}g}"


def measure_table(measured: list[Setting]) -> str:
    wgan = measured[0]
    head = ("| setting | group | peak MiB | in critic / G step | solve MiB | mem / WGAN | s / G step (min; spread) "
            "| time / WGAN (by min) | critic / G part s | solve s | f steps | f rel. residual | b steps |\n|" + "---|" * 13)
    rows = []
    for s in measured:
        m, t = ratios(s, wgan)
        rows.append(f"| {s.label} | {s.group} | {s.peak_mb:.1f} | {s.peak_part_mb[0]:.1f} / {s.peak_part_mb[1]:.1f} "
                    f"| {fmt(s.solve_mb)} | {m:.2f} | {s.seconds():.3f} ({s.fastest():.3f}; {s.spread():.0%}) "
                    f"| {t:.2f} ({s.fastest() / wgan.fastest():.2f}) "
                    f"| {s.seconds(0):.3f} / {s.seconds(1):.3f} | {fmt(s.solve_seconds())} | {fmt(s.stat('deq_f_steps'))} "
                    f"| {fmt(s.stat('deq_f_rel_residual'))} | {fmt(s.stat('deq_b_steps'))} |")
    return "\n".join([head, *rows])


def quality_table(runs: list[Trained], wgan: Setting) -> str:
    head = "| setting | wall s | G steps | FID (digit features) | mem / WGAN | time / WGAN |\n|" + "---|" * 6
    rows = [f"| {r.setting.label} | {r.seconds:.0f} | {r.steps} | {'diverged' if r.diverged else fmt(r.fid, 4)} "
            f"| {ratios(r.setting, wgan)[0]:.2f} | {ratios(r.setting, wgan)[1]:.2f} |" for r in runs]
    return "\n".join([head, *rows])


def speedup_notes(measured: list[Setting]) -> str:
    """Whether each speed-up helped, against the plain 1-step JFB with the same solver."""
    speed = [s for s in measured if s.group == "speed-up"]
    if not speed:
        return ""
    ref = next(s for s in measured if s.backward == JFB and s.group != "speed-up"
               and s.cfg.arch["f_solver"] == speed[0].cfg.arch["f_solver"])
    lines = []
    for s in speed:
        change, by_min = s.seconds() / ref.seconds() - 1, s.fastest() / ref.fastest() - 1
        verdict = ("helps" if max(change, by_min) < -0.05 else "slower" if min(change, by_min) > 0.05
                   else "no clear change (within 5%, or the median and min disagree)")
        lines.append(f"- {s.label}: {change:+.0%} (by min {by_min:+.0%}) time per G step vs `{ref.label}` ({verdict}); forward steps "
                     f"{fmt(s.stat('deq_f_steps'))} vs {fmt(ref.stat('deq_f_steps'))}, residual "
                     f"{fmt(s.stat('deq_f_rel_residual'))} vs {fmt(ref.stat('deq_f_rel_residual'))}.")
    return "Speed-ups (each against the plain 1-step JFB):\n" + "\n".join(lines)


def verdict(best: Trained, meets: bool, wgan: Setting) -> str:
    s = best.setting
    m, t = ratios(s, wgan)
    a = s.cfg.arch
    what = (f"**Best setting: {s.label}** (solver {a['f_solver']}, backward {s.backward} "
            f"(ift {a['ift']}, grad {a['grad']}, tau {a['tau']}), f_tol {a['f_tol']:g}, f_max_iter {a['f_max_iter']}, "
            f"b_max_iter {a['b_max_iter']}{', warm start' if s.warm else ''}): memory {m:.2f}x and time {t:.2f}x "
            f"WGAN's, FID {fmt(best.fid, 4)}.")
    what += (" It is the pipeline's default (params.yaml)." if s.is_default else
             " The pipeline's default (params.yaml) is another setting: make this one the default.")
    if meets:
        return what + (f" It meets the goal (memory <= {GOAL_MEMORY}, time <= {GOAL_TIME}, FID within "
                       f"{FID_SLACK:.0%} of the 1-step JFB's or better).")
    return what + (f" It does not meet the goal (memory <= {GOAL_MEMORY}, time <= {GOAL_TIME}): memory is "
                   f"{m / GOAL_MEMORY:.2f}x and time {t / GOAL_TIME:.2f}x the targets. " + why(s, wgan))


def why(s: Setting, wgan: Setting) -> str:
    """Where the DEQ's memory and time go, from the critic / generator split of the measurements."""
    mem_part = "critic steps" if s.peak_part_mb[0] >= s.peak_part_mb[1] else "generator step"
    n = s.cfg.objective["n_critic"]
    return (f"Memory: the DEQ's peak ({s.peak_mb:.1f} MiB) is reached in its {mem_part} (critic steps "
            f"{s.peak_part_mb[0]:.1f}, generator step {s.peak_part_mb[1]:.1f} MiB; WGAN {wgan.peak_part_mb[0]:.1f} / "
            f"{wgan.peak_part_mb[1]:.1f}); the backward only changes the generator step's share. The paper's DEQ critic "
            f"keeps full resolution (two unstrided 3x3 convs and a linear layer on all of them, on every branch's image, "
            f"with the gradient penalty's double backward), and the forward solver's buffers (Anderson keeps 6 past "
            f"iterates) grow with batch x state size, while WGAN's critic and generator are strided DCGAN stacks. "
            f"Time: {s.seconds(0) / s.seconds():.0%} of the DEQ step is its {n} critic steps "
            f"({s.seconds(0):.3f} s vs WGAN's {wgan.seconds(0):.3f} s), each of which solves the fixed point again "
            f"(up to f_max_iter calls of f, without gradient) to make its fakes: {n} solves take about "
            f"{n * s.solve_seconds():.3f} s, leaving {s.seconds(0) - n * s.solve_seconds():.3f} s for the critic network "
            f"and its gradient penalty; the generator step is {s.seconds(1):.3f} s vs {wgan.seconds(1):.3f} s. "
            f"So the DEQ's critic steps without their solves already take "
            f"{(s.seconds(0) - n * s.solve_seconds()) / wgan.seconds():.2f}x WGAN's whole step: no solver or backward "
            f"setting can bring the time ratio under that.")


def table1_section(table1: list[Setting], rounds: int) -> str:
    if not table1:
        return ""
    w, d = table1[0].cfg, table1[1].cfg
    return f"""
Table 1b. The same measurements at the paper presets' own scale, the Table 1 setting: 64px, batch 1,
WGAN ngf {w.arch['ngf']} / ndf {w.arch['ndf']}, DEQ ngf {d.arch['ngf']} / ndf {d.arch['ndf']}, f_max_iter {d.arch['f_max_iter']},
b_max_iter {d.arch['b_max_iter']} ("paper gradient": the reference code's {d.arch['f_solver']} with the IFT the paper describes), on this CPU, {rounds} timed steps each:
memory as the pipeline measures it on CPU; CPU times are not GPU times (the paper's ratios are GPU epoch times).

{measure_table(table1)}

{table1_note(table1)}
"""


def table1_note(table1: list[Setting]) -> str:
    """The lowest-memory DEQ setting at the Table 1 setting, and what bounds it."""
    wgan, deq = table1[0], [s for s in table1 if s.is_deq]
    low = min(deq, key=lambda s: (s.peak_mb, s.seconds()))
    state = [4 * 4 * n_params(s.cfg) / MIB for s in (wgan, low)]  # fp32 weights, grads, Adam's two moments
    return (f"Lowest DEQ memory here: {low.label}, {low.peak_mb / wgan.peak_mb:.2f}x WGAN's (time {ratios(low, wgan)[1]:.2f}x "
            f"on this CPU). Weights, gradients and Adam's moments alone are {state[1]:.1f} MiB for DEQ vs {state[0]:.1f} "
            f"MiB for WGAN ({state[1] / state[0]:.2f}x; the paper's Table 1 ratios are 0.39-0.47), but the DEQ's peak is "
            f"{low.peak_part_mb[0]:.1f} MiB in its critic steps, where the paper's full-resolution critic and its gradient "
            f"penalty's double backward come on top of that state, and {low.peak_part_mb[1]:.1f} MiB in its generator "
            f"step; Broyden's buffers (2 x f_max_iter x state size) add more when it is the solver.")


PAIRS = (("ours", "wgan_pokemon"), ("reference code", "wgan_ref_pokemon"))  # baseline label -> profile_only row stem


def protocols_ratios(rows: dict[str, dict]) -> dict[str, float]:
    """DEQ / WGAN memory for each baseline x memory protocol, and time for each baseline (the sampling
    pass is never timed): {"<baseline row stem>@<protocol>": ratio} and {"<stem>@time": ratio}."""
    out = {}
    for _, stem in PAIRS:
        for protocol in ("ours", "reference"):
            deq, wgan = rows[f"deq_pokemon@{protocol}"], rows[f"{stem}@{protocol}"]
            out[f"{stem}@{protocol}"] = deq["peak_memory_mb"] / wgan["peak_memory_mb"]
        out[f"{stem}@time"] = rows["deq_pokemon@ours"]["seconds_per_step"] / rows[f"{stem}@ours"]["seconds_per_step"]
    return out


def protocols_section(rows: dict[str, dict], best: Setting) -> str:
    """Table 1c: the best setting at the paper's setting against both baselines, under both memory protocols."""
    head = ("| row | preset | memory protocol | params G / D | peak MiB | s / G step |\n|" + "---|" * 6)
    lines = [f"| `{name}` | {r['profile_only']['preset']} | {r['memory_protocol']} | {r['params_g'] / 1e6:.2f}M / "
             f"{r['params_d'] / 1e6:.2f}M | {r['peak_memory_mb']:.1f} | {r['seconds_per_step']:.3f} |" for name, r in rows.items()]
    q = protocols_ratios(rows)
    ratio_head = "| DEQ / WGAN | memory, our protocol | memory, reference protocol | time |\n|" + "---|" * 4
    ratio_lines = [f"| against {label} (`{stem}`) | {q[stem + '@ours']:.2f} | {q[stem + '@reference']:.2f} | {q[stem + '@time']:.2f} |"
                   for label, stem in PAIRS]
    deq = rows["deq_pokemon@ours"]
    a = best.cfg.arch
    return f"""
Table 1c. The best setting ({a['f_solver']}, {best.backward}, f_tol {a['f_tol']:g}) on the DEQ at the paper's
setting (preset deq_gan: {deq['img_size']}px, batch {deq['batch_size']}, its widths and step cap, data {deq['data']}),
against our WGAN-GP (`wgan_gp`) and the reference code's (`wgan_gp_ref`, 32px), each under our memory protocol
(training steps alone) and the reference's (never reset, with its sampling pass: WGAN 800 z with gradients
every 100 steps, DEQ 32 z without, every 10). These are the pipeline's own Table 1 rows
(`runs.*.profile_only`, `ganrepro.profiling.profile_only_row`), {deq['steps_timed']} timed step(s) each after
the warm-up; time is per generator step, which the sampling pass is outside of.

{head}
{chr(10).join(lines)}

{ratio_head}
{chr(10).join(ratio_lines)}

Goal: memory <= {GOAL_MEMORY} and time <= {GOAL_TIME} against the reference code's baseline, as the paper
compared. The paper's Table 1 (Pokemon): 0.47 and 4.5.
"""


def report(measured, table1, protocols, runs, best, meets, args, meta) -> None:
    wgan = measured[0]
    cfg_w, cfg_d = wgan.cfg, measured[1].cfg
    scope = ("--quick: the backward list with the centre's solver and the solver list with the centre's (IFT) "
             "backward (a cross, not the full grid)" if args.quick else "the full backward x solver grid")
    body = f"""
DEQ-GAN's generator against its WGAN-GP baseline, in one process on one device: mnist5k digits at
{cfg_w.img_size}px, batch {cfg_w.batch_size}, n_critic {cfg_w.objective['n_critic']} for both.
Widths: WGAN ngf {cfg_w.arch['ngf']} / ndf {cfg_w.arch['ndf']}; DEQ z_dim {cfg_d.arch['z_dim']}, ngf {cfg_d.arch['ngf']} / ndf {cfg_d.arch['ndf']},
{cfg_d.arch['n_branches']} branch ({'the quick profile' if args.quick else "the paper presets' widths (Table 1 setting)"}).
Paper (Table 1, GPU): DEQ/WGAN memory 0.39-0.47, epoch time 4-4.5x. Goal: memory <= {GOAL_MEMORY} and time <= {GOAL_TIME}
at an FID no worse (here: within {FID_SLACK:.0%} or better) than the 1-step JFB, the backward the reference code used.

Table 1. Peak memory ({meta['memory_method']}, over building the models and the warm-up steps) and
median time per generator step ({cfg_w.objective['n_critic']} critic steps + 1 generator step) over {args.rounds}
round-robin steps after {args.warmup} warm-up step(s), with the fastest step and the spread (max - min) / median:
under load the min-based ratio is the steadier one. Peak memory is also split
into the critic steps (with building) and the generator step; "solve" is one no-grad solve of a batch, as each
critic step does to make its fakes (the memory it allocates above what is resident, and its median time). Solver
stats are the generator step's (median): forward steps, final relative residual ||f(z)-z||/||f(z)||, IFT backward
steps. Covered: {scope}; the solver is used for the forward and the IFT backward solve (b_max_iter
{cfg_d.arch['b_max_iter']}, b_tol {cfg_d.arch['b_tol']:g}); phantom gradients use tau {TAU}, the 1-step JFB tau 1.
Speed-ups are applied to the 1-step JFB with the centre's solver. The centre ({cfg_d.arch['f_solver']}, {cfg_d.arch['f_max_iter']} steps, IFT)
is fixed in this script; "(default)" marks the pipeline's default in params.yaml.

{measure_table(measured)}

{speedup_notes(measured)}
{table1_section(table1, max(1, args.rounds // 2))}
{protocols_section(protocols, best.setting)}
Table 2. Quality after the same wall-clock budget ({args.fid_seconds:g} s of training steps each, interleaved):
FID on the digit-classifier features (trained here, holdout accuracy {meta['classifier']['holdout_accuracy']}),
{meta['n_fake']} samples against {meta['n_real']} real digits; one seed. Not comparable with Inception FID; at this
budget the generators are early in training, so differences of a few percent are within run-to-run noise.

{quality_table(runs, wgan)}

{verdict(best, meets, wgan)}

This run took {meta['wall']} of wall time (1-min load average {meta['load'][0]:.1f} at the start,
{meta['load'][1]:.1f} at the end; timings are taken round-robin so that load changes hit every setting alike).
"""
    m, t = ratios(best.setting, wgan)
    q = protocols_ratios(protocols)
    write_section(NAME, "DEQ vs WGAN: memory, time per generator step and FID at equal wall time", body,
                  headline={"deq_over_wgan_memory": round(m, 3), "deq_over_wgan_time": round(t, 3),
                            # Table 1c: at the paper's setting, against the reference code's WGAN-GP
                            "deq_over_wgan_ref_memory_ours": round(q["wgan_ref_pokemon@ours"], 3),
                            "deq_over_wgan_ref_memory_reference": round(q["wgan_ref_pokemon@reference"], 3),
                            "deq_over_wgan_ref_time": round(q["wgan_ref_pokemon@time"], 3)})
