"""study.md's sections over training seeds: mean [95 % bootstrap interval] of Kendall tau, the
selection gains, the alarm's online pick and the regulariser sweep (from summary["over_seeds"])."""

from __future__ import annotations

from ..selection.run_report import format_number as _fmt


def cell(entry: dict, digits: int = 4, sign: bool = True) -> str:
    """"mean [low, high]" of an interval entry; "n/a" parts where not finite."""
    return (f"{_fmt(entry['mean'], digits, sign)} [{_fmt(entry['low'], digits, sign)}, "
            f"{_fmt(entry['high'], digits, sign)}]")


def _step(value) -> str:
    return "never" if value is None else str(value)


def _methods_table(rows: dict, labels: dict, names: list, digits: int) -> list:
    out = ["| | " + " | ".join(names) + " | average |", "|---" * (len(names) + 2) + "|"]
    for key, label in labels.items():
        out.append(f"| {label} | " + " | ".join(cell(rows[key][m], digits) for m in names + ["average"]) + " |")
    return out


def render_over_seeds(summary: dict, labels: dict) -> list:
    """The markdown lines of the over-seeds sections."""
    over, names = summary["over_seeds"], list(summary["methods"])
    seeds = ", ".join(map(str, over["seeds"]))
    out = ["", f"## Over training seeds ({seeds}): means with 95 % bootstrap intervals", "",
           f"{over['resamples']} bootstrap resamples. Tau: checkpoints resampled within each seed and the seeds "
           "resampled; gains (one number per seed): the seeds resampled"
           + (" (one seed: their intervals have zero width)" if len(over["seeds"]) < 2 else "")
           + ". The tables above are the first seed's.", "",
           "### Kendall tau against linear-probe mIoU", ""]
    out += _methods_table(over["tau"], labels, names, 3)
    out += ["", "### Label-free selection (recombined score) over seeds: mIoU gains", ""]
    out += _methods_table(over["selection"], {"selected_minus_last": "selected - last",
                                              "best_minus_selected": "best (oracle) - selected"}, names, 4)
    out += _alarm(over["alarm"], names)
    out += _sweep(over["sweep"], summary["plan"])
    return out


def _alarm(alarm: dict, names: list) -> list:
    out = ["", "### The degradation alarm (`--on-degrade warn`) and the online pick", "",
           f"The alarm fired in {alarm['fired']} of {alarm['total']} training runs. Online pick: the causal "
           "recombined score replayed over the evaluated checkpoints up to the firing step (the last "
           "checkpoint when it never fires); offline: `select_checkpoints` over the whole run.", "",
           "| method | seed | alarm step | mIoU peak step | online step | mIoU online | offline step | "
           "mIoU offline | mIoU last | mIoU best |", "|---" * 10 + "|"]
    for r in alarm["runs"]:
        out.append(f"| {r['method']} | {r['seed']} | {_step(r['fire_step'])} | {_step(r['peak_step'])} | "
                   f"{_step(r['online_step'])} | {_fmt(r['online_miou'])} | {r['offline_step']} | "
                   f"{_fmt(r['offline_miou'])} | {_fmt(r['last_miou'])} | {_fmt(r['best_miou'])} |")
    out += [""]
    out += _methods_table(alarm, {"online_minus_last": "online - last", "online_minus_offline": "online - offline",
                                  "best_minus_online": "best (oracle) - online"}, names, 4)
    return out


def _sweep(sweep: dict, plan: dict) -> list:
    out = ["", "### Regulariser sweep", "",
           "Final mIoU of runs trained with --dse-beta beta, and its change against beta 0 (paired by seed); "
           "gradient ratio: ||grad of beta x DSE term|| / ||grad of the SSL loss|| over the student's "
           "parameters, on one batch, at the run's first and last checkpoint (beta 0: no DSE term, n/a)."]
    titles = {"scratch": f"from step 0, {plan['steps']} steps",
              "selected": f"from the selected checkpoint, {plan['reg_steps'] or max(1, plan['steps'] // 3)} steps"}
    for start, methods in sweep.items():
        for method, table in methods.items():
            out += ["", f"**{method}, {titles[start]}**", "",
                    "| beta | final mIoU | change vs beta 0 | grad ratio, first checkpoint | "
                    "grad ratio, last checkpoint |", "|---|---|---|---|---|"]
            for key, r in table.items():
                out.append(f"| {key} | {cell(r['miou'], sign=False)} | {cell(r['delta'])} | "
                           f"{cell(r['ratio_first'], 3, False)} | {cell(r['ratio_last'], 3, False)} |")
    return out
