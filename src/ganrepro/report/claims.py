"""The papers' numbers beside ours: look up our value for each published one, and check claims.

`reports/claims.yaml` holds the data (see its header). Everything here is a pure function of
that data and of `Metrics`, the metric files of one `dvc repro`, so it is tested on fixtures.

    our_value(value, metrics) -> (number or None, protocol text)
    paper_tables(claims, metrics, profile, data) -> {(paper, table): DataFrame with TABLE_COLUMNS}
    check_claims(claims, metrics, profile) -> DataFrame, one row per headline claim
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from scipy.stats import spearmanr

TABLE_COLUMNS = ["paper", "table", "row", "metric", "paper_value", "paper_protocol",
                 "our_value", "our_seeds", "unit", "protocol", "profile", "data"]
EVAL_METRICS = {"fid", "kid", "fid_paper_n", "kid_paper_n", "inception_score", "lpips_real_fake", "lpips_diversity"}
PROFILE_METRICS = {"peak_memory_mb", "seconds_per_epoch"}
PROTOCOL_HIDDEN = {"weights_sha256"}  # kept in the metric files; too long for a table cell
UNITS = {"peak_memory_mb": "MB (ours: MiB)", "seconds_per_epoch": "s"}  # the rest are scores without a unit


@dataclass
class Metrics:
    """One repro's metric files, by run name."""

    evaluate: dict[str, dict] = field(default_factory=dict)  # reports/metrics/evaluate/<run>.json
    profile: dict[str, dict] = field(default_factory=dict)  # reports/metrics/profile.json
    history: dict[str, pd.DataFrame] = field(default_factory=dict)  # reports/plots/<run>_losses.csv
    curve: dict[str, pd.DataFrame] = field(default_factory=dict)  # reports/plots/<run>_fid.csv
    reference: dict[str, dict] = field(default_factory=dict)  # reports/metrics/reference.json: the run's set
    reference_set: dict[str, str] = field(default_factory=dict)  # run -> the name of its set there


REFERENCE_ROWS = {"real": "real images (the floor)", "noise": "uniform noise"}
REFERENCED = ("fid", "inception_score")  # the metrics a reference row is printed beside


def describe(protocol: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in protocol.items() if k not in PROTOCOL_HIDDEN)


def unit(metric: str, ratio: bool = False) -> str:
    """The unit of a value of `metric` ("ratio" for ours(a) / ours(b); blank for a score such as FID)."""
    return "ratio" if ratio else UNITS.get(metric, "")


def pick_backend(results: dict, preferred: str | None, key: str = "value") -> tuple[str | None, dict]:
    """The paper's backend where we computed it, else the first backend with a `key` (a value)."""
    if preferred in results and key in results[preferred]:
        return preferred, results[preferred]
    for name, res in results.items():
        if key in res:
            return name, res
    return None, {}


def eval_value(run: str, metric: str, preferred: str | None, m: Metrics) -> tuple[float | None, str]:
    results = m.evaluate.get(run, {}).get(metric, {})
    name, res = pick_backend(results, preferred)
    if name is None:
        why = "; ".join(f"{b}: {r.get('skipped', 'no value')}" for b, r in results.items())
        return None, why or f"not computed for {run}"
    std = f"; std={res['std']}" if "std" in res else ""  # a part of its own, as the pages split protocols
    return res["value"], describe(res.get("protocol", {})) + std


def seeds_text(run: str, metric: str, preferred: str | None, m: Metrics) -> str:
    """FID over the training seeds, 'mean ± std (n seeds)', for a plain FID value."""
    if metric != "fid":
        return ""
    name, res = pick_backend(m.evaluate.get(run, {}).get("fid_seeds", {}), preferred, key="mean")
    if name is None:
        return ""
    std = "n/a" if res.get("std") is None else f"{res['std']:g}"
    return f"{res['mean']:g} ± {std} ({res['n']} seed{'s' if res['n'] != 1 else ''})"


def profile_value(run: str, metric: str, m: Metrics) -> tuple[float | None, str]:
    prof = m.profile.get(run)
    if not prof or metric not in prof:
        return None, f"not profiled: {run}"
    keys = ("device", "memory_method", "batch_size", "img_size", "steps_timed", "torch")
    return prof[metric], describe({**{k: prof[k] for k in keys if k in prof}, **prof.get("model_settings", {})})


def mglobal_fid_spearman(run: str, m: Metrics) -> tuple[float | None, str]:
    """Spearman rank correlation, over the FID snapshots, of FID with the mean M_global logged since
    the previous snapshot. Positive: M_global falls as FID falls (quality rises)."""
    curve, hist = m.curve.get(run), m.history.get(run)
    if curve is None or hist is None or "M_global" not in hist or len(curve) < 3:
        return None, f"needs >= 3 FID snapshots and the M_global history of {run}"
    fid_col = next(c for c in curve.columns if c.startswith("fid_"))
    edges = [0, *curve["step"]]
    mg = [hist.loc[(hist.step > a) & (hist.step <= b), "M_global"].mean() for a, b in zip(edges, edges[1:])]
    rho = spearmanr(mg, curve[fid_col]).statistic
    return round(float(rho), 4), f"Spearman over {len(curve)} snapshots, {fid_col}"


