"""What a study's seeds say together: rates, tests, sweeps and null models, as plain data.

Every function reads the per-seed records of `vestige.study.study_base` (and of its
conditions) and returns JSON-safe dicts for `summary.json`; `vestige.report` renders them.

* `catch_rates`: catches with exact (Clopper-Pearson) intervals, the reference against the
  control with Fisher's exact test;
* `threshold_sweep` / `one_clause_short`: catches as each clause's threshold moves, and the
  seeds whose best candidate fails one clause only;
* `coincidence_null`: how often a caught neuron's settling "coincides" with a stage, against
  the same count for settle steps drawn from every early fader of the study (a null model);
* `comparisons`: each condition against the unchanged run of the same seed, split by whether
  the target was caught, the paired target-minus-control contrasts, and Holm's correction
  over the whole family of tests;
* `first_copy`: the target's effect where only the crutch can predict (unscored first-copy
  focus positions) beside the scored ones;
* `numerics`: the fraction of seeds whose verdict, peak step and settle step survive a
  perturbed retraining, and `numerics_pools` those pooled with batches run on more seeds;
* `fresh_check`: the independent check (`course/study/verify.py --json`) on fresh seeds,
  against the study's own rate.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from typing import Any

import numpy as np

from vestige.stats import fisher, holm, mean_ci, paired_test, rate

# The threshold sweep: one parameter of `Criteria` moved at a time from its default.
SWEEP: dict[str, tuple] = {
    "min_peak": (0.10, 0.125, 0.15, 0.175, 0.20),
    "max_final_fraction": (0.05, 0.10, 0.15, 0.20),
    "init_floor_ratio": (1.5, 2.0, 2.5, 3.0),
    "bar": ("p95", "p99", "p999"),
    "floor": ("positions", "all"),
    "same_token": (True, False),
}
OUTCOMES = (
    "final_loss",
    "final_accuracy",
    "focus_loss",
    "copy_loss",
    "budget_loss",
    "transition",
    "mean_selectivity",
)
ALPHA = 0.05  # the family-wise error rate of the condition tests (Holm)
# The pre-registered target (course/study/preregistration.md): a catch in at least this
# fraction of unseen reference seeds, and in no control seed.
TARGET_RATE = 0.8


def sweep_key(parameter: str, value) -> str:
    return f"{parameter}={value}"


def catch_rates(main: list[dict], control: list[dict] | None) -> dict[str, Any]:
    """Catch rates with exact 95% intervals; with a control, Fisher's exact test of the
    reference's rate against it (one-sided: the reference catches more)."""
    ref = rate(sum(r["caught"] for r in main), len(main))
    out = {"reference": ref, "target": against_target(ref)}
    if control is not None:
        ctl = rate(sum(r["caught"] for r in control), len(control))
        out["control"] = ctl
        out["fisher"] = fisher(ref["k"], ref["n"], ctl["k"], ctl["n"])
        out["target"]["control_clean"] = ctl["k"] == 0
    return out


def against_target(ref: dict) -> dict[str, Any]:
    """The reference's rate against the pre-registered `TARGET_RATE`: `met` (the observed
    rate reaches it) and `excluded` (the exact interval's upper bound falls below it)."""
    return {
        "rate": TARGET_RATE,
        "met": bool(ref["n"]) and ref["rate"] >= TARGET_RATE,
        "excluded": bool(ref["n"]) and ref["high"] < TARGET_RATE,
    }


def threshold_sweep(results: list[dict]) -> list[dict[str, Any]]:
    """Rows (parameter, value, catches with an exact interval) from each seed's `sweep`."""
    rows = []
    for parameter, values in SWEEP.items():
        for value in values:
            key = sweep_key(parameter, value)
            caught = [r["sweep"][key] for r in results if key in r.get("sweep", {})]
            rows.append({"parameter": parameter, "value": value, **rate(sum(caught), len(caught))})
    return rows


def one_clause_short(results: list[dict]) -> dict[str, list[int]]:
    """{clause: the seeds whose best candidate fails that clause and no other}."""
    short: dict[str, list[int]] = {}
    for r in results:
        failed = r["best_candidate"]["failed"]
        if not r["caught"] and len(failed) == 1:
            short.setdefault(failed[0], []).append(r["seed"])
    return short


def failed_clauses(results: list[dict]) -> dict[str, int]:
    """How often each clause fails for the best candidate of a seed without a catch."""
    return dict(
        Counter(c for r in results if not r["caught"] for c in r["best_candidate"]["failed"])
    )


