"""The study's means over training seeds with 95 % bootstrap intervals (stats.py), per method and
averaged over methods: Kendall tau of every metric, selection gains, the alarm's online pick, the
regulariser sweep. Every entry is {"mean", "low", "high"}."""

from __future__ import annotations

import math

import numpy as np

from ..selection.run_report import as_float
from . import stats
from .plan import METRICS, StudyPlan


def _per_method(parts: dict) -> dict:
    """{method: summary} -> the same without draws, plus "average" (the mean over methods)."""
    out = {name: stats.public(s) for name, s in parts.items()}
    out["average"] = stats.public(stats.average_summaries(list(parts.values())))
    return out


def _pairs(rows: list, key: str) -> np.ndarray:
    values = [(as_float(r.get(key)), as_float(r.get("miou"))) for r in rows]
    return np.asarray([v for v in values if math.isfinite(v[0]) and math.isfinite(v[1])],
                      dtype=np.float64).reshape(-1, 2)


def _gain(record: dict, high: str, low: str) -> float:
    return as_float(record.get(high)) - as_float(record.get(low))


def _alarm(results: dict, options: dict) -> dict:
    runs, gains = [], {name: {} for name in ("online_minus_last", "online_minus_offline", "best_minus_online")}
    pairs = {"online_minus_last": ("online_miou", "last_miou"), "online_minus_offline": ("online_miou", "offline_miou"),
             "best_minus_online": ("best_miou", "online_miou")}
    for method, part in results.items():
        records = [dict(seed["alarm"], method=method, seed=seed["seed"]) for seed in part["seeds"]]
        runs += records
        for name, (high, low) in pairs.items():
            gains[name][method] = stats.scalar_summary([_gain(r, high, low) for r in records], **options)
    out = {"runs": runs, "fired": sum(r["fired"] for r in runs), "total": len(runs)}
    out.update({name: _per_method(parts) for name, parts in gains.items()})
    return out


def _ratio(record: dict, index: int) -> float:
    grads = record["grad"]
    return as_float(grads[index]["ratio"]) if grads else math.nan


def _sweep(plan: StudyPlan, results: dict, options: dict) -> dict:
    out = {}
    for start in ("scratch", "selected"):
        out[start] = {}
        for method in plan.swept:
            seeds = [s["sweep"][start] for s in results[method]["seeds"]]
            table = {}
            for beta in plan.betas:
                key = f"{beta:g}"
                records = [s[key] for s in seeds]
                table[key] = {
                    "miou": stats.public(stats.scalar_summary([as_float(r["miou"]) for r in records], **options)),
                    "delta": stats.public(stats.scalar_summary(
                        [as_float(r["miou"]) - as_float(s["0"]["miou"]) for r, s in zip(records, seeds)], **options)),
                    "ratio_first": stats.public(stats.scalar_summary([_ratio(r, 0) for r in records], **options)),
                    "ratio_last": stats.public(stats.scalar_summary([_ratio(r, -1) for r in records], **options)),
                    "step": records[0]["step"],
                }
            out[start][method] = table
    return out


def aggregate(plan: StudyPlan, results: dict) -> dict:
    """{"seeds", "resamples", "tau": {metric: {method | "average": interval}}, "selection":
    {"selected_minus_last" | "best_minus_selected": {...}}, "alarm": {...}, "sweep": {...}}.

    Tau intervals resample checkpoints within seeds and the seeds; the gains (one number per
    seed) resample the seeds only.
    """
    options = dict(resamples=plan.bootstrap_resamples, seed=plan.bootstrap_seed)
    tau = {}
    for key in METRICS:
        tau[key] = _per_method({m: stats.tau_summary([_pairs(s["rows"], key) for s in part["seeds"]], **options)
                                for m, part in results.items()})
    selection = {}
    for name, (high, low) in {"selected_minus_last": ("selected_miou", "last_miou"),
                              "best_minus_selected": ("best_miou", "selected_miou")}.items():
        selection[name] = _per_method({m: stats.scalar_summary([_gain(s["selection"], high, low)
                                                                for s in part["seeds"]], **options)
                                       for m, part in results.items()})
    return {"seeds": plan.seed_values, "resamples": plan.bootstrap_resamples, "level": stats.LEVEL,
            "tau": tau, "selection": selection, "alarm": _alarm(results, options),
            "sweep": _sweep(plan, results, options)}