def our_value(v: dict, m: Metrics) -> tuple[float | None, str]:
    """Our number for one `values:` entry of claims.yaml, and how it was measured."""
    metric, preferred = v["metric"], (v.get("protocol") or {}).get("backend")
    if "ratio" in v:  # ours(run_a) / ours(run_b), each measured as a plain value
        single = {k: x for k, x in v.items() if k != "ratio"}
        (a, pa), (b, pb) = (our_value(single | {"run": r}, m) for r in v["ratio"])
        if a is None or b is None or b == 0:
            return None, f"ratio needs both: {pa}; {pb}"
        return round(a / b, 3), f"{v['ratio'][0]} / {v['ratio'][1]}; {pa}"
    if metric in EVAL_METRICS:
        return eval_value(v["run"], metric, preferred, m)
    if metric in PROFILE_METRICS:
        return profile_value(v["run"], metric, m)
    if metric == "mglobal_fid_spearman":
        return mglobal_fid_spearman(v["run"], m)
    raise ValueError(f"claims.yaml: value {v['id']}: unknown metric {metric!r}; valid: "
                     f"{', '.join(sorted(EVAL_METRICS | PROFILE_METRICS | {'mglobal_fid_spearman'}))}")


def reference_rows(run: str, metric: str, preferred: str | None, m: Metrics, profile: str, data: str) -> list[dict]:
    """The real-image floor and the uniform-noise row of `run`'s `metric`, on the backend its row uses,
    under the same protocol (stage reference); none where the profile computes none."""
    rows = []
    for which, label in REFERENCE_ROWS.items():
        name, res = pick_backend(m.reference.get(run, {}).get(which, {}).get(metric, {}), preferred)
        if name is not None:
            rows.append({"paper": "", "table": "", "row": label, "metric": metric, "paper_value": None,
                         "paper_protocol": "", "our_value": res["value"], "our_seeds": "", "unit": unit(metric),
                         "protocol": describe(res.get("protocol", {})), "profile": profile, "data": data})
    return rows


def paper_tables(claims: dict, m: Metrics, profile: str, data: dict[str, str]) -> dict[tuple[str, str], pd.DataFrame]:
    """{(paper, table): rows}, in claims.yaml order, each FID and IS table ending in its reference rows
    (`reference_rows`, for its first run of that metric). `data` maps a run to the dataset label we used."""
    rows: dict[tuple[str, str], list[dict]] = {}
    referenced: dict[tuple[str, str], list[tuple]] = {}
    for v in claims["values"]:
        ours, protocol = our_value(v, m)
        runs = v.get("ratio") or [v["run"]]
        rows.setdefault((v["paper"], v["table"]), []).append({
            "paper": v["paper"], "table": v["table"], "row": v["row"], "metric": v["metric"],
            "paper_value": v.get("value"), "paper_protocol": describe(v.get("protocol") or {}),
            "our_value": ours, "protocol": protocol, "profile": profile,
            "our_seeds": "" if "ratio" in v else seeds_text(v["run"], v["metric"], (v.get("protocol") or {}).get("backend"), m),
            "unit": unit(v["metric"], "ratio" in v),
            "data": " / ".join(dict.fromkeys(data.get(r, "?") for r in runs)),
        })
        if v["metric"] in REFERENCED and "ratio" not in v:
            refs = referenced.setdefault((v["paper"], v["table"]), [])
            if v["metric"] not in [r[1] for r in refs]:
                refs.append((v["run"], v["metric"], (v.get("protocol") or {}).get("backend"), data.get(v["run"], "?")))
    for k, refs in referenced.items():
        for run, metric, preferred, label in refs:
            rows[k] += reference_rows(run, metric, preferred, m, profile, label)
    return {k: pd.DataFrame(r, columns=TABLE_COLUMNS) for k, r in rows.items()}


def holds(pairs: list[list[Any]], value_of: dict[str, float | None]) -> bool | None:
    """True if a < b for every pair (ids looked up in `value_of`, numbers as they are); None if a value is missing."""
    resolved = [[value_of.get(x) if isinstance(x, str) else x for x in pair] for pair in pairs]
    if any(x is None for pair in resolved for x in pair):
        return None
    return all(a < b for a, b in resolved)


def check_claims(claims: dict, m: Metrics, profile: str) -> pd.DataFrame:
    ours = {v["id"]: our_value(v, m)[0] for v in claims["values"]}
    theirs = {v["id"]: v.get("value") for v in claims["values"]}
    ids = {v["id"] for v in claims["values"]}
    rows = []
    for c in claims["claims"]:
        unknown = {x for pair in c["less"] for x in pair if isinstance(x, str)} - ids
        if unknown:
            raise ValueError(f"claims.yaml: claim {c['id']}: unknown value ids {sorted(unknown)}")
        show = lambda vals: "; ".join(" < ".join(str(vals.get(x, x) if isinstance(x, str) else x) for x in p)  # noqa: E731
                                      for p in c["less"])
        rows.append({
            "paper": c["paper"], "claim_id": c["id"], "claim": c["claim"],
            "test": "; ".join(" < ".join(str(x) for x in p) for p in c["less"]),
            "paper_numbers": show(theirs), "paper_direction": holds(c["less"], theirs),
            "our_numbers": show(ours), "direction_reproduced": holds(c["less"], ours),
            "profile": profile,
        })
    return pd.DataFrame(rows)