def coincidence_null(results: list[dict], n_draws: int = 10000, seed: int = 0) -> dict[str, Any]:
    """For each transition a caught neuron's settling may coincide with (within one
    checkpoint): the observed count, and the count expected when each caught neuron's settle
    step is replaced by one drawn from every early fader of the study (any neuron that passed
    needed, above_init, sustained and faded, in any seed), with the one-sided p that chance
    reaches the observed count, Holm-adjusted over the transitions. Adjacent early checkpoints
    hold most transition dates, so any early settler "coincides"; this says whether the caught
    ones do more than that."""
    caught = [r for r in results if r["caught"] and r["mechanism"]["settle_step"] is not None]
    pool = [s for r in results for s in r.get("faders", [])]
    if not caught or not pool:
        return {"n_caught": len(caught), "n_faders": len(pool), "transitions": {}}
    rng = np.random.default_rng(seed)
    draws = rng.choice(np.asarray(pool), size=(n_draws, len(caught)))
    out = {}
    names = sorted({n for r in caught for n in r["mechanism"]["transitions"]})
    for name in names:
        observed, null = 0, np.zeros(n_draws)
        for i, r in enumerate(caught):
            steps, date = r["steps"], r["mechanism"]["transitions"].get(name)
            if date is None or (isinstance(date, float) and math.isnan(date)):
                continue
            observed += _near(steps, r["mechanism"]["settle_step"], date)
            null += np.array([_near(steps, s, date) for s in draws[:, i]])
        out[name] = {
            "observed": int(observed),
            "expected": float(null.mean()),
            "p": float((null >= observed).mean()),
        }
    for name, adjusted in holm({k: t["p"] for k, t in out.items()}).items():
        out[name]["p_holm"] = adjusted  # one test per transition: a family
    return {"n_caught": len(caught), "n_faders": len(pool), "transitions": out}


def _near(steps: list[int], a: float, b: float) -> bool:
    """Whether checkpoints a and b are at most one checkpoint apart (a, b snapped to steps)."""

    def index(x: float) -> int:
        return min(range(len(steps)), key=lambda i: abs(steps[i] - x))

    return abs(index(a) - index(b)) <= 1


def comparisons(results: list[dict], conditions: tuple[str, ...], labels: dict) -> dict:
    """Each condition minus the unchanged run of the same seed (mean, 95% t-interval, paired
    t-test p) for every outcome, over all seeds and split by whether the target was caught;
    the paired target-minus-control contrasts; Holm-adjusted p on final loss over the
    whole family (conditions and contrasts), and a verdict from it."""
    from vestige.conditions import CONTRASTS

    out: dict[str, Any] = {}
    for name in conditions:
        pairs = [r for r in results if name in r["conditions"]]
        entry: dict[str, Any] = {"label": labels[name], "seeds": [r["seed"] for r in pairs]}
        for m in OUTCOMES:
            entry[f"delta_{m}"] = paired_test(
                [r["conditions"][name][m] - r["base"][m] for r in pairs]
            )
        for group, keep in (("caught", True), ("not_caught", False)):
            subset = [r for r in pairs if r["target"]["caught"] == keep]
            entry[f"delta_final_loss_{group}"] = mean_ci(
                [r["conditions"][name]["final_loss"] - r["base"]["final_loss"] for r in subset]
            )
        out[name] = entry
    contrasts = {}
    for target, control in CONTRASTS.items():
        if target in conditions and control in conditions:
            pairs = [r for r in results if target in r["conditions"] and control in r["conditions"]]
            contrasts[f"{target} - {control}"] = paired_test(
                [
                    r["conditions"][target]["final_loss"] - r["conditions"][control]["final_loss"]
                    for r in pairs
                ]
            )
    family = {name: e["delta_final_loss"]["p"] for name, e in out.items()}
    family.update({name: c["p"] for name, c in contrasts.items()})
    adjusted = holm(family)
    for name, entry in [*out.items(), *contrasts.items()]:
        delta = entry["delta_final_loss"] if "delta_final_loss" in entry else entry
        entry["p_holm"] = adjusted[name]
        entry["verdict"] = verdict(delta, adjusted[name])
    return {"conditions": out, "contrasts": contrasts, "holm_family": sorted(family)}


def verdict(delta: dict[str, float], p_holm: float) -> str:
    """ "better" / "worse" when the Holm-adjusted p is below ALPHA (by the sign of the mean),
    else "no clear difference", or "too few seeds": a machine-readable word."""
    if delta["n"] < 2 or math.isnan(p_holm):
        return "too few seeds"
    if p_holm >= ALPHA:
        return "no clear difference"
    return "better" if delta["mean"] < 0 else "worse"


def first_copy(results: list[dict]) -> dict[str, Any]:
    """Over seeds with a caught neuron: its effect at its peak and at the end on the scored
    focus positions and on the unscored first-copy ones (where only the crutch predicts)."""
    records = [r["first_copy"] for r in results if r["caught"] and r.get("first_copy")]
    return {
        key: mean_ci([rec[key] for rec in records])
        for key in ("scored_peak", "unscored_peak", "scored_final", "unscored_final")
    } | {"n": len(records)}


def numerics(results: list[dict], perturbed: dict[str, list[dict]]) -> dict[str, Any]:
    """For each perturbation: of the seeds retrained so, the fraction that keep the verdict
    (caught or not, and the same neuron), the best candidate's peak step and its settle step,
    with exact intervals."""
    by_seed = {r["seed"]: r for r in results}
    out = {}
    for kind, copies in perturbed.items():
        pairs = [(by_seed[c["seed"]], c) for c in copies if c["seed"] in by_seed]
        same_verdict = [
            a["caught"] == b["caught"]
            and (not a["caught"] or a["neuron"]["unit"] == b["neuron"]["unit"])
            for a, b in pairs
        ]
        same_peak = [_best(a)["peak_step"] == _best(b)["peak_step"] for a, b in pairs]
        same_settle = [_best(a)["settle_step"] == _best(b)["settle_step"] for a, b in pairs]
        out[kind] = {
            "seeds": [a["seed"] for a, _ in pairs],
            "caught": sum(b["caught"] for _, b in pairs),
            "verdict": rate(sum(same_verdict), len(pairs)),
            "peak_step": rate(sum(same_peak), len(pairs)),
            "settle_step": rate(sum(same_settle), len(pairs)),
            "changed": [a["seed"] for (a, _), same in zip(pairs, same_verdict) if not same],
        }
    return out


def pooled_numerics(a: dict[str, dict], b: dict[str, dict]) -> dict[str, Any]:
    """Two `numerics` of disjoint seeds as one, per perturbation both hold: the counts added
    and their exact intervals computed anew."""
    out = {}
    for kind in a.keys() & b.keys():
        x, y = a[kind], b[kind]
        out[kind] = {
            "seeds": x["seeds"] + y["seeds"],
            "caught": x["caught"] + y["caught"],
            **{
                name: rate(x[name]["k"] + y[name]["k"], x[name]["n"] + y[name]["n"])
                for name in ("verdict", "peak_step", "settle_step")
            },
            "changed": x["changed"] + y["changed"],
        }
    return {kind: out[kind] for kind in a if kind in out}  # in `a`'s order


def numerics_pools(own: dict[str, dict], batches: dict[str, dict[str, dict]]) -> dict[str, Any]:
    """The study's own `numerics` pooled with the batches run on more seeds ({key: numerics},
    keys as `vestige.report.NUMERICS_BATCHES`, seeds disjoint): the report seeds (with
    `numerics_report`) and, when other batches add seeds, all perturbed seeds."""
    out = {}
    report = "numerics_report" in batches
    if report:
        out["report seeds"] = pooled_numerics(own, batches["numerics_report"])
    if len(batches) > report:
        out["all perturbed seeds"] = functools.reduce(pooled_numerics, batches.values(), own)
    return out


def _best(r: dict) -> dict:
    return r["neuron"] if r["caught"] else r["best_candidate"]


def fresh_check(records: dict[str, dict], summary: dict) -> dict[str, Any]:
    """The independent check's verdicts on fresh seeds ({preset: {folder, results}}, as
    `course/study/verify.py --json` writes them), per preset: the catches that hold up (a
    claim it rejects is no catch) with their exact interval, the claims it rejected and the
    neurons it found that the detector missed. The study's reference and control presets are
    pooled with the study's own seeds, and the reference is tested against them (Fisher's
    exact test, two-sided)."""
    out = {}
    for preset in sorted(records, key=lambda p: (p != summary["preset"], p)):  # the study's first
        results = records[preset]["results"]
        claimed = [r for r in results if r["claimed"] is not None]
        held = [r["seed"] for r in claimed if r["holds"]]
        out[preset] = {
            "folder": records[preset]["folder"],
            "seeds": [r["seed"] for r in results],
            "rate": rate(len(held), len(results)),
            "caught": held,
            "rejected": [r["seed"] for r in claimed if not r["holds"]],
            "missed": {str(r["seed"]): r["missed"] for r in results if r.get("missed")},
        }
    control = summary.get("control", {}).get("preset")
    for preset, kind in ((summary["preset"], "reference"), (control, "control")):
        if preset in out and kind in summary["rates"]:
            k, n = out[preset]["rate"]["k"], out[preset]["rate"]["n"]
            study = summary["rates"][kind]
            out[preset]["pooled"] = rate(k + study["k"], n + study["n"])
            if kind == "reference":
                out[preset]["against_study"] = fisher(k, n, study["k"], study["n"])
    return out
