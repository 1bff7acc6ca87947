"""The study's report: summary.json, report.md and figures, written from measured results.

Every number in report.md is read from the study's results; the prose around it only says
what the numbers are. `write_report` is called by `vestige study`.
"""

from __future__ import annotations

import json
import math
import os
from itertools import groupby
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd

from vestige import theme
from vestige.runs import atomic_write
from vestige.stats import rate
from vestige.summary import fresh_check, numerics_pools

VERIFIED = "verify.json"  # course/study/verify.py --json (make verify-fresh)
# The seeds and numerics of the study's perturbations run on more seeds, each on one machine:
# summary key -> (file beside the study, its rows' label, the make target that writes it).
NUMERICS_BATCHES = {
    "numerics_report": ("numerics_report.json", "other report seeds", "numerics-report"),
    "numerics_fresh": ("numerics_fresh.json", "fresh seeds", "numerics-fresh"),
}
# The suppression reports in the study's folder (their runs train conditions the study does
# not): subfolder -> the make target that writes it. The study's literature section cites them.
SUPPRESSION_REPORTS = {
    "suppression": "suppression",
    "suppression_whole": "suppression-whole",
    "suppression_half": "suppression-half",
}


def write_report(
    summary: dict, results: list[dict], folder: Path, search: str | os.PathLike | None = None
) -> None:
    """summary.json, results.json (per seed), report.md and the figures, in `folder`; with
    the independent check's verdicts on fresh seeds (`VERIFIED`) and the perturbations run
    on more seeds (`NUMERICS_BATCHES`) and the suppression reports (`SUPPRESSION_REPORTS`)
    when `folder` holds them."""
    folder.mkdir(parents=True, exist_ok=True)
    # only ever read from their files
    stale = ("fresh", "numerics_pooled", "suppression_reports", *NUMERICS_BATCHES)
    summary = {k: v for k, v in summary.items() if k not in stale}
    taken = {kind: set(v["seeds"]) for kind, v in (summary.get("numerics") or {}).items()}
    found = {
        key: _beside(
            folder / file,
            lambda data: _numerics_batch(data, taken),
            "does not hold the seeds and numerics of a study summary, or perturbs seeds "
            "already perturbed",
            target,
        )
        for key, (file, _, target) in NUMERICS_BATCHES.items()
    }
    found["fresh"] = _beside(
        folder / VERIFIED,
        lambda data: fresh_check(data, summary),
        "is not what course/study/verify.py --json writes",
        "verify-fresh",
    )
    reports = {
        name: _beside(
            folder / name / "summary.json",
            _suppression_verdicts,
            "does not hold the conditions of a study summary",
            target,
        )
        for name, target in SUPPRESSION_REPORTS.items()
    }
    found["suppression_reports"] = {k: v for k, v in reports.items() if v is not None} or None
    summary.update({key: value for key, value in found.items() if value is not None})
    batches = {key: summary[key]["numerics"] for key in NUMERICS_BATCHES if key in summary}
    if batches:
        summary["numerics_pooled"] = numerics_pools(summary.get("numerics") or {}, batches)
    for name, data in (("summary", summary), ("results", results)):
        text = json.dumps(json_safe(data), indent=1, allow_nan=False)
        atomic_write(folder / f"{name}.json", text + "\n")
    labels = {n: c["label"] for n, c in summary["conditions"].items()}
    figures = write_figures(results, folder, labels)
    for part in (summary.get("map") or {}).values():
        figures += part.get("figures", [])
    sections = [
        _headline(summary),
        _fresh(summary),
        _sweep(summary),
        _numerics(summary),
        _per_seed(summary, results),
        _mechanisms(summary, results),
        _first_copy(summary),
        _suppression(summary),
        _pool(summary),
        _map(summary),
        _literature(summary),
        _blind_spots(summary),
        "## Figures\n\n" + "\n".join(f"![{name}]({name}.png)" for name in figures),
    ]
    if search is not None and Path(search).exists():
        sections.append(_search_appendix(Path(search)))
    atomic_write(folder / "report.md", "\n\n".join(s for s in sections if s) + "\n")


def json_safe(value):
    """`value` as strict JSON data: numpy scalars as Python numbers, NaN as null."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ----------------------------------------------------------------------------- sections


def _headline(s: dict) -> str:
    clauses = "\n".join(
        f"{i}. {text}" for i, text in enumerate(s["criteria"]["clauses"].values(), 1)
    )
    ref = s["rates"]["reference"]
    lines = [
        f"# Vestigial-neuron study: preset `{s['preset']}`, {s['n_seeds']} seeds",
        "",
        f"Generated by `vestige study` on seeds {_seeds(s['seeds'])} (this invocation: "
        f"{s['seconds']:.0f} s; finished runs and analyses are reused). Every number below is "
        "measured by the code in this repository from the runs' checkpoints.",
        "",
        f"**The detector caught a vestigial neuron in {_rate(ref)} seeds.** "
        "A neuron is caught only when, with percentile-bootstrap 95% intervals over the "
        "evaluation sequences (effects are mean-ablation loss increases on the neuron's focus "
        "positions; with several crutches, on its own crutch's):",
        "",
        clauses,
    ]
    target = s["rates"].get("target")
    if target:
        verdict = (
            "reached"
            if target["met"]
            else "missed, and the interval excludes it"
            if target["excluded"]
            else "missed (the interval does not exclude it)"
        )
        lines += [
            "",
            f"Pre-registered target (`course/study/preregistration.md`, fixed before any "
            f"report run with its tuning seeds, these seeds and the decision rule): a catch "
            f"in at least {target['rate']:.0%} of unseen seeds and in none of the control's. "
            f"The rate target is **{verdict}**"
            + (
                f"; the control is {'clean' if target['control_clean'] else 'not clean'}."
                if "control_clean" in target
                else "."
            ),
        ]
    if s["failed_clauses_when_not_caught"]:
        failed = ", ".join(f"`{k}` {v}" for k, v in s["failed_clauses_when_not_caught"].items())
        lines += ["", f"Seeds without a catch, clauses their best candidate failed: {failed}."]
    if s["one_clause_short"]:
        short = "; ".join(
            f"`{k}`: {', '.join(map(str, v))}" for k, v in sorted(s["one_clause_short"].items())
        )
        lines += ["", f"Seeds whose best candidate fails exactly one clause: {short}."]
    if "control" in s:
        c, ctl, f = s["control"], s["rates"]["control"], s["rates"]["fisher"]
        lines += [
            "",
            f"**Negative control** (preset `{c['preset']}`: the same task without its "
            f"crutch, everything else equal): caught in {_rate(ctl)} seeds "
            f"({_seeds(c['seeds'])}). Fisher's exact test, reference catches more often than "
            f"the control: one-sided p = {_p(f['p_greater'])}.",
        ]
    lines += [
        "",
        "Rates are given as k/n with exact (Clopper-Pearson) 95% intervals.",
    ]
    return "\n".join(lines)


def _fresh(s: dict) -> str:
    """The independent check on fresh seeds (`summary.fresh_check`)."""
    if not s.get("fresh"):
        return ""
    lines = [
        "## The independent check on fresh seeds",
        "",
        "`course/study/verify.py` recomputes every clause from the checkpoints with the "
        "public API only (its own hooks, bootstrap and untrained bars, from every seed's "
        "step-0 model) for the neuron the detector claims, or, without a claim, for every "
        "neuron selective at the end that prefers a scored class; the seeds were fixed in "
        "the pre-registration and never opened while tuning (`make verify-fresh`).",
        "",
    ]
    for preset, f in s["fresh"].items():
        missed = "; ".join(f"{seed}: {', '.join(units)}" for seed, units in f["missed"].items())
        line = (
            f"- `{preset}` (seeds {_seeds(f['seeds'])}): a catch that holds up in "
            f"{_rate(f['rate'])} seeds ({_seeds(f['caught'])}); claims it rejected: "
            f"{_seeds(f['rejected'])}; neurons the detector missed: {missed or 'none'}."
        )
        if "against_study" in f:
            line += (
                f" Against this study's {s['rates']['reference']['k']}/"
                f"{s['rates']['reference']['n']}: Fisher's exact test, two-sided p = "
                f"{_p(f['against_study']['p_two_sided'])}."
            )
        if "pooled" in f:
            line += f" With this study's own seeds: {_rate(f['pooled'])}."
        lines.append(line)
    return "\n".join(lines)


def _sweep(s: dict) -> str:
    """Catches as each clause's threshold moves, beside the control's."""
    control = {
        (r["parameter"], str(r["value"])): r
        for r in s.get("control", {}).get("threshold_sweep", [])
    }
    rows = [
        "## Threshold sweep",
        "",
        "Each row moves one threshold of the criteria from its default (in bold) and counts "
        "the seeds with a catch; `floor = all` takes the init floor over every focus class "
        "rather than the neuron's own; `bar` is the quantile of untrained selectivity to beat.",
        "",
        "| parameter | value | reference | control |",
        "|---|---|---|---|",
    ]
    defaults = s["criteria"]
    for r in s["threshold_sweep"]:
        value = (
            f"**{r['value']}**" if defaults.get(r["parameter"]) == r["value"] else str(r["value"])
        )
        other = control.get((r["parameter"], str(r["value"])))
        rows.append(
            f"| {r['parameter']} | {value} | {_rate(r)} | {_rate(other) if other else 'n/a'} |"
        )
    return "\n".join(rows)


def _beside(path: Path, parse, what: str, target: str):
    """`parse` of the JSON file `path` beside a study, None when there is none; a malformed
    one is a ValueError (`path` `what`, and the make target that writes it), raised before
    `write_report` writes anything."""
    if not path.exists():
        return None
    try:
        return parse(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(
            f"{path} {what} ({err!r}): run `make {target}` again or remove it; nothing was written"
        ) from err


def _numerics_batch(data: dict, taken: dict[str, set]) -> dict:
    """The seeds and `numerics` of a batch of perturbations (what the make target that runs
    them keeps of its study's summary), checked whole, and with none of its seeds among those
    `taken` {perturbation: seeds} by the study or an earlier batch (pooled, they would count
    twice); adds its seeds to `taken`."""
    numerics = {kind: dict(v) for kind, v in data["numerics"].items()}
    for kind, v in numerics.items():
        missing = {"seeds", "caught", "verdict", "peak_step", "settle_step", "changed"} - set(v)
        if missing:
            raise KeyError(f"{kind} lacks {sorted(missing)}")
        for name in ("verdict", "peak_step", "settle_step"):  # intervals computed anew
            k, n = v[name]["k"], v[name]["n"]
            if not (_is_int(k) and _is_int(n) and 0 <= k <= n == len(v["seeds"])):
                raise ValueError(f"{kind} {name} is not k of its {len(v['seeds'])} seeds")
            v[name] = rate(k, n)
        if not all(map(_is_int, [*v["seeds"], *v["changed"], v["caught"]])):
            raise TypeError(f"{kind} holds seeds or counts that are not integers")
        again = taken.get(kind, set()) & set(v["seeds"])
        if again:
            raise ValueError(f"{kind} perturbs seeds {sorted(again)} already perturbed")
    for kind, v in numerics.items():
        taken.setdefault(kind, set()).update(v["seeds"])
    return {"seeds": list(data["seeds"]), "numerics": numerics}


def _suppression_verdicts(data: dict) -> dict[str, dict]:
    """{"seeds", "conditions", "pool"} of a suppression report's summary: its seeds and, per
    table, {condition: its verdict, final-loss change, Holm p and the number of tests that p
    is adjusted over}, checked whole (a report that holds no condition is refused too)."""
    pool = data.get("pool") or {}
    if not isinstance(pool, dict):
        raise TypeError("its pool is not a table")
    tables = {
        "conditions": (data["conditions"], data["holm_family"]),
        "pool": (pool.get("conditions") or {}, pool.get("holm_family") or []),
    }
    if not all(map(_is_int, data["seeds"])):
        raise TypeError("its seeds are not integers")
    out: dict[str, Any] = {"seeds": list(data["seeds"])}
    for where, (table, family) in tables.items():
        if not isinstance(table, dict) or not isinstance(family, list):
            raise TypeError(f"its {where} are not a table with a Holm family")
        out[where] = {name: _verdict(name, entry, len(family)) for name, entry in table.items()}
    if not (out["conditions"] or out["pool"]):
        raise ValueError("it holds no condition")
    return out


def _verdict(name: str, entry: dict, tests: int) -> dict:
    change = {key: entry["delta_final_loss"][key] for key in ("n", "mean", "low", "high")}
    numbers = [change[key] for key in ("mean", "low", "high")] + [entry["p_holm"]]
    if not (_is_int(change["n"]) and isinstance(entry["verdict"], str)):
        raise TypeError(f"{name} has no verdict or no seed count")
    if not all(
        v is None or isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers
    ):
        raise TypeError(f"{name} has a final-loss change or Holm p that is not a number")
    if (change["low"] is None) != (change["high"] is None):
        raise ValueError(f"{name} has one end of its interval only")
    return {  # None (not computed) renders as n/a, as in the study's own tables
        "verdict": entry["verdict"],
        "delta_final_loss": change,
        "p_holm": entry["p_holm"],
        "holm_tests": tests,
    }


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _numerics(s: dict) -> str:
    n = s.get("numerics") or {}
    if not any(v["seeds"] for v in n.values()):
        return ""
    batches = [(NUMERICS_BATCHES[k], s[k]) for k in NUMERICS_BATCHES if k in s]
    rows = [
        "## Robustness to numerics",
        "",
        "Each seed retrained with one change that should not matter: another torch thread "
        "count (float sums in another order), or its initial weights perturbed by Gaussian "
        "noise of std 1e-6. A catch that does not survive is a property of float noise, not of "
        "the seed. On one machine, a run is bit-identical to its rerun with the same thread "
        "count; across CPUs it is not.",
        *(
            [
                "",
                "More seeds were perturbed beside the study's own, each batch on one machine "
                "with its unchanged runs trained there too: "
                + "; ".join(
                    f"the {label} {_seeds(b['seeds'])} (`make {target}`)"
                    for (_, label, target), b in batches
                )
                + ". The last rows pool them.",
            ]
            if batches
            else []
        ),
        "",
        "| perturbation | seeds | caught | same verdict (and neuron) | same peak step | "
        "same settle step | verdict changed in |",
        "|---|---|---|---|---|---|---|",
    ]
    parts = [
        ("", n),
        *((f" ({label})", b["numerics"]) for (_, label, _), b in batches),
        *((f" ({name})", table) for name, table in (s.get("numerics_pooled") or {}).items()),
    ]
    for label, table in parts:
        for kind, v in table.items():
            rows.append(
                f"| {kind}{label} | {_seeds(v['seeds'])} | {v['caught']} | "
                f"{_rate(v['verdict'])} | {_rate(v['peak_step'])} | {_rate(v['settle_step'])} "
                f"| {', '.join(map(str, v['changed'])) or 'none'} |"
            )
    return "\n".join(rows)


def _per_seed(s: dict, results: list[dict]) -> str:
    rows = [
        "## Per seed",
        "",
        "| seed | neuron | peak effect [95%] (step) | final effect [95%] | final margin effect "
        "(% of its peak) | SI (untrained p99) | same-token SI (untrained p99) | settles | "
        "copy transition | final loss |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        n = r["neuron"] or r["best_candidate"]
        name = (
            n["unit"] if r["caught"] else f"none (best {n['unit']}: fails {', '.join(n['failed'])})"
        )
        if n.get("positions") not in (None, "trigger"):
            name += f" on {n['positions']}"
        rows.append(
            f"| {r['seed']} | {name} | {n['peak_effect']:.3f} [{n['peak_low']:.3f}, "
            f"{n['peak_high']:.3f}] ({n['peak_step']}) | {n['final_effect']:.3f} "
            f"[{n['final_low']:.3f}, {n['final_high']:.3f}] | {n['final_margin']:.2f} "
            f"({_pct(n['margin_fraction'])}) | {n['final_selectivity']:.2f} "
            f"({n['selectivity_baseline']:.2f}) | {n['final_matched_selectivity']:.2f} "
            f"({n['matched_baseline']:.2f}) | {_int(n['settle_step'])} | "
            f"{_int(r['base']['transition'])} | {r['base']['final_loss']:.3f} |"
        )
    rows += [
        "",
        "Init floor the neuron above was judged against (largest effect of any neuron at "
        "step 0 on its positions), per seed: "
        + ", ".join(
            f"{r['seed']}: {(r['neuron'] or r['best_candidate'])['init_floor']:.3f}"
            for r in results
        )
        + ".",
    ]
    return "\n".join(rows)


def _mechanisms(s: dict, results: list[dict]) -> str:
    caught = [r for r in results if r["caught"]]
    if not caught:
        return ""
    rows = [
        "## What the caught neurons did",
        "",
        "For each caught neuron: the checkpoints at which the copy loss drops (the copy "
        "transition) and at which each stage curve moves half way to its final value; which "
        "of them the neuron's settling (its effect falling below half its peak for good) falls "
        "within one checkpoint of; the two heads whose ablation cost on the focus positions "
        "grew most between the neuron's peak and its settling (candidates for what replaced "
        "it: a growth, not a test of a takeover), with their attention from the focus "
        "positions to the previous token and to the induction target; and the neuron at the "
        "end: *unused* when its logit-margin effect's upper bound is below 10% of its peak "
        "margin effect, else *still used (outweighed)*; a *backup* when, with every later "
        "attention layer mean-ablated, ablating it still costs >= 0.15 nats.",
        "",
        "| seed | neuron | settles | transitions (step) | within one checkpoint of | heads that "
        "grew (growth, attn prev / induction) | effect with later attention ablated: peak, end "
        "| jointly with top-3 / all others, end | at the end |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in caught:
        m = r["mechanism"]
        transitions = "; ".join(f"{k}: {_int(v)}" for k, v in m["transitions"].items())
        heads = (
            "; ".join(
                f"{h['head']} (+{h['growth']:.2f}, {h['attn_previous']:.2f} / "
                f"{h['attn_induction']:.2f})"
                for h in m["heads_that_grew"]
            )
            or "-"
        )
        backup = m["effect_later_attn_ablated"]
        peak_step = r["neuron"]["peak_step"]
        at_peak = next((v for s_, v in backup if s_ == peak_step), math.nan)
        end_backup = f"{at_peak:.2f}, {backup[-1][1]:.2f}" if backup else "n/a"
        joint = (
            f"{m['effect_joint'][-1][1]:.2f} / {m['effect_all_others'][-1][1]:.2f}"
            if m["effect_joint"]
            else "n/a"
        )
        status = m["end_status"] + (", backup" if m["backup_at_end"] else "")
        rows.append(
            f"| {r['seed']} | {r['neuron']['unit']} | {_int(m['settle_step'])} | "
            f"{transitions} | {', '.join(m['coincides_with']) or 'none'} | {heads} | "
            f"{end_backup} | {joint} | {status} |"
        )
    null = s["coincidence_null"]
    if null["transitions"]:
        rows += [
            "",
            f"**Does the settling coincide with a transition more than chance?** The null "
            f"model replaces each caught neuron's settle step by one drawn from the "
            f"{null['n_faders']} early faders of the study (every neuron, in any seed, that "
            "passed needed, above_init, sustained and faded, selective or not) and counts again "
            "(10,000 draws). A transition that early faders hit as often as caught neurons is "
            "no evidence that the caught neuron handed its job to it.",
            "",
            "| transition | caught neurons within one checkpoint | expected under the null | "
            "one-sided p | Holm p (over the transitions) |",
            "|---|---|---|---|---|",
        ]
        for name, t in null["transitions"].items():
            rows.append(
                f"| {name} | {t['observed']} of {null['n_caught']} | {t['expected']:.1f} | "
                f"{_p(t['p'])} | {_p(t.get('p_holm', float('nan')))} |"
            )
    return "\n".join(rows)


def _first_copy(s: dict) -> str:
    f = s["first_copy"]
    if not f["n"]:
        return ""
    return "\n".join(
        [
            "## Needed for the job, or for the loss?",
            "",
            "The loss is scored on the second copy, where copying makes the crutch redundant. On "
            "the first copy's focus positions (never scored) only the crutch can predict the next "
            f"token. Mean-ablation effect of the caught neuron, mean over the {f['n']} caught "
            "seeds with a 95% t-interval (nats):",
            "",
            "| positions | at its peak | at the end |",
            "|---|---|---|",
            f"| scored (second copy) | {_ci(f['scored_peak'], signed=False)} | "
            f"{_ci(f['scored_final'], signed=False)} |",
            f"| unscored (first copy) | {_ci(f['unscored_peak'], signed=False)} | "
            f"{_ci(f['unscored_final'], signed=False)} |",
        ]
    )


def _suppression(s: dict) -> str:
    heading = "## Training without the neuron, or without the crutch's head"
    if not s["conditions"]:
        reports = ", ".join(f"`{name}/`" for name in s.get("suppression_reports") or {})
        told = (
            f"; the suppression reports beside it do ({reports}), each against unchanged runs "
            "of its own seeds, and the literature section below cites them"
            if reports
            else " (`vestige study --conditions` names them)"
        )
        return f"{heading}\n\nThis study trains no seed again under a condition{told}." + (
            _unchanged(s["base"], "This study's unchanged runs")
        )
    rows = [
        heading,
        "",
        f"Each condition retrains the seed with the change below and is compared with the "
        f"unchanged run of the same seed: condition minus unchanged, mean over seeds with a "
        f"95% t-interval. T is the seed's own copy transition. *Budget* is the evaluation "
        f"loss at step {s['budget_step']}; focus and copy losses are final. The target neuron "
        "is the caught one where there is one, else the neuron with the largest peak effect "
        "(which need not fade): the final-loss change is also given for the two groups apart. "
        "The crutch's head is the head whose ablation costs most on the focus positions just "
        "before half the copy transition. The verdict uses the Holm-adjusted p-value (paired "
        f"t-test of the final-loss change, adjusted over the {len(s['holm_family'])} tests of "
        "this table and the contrasts below).",
        "",
        "| condition | seeds | d final loss | caught targets | other targets | d budget loss | "
        "d transition step | d mean SI | Holm p | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in s["conditions"].values():
        rows.append(
            f"| {c['label']} | {len(c['seeds'])} | {_ci(c['delta_final_loss'])} | "
            f"{_ci(c['delta_final_loss_caught'])} (n={c['delta_final_loss_caught']['n']}) | "
            f"{_ci(c['delta_final_loss_not_caught'])} (n={c['delta_final_loss_not_caught']['n']}) "
            f"| {_ci(c['delta_budget_loss'])} | {_ci(c['delta_transition'], 0)} | "
            f"{_ci(c['delta_mean_selectivity'], 2)} | {_p(c['p_holm'])} | {c['verdict']} |"
        )
    if s["contrasts"]:
        rows += [
            "",
            "Paired contrasts (target condition minus control condition, same seed, final loss):",
            "",
            "| contrast | seeds | difference | Holm p | verdict |",
            "|---|---|---|---|---|",
        ]
        for name, c in s["contrasts"].items():
            rows.append(f"| {name} | {c['n']} | {_ci(c)} | {_p(c['p_holm'])} | {c['verdict']} |")
    return "\n".join(rows) + _unchanged(s["base"])


def _unchanged(base: dict, whose: str = "Unchanged runs") -> str:
    return (
        f"\n\n{whose}: final loss {_ci(base['final_loss'], signed=False)}, copy "
        f"transition at step {_ci(base['transition'], 0, signed=False)}, mean SI "
        f"{_ci(base['mean_selectivity'], 2, signed=False)}."
    )


def _pool(s: dict) -> str:
    p = s.get("pool")
    if not p or not p["seeds"]:
        return ""
    rows = [
        "## A finite training set",
        "",
        f"The same task trained on a fixed pool of {p['size']} sequences (drawn with "
        "replacement, many epochs) and evaluated on fresh ones, so that a generalisation gap "
        f"exists: held-out minus training-set loss at the end, {_ci(p['gap'])} nats over "
        f"{len(p['seeds'])} seeds ({p['caught']} with a catch). Leavitt & Morcos's "
        "regulariser against the unchanged pool runs (held-out loss; Holm over these tests):",
        "",
        "| condition | seeds | d held-out loss | d mean SI | Holm p | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for c in p["conditions"].values():
        rows.append(
            f"| {c['label']} | {len(c['seeds'])} | {_ci(c['delta_final_loss'])} | "
            f"{_ci(c['delta_mean_selectivity'], 2)} | {_p(c['p_holm'])} | {c['verdict']} |"
        )
    return "\n".join(rows)


def _map(s: dict) -> str:
    maps = s.get("map") or {}
    if not any("run" in m for m in maps.values()):
        return ""
    rows = [
        "## Training map",
        "",
        "A Gaussian hidden Markov model over per-checkpoint statistics of every seed (weight "
        "norms, L1/L2 ratio, spectral norms, per-class losses, stage probabilities; Hu, Chen, "
        "Saphra & Cho, TMLR 2023), 1-8 states, chosen by BIC. Z-scored per run as Hu et al. "
        "do, seeds that differ only in timing can get states of their own; the same map on "
        "one scale for every seed is the check on that. A detour is a state some seeds visit "
        "and others never do.",
        "",
        "| seeds | scale | states (BIC) | at the 8-state ceiling | detour states | what the "
        "detours show |",
        "|---|---|---|---|---|---|",
    ]
    for name, part in maps.items():
        for scale in ("run", "pooled"):
            if scale not in part:
                continue
            m, d = part[scale]["map"], part[scale]["detours"]
            rows.append(
                f"| {name} | {'per run' if scale == 'run' else 'one scale'} | {m['n_states']} | "
                f"{'yes' if m['at_ceiling'] else 'no'} | "
                f"{', '.join(map(str, m['detour_states'])) or 'none'} | {d['verdict']} |"
            )
    return "\n".join(rows)


def _literature(s: dict) -> str:
    """The suppression results beside the papers they echo (their claims as stated in the
    papers' abstracts; the numbers here are this study's, or, for a condition it did not run,
    the suppression reports' in its folder, named)."""
    c = s["conditions"]
    pool = (s.get("pool") or {}).get("conditions", {})

    def said(name: str, where: str = "conditions") -> str:
        table = c if where == "conditions" else pool
        if name in table:
            return f"{table[name]['verdict']} ({_ci(table[name]['delta_final_loss'])} nats)"
        cited = [
            f"{entry['verdict']} ({_ci(entry['delta_final_loss'])} nats, Holm p "
            f"{_p(entry['p_holm'])} over {_tests(entry['holm_tests'])}; `{folder}/`, "
            f"{entry['delta_final_loss']['n']} paired seeds)"
            for folder, report in (s.get("suppression_reports") or {}).items()
            if (entry := report[where].get(name))
        ]
        return "; ".join(cited) or "not run in this study"

    return "\n".join(
        [
            "## Against the literature",
            "",
            "- Leavitt & Morcos (ICLR 2021) regularised class selectivity in image classifiers: "
            "reducing it raised test accuracy by over 2% (ResNet18) and 1% (ResNet50) on Tiny "
            "ImageNet, and increasing it lowered accuracy in every model. Here, with fresh data "
            f"every step (no train/test gap): alpha -1: {said('alpha-1')}; alpha -0.3: "
            f"{said('alpha-0.3')}; alpha +0.3: {said('alpha+0.3')}. On the finite training set "
            f"(held-out loss): alpha -1: {said('alpha-1', 'pool')}; alpha -0.3: "
            f"{said('alpha-0.3', 'pool')}; alpha +0.3: {said('alpha+0.3', 'pool')}.",
            "- Ranadive et al. (TMLR 2023) found class-selective neurons in ResNet-50 on ImageNet "
            "to emerge in the first epochs and recede 'rapidly but not completely', mattering "
            "early rather than late. Here, holding the target neuron at its mean until T/2: "
            f"{said('neuron-0.5T')}; until the transition: {said('neuron-1T')}; the whole run: "
            f"{said('neuron-whole')}; the never-needed control neuron until T: "
            f"{said('control-1T')}, the whole run: {said('control-whole')}.",
            "- Chen et al. (ICLR 2024) found a syntactic attention structure necessary for "
            "grammatical ability in masked language models, and that briefly suppressing it early "
            "improves the final model; Edelman et al. (NeurIPS 2024) found that removing the "
            "in-context unigram signal speeds the bigram stage of Markov-chain learners. Here, "
            f"holding the crutch's head until T/2: {said('head-0.5T')}; until T: "
            f"{said('head-1T')}; the whole run: {said('head-whole')}. Toy models and windows "
            "tied to each seed's own transition: agreement or disagreement is an analogy, not a "
            "replication.",
        ]
    )


def _blind_spots(s: dict) -> str:
    return "\n".join(
        [
            "## What these measures cannot see",
            "",
            "- Loss saturates: once copying predicts the focus token almost surely, removing any one "
            "contributor barely moves the loss. The final *logit-margin* effect (target logit minus "
            "mean logit) does not saturate; where it stays large the neuron is still used and only "
            "outweighed, which the mechanism table's last column says per seed.",
            "- Mean ablation keeps a neuron's average contribution; it tests the information the "
            "neuron carries, not its bias. Single-neuron ablation misses jobs spread over several "
            "neurons (see the joint-ablation column).",
            "- Selectivity is measured on one fixed evaluation batch per seed and judged against "
            "32 untrained initialisations with the same labels; position classes are partly token "
            "identities, which is why the same-token clause exists.",
            "- With fresh data every step there is no train/test gap, so the main conditions "
            "cannot show a generalisation benefit; the finite-training-set section can.",
            "- The study's thresholds were fixed before these seeds were run (see "
            "`preregistration.md`); the sweep shows how the count depends on them.",
        ]
    )


def _search_appendix(path: Path) -> str:
    """The search for the phenomenon, from its log: one row per variant, by family."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    table = pd.DataFrame(records)
    if "family" not in table:
        table["family"] = None
    table["family"] = table["family"].fillna("trigger_copy (first search)")
    rows = [
        "## Appendix: the search",
        "",
        "Every variant tried while looking for a phenomenon that passes the detector, on "
        "tuning seeds only (never the seeds above), with `course/study/search.py`; the third "
        "search's families, seeds and decision rule were fixed in `preregistration.md` "
        "first. In the first search a variant is the then reference preset with the fields "
        "named changed; in the third, a family's base with them changed.",
        "",
        *_search_ceiling(table),
    ]
    for family, runs in table.groupby("family", sort=False):
        rows += [
            "",
            f"### {family}",
            "",
            "| variant | seeds | caught | most failed clauses (best candidate) | median peak "
            "(nats) | median final SI / untrained p99 | why |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, group in runs.groupby("variant", sort=False):
            failed: dict[str, int] = {}
            for best in group["best"]:
                for clause in best["failed"]:
                    failed[clause] = failed.get(clause, 0) + 1
            top = ", ".join(
                f"{k} {v}" for k, v in sorted(failed.items(), key=lambda kv: -kv[1])[:3]
            )
            peaks = pd.Series([b["peak_effect"] for b in group["best"]])
            si = pd.Series([b["final_selectivity"] for b in group["best"]])
            p99 = pd.Series([b["selectivity_baseline"] for b in group["best"]])
            why = (
                group["why"].dropna().iloc[0]
                if "why" in group and group["why"].notna().any()
                else ""
            )
            rows.append(
                f"| `{name}` | {_seeds(group['seed'])} | {int(group['caught'].sum())}"
                f"/{len(group)} | {top or '-'} | {peaks.median():.3f} | {si.median():.2f} / "
                f"{p99.median():.2f} | {why} |"
            )
    return "\n".join(rows)


def _search_ceiling(table: pd.DataFrame) -> list[str]:
    """One row per family: how many variants it ran, and its most tuning catches (as the
    pre-registration ranks variants) with exact intervals and the variants that reached them:
    the ceiling the search measured."""
    rows = [
        "The ceiling of each family: the most catches any of its variants had on the tuning seeds.",
        "",
        "| family | variants run | most tuning catches | variants with them |",
        "|---|---|---|---|",
    ]
    for family, runs in table.groupby("family", sort=False):
        counts = runs.groupby("variant", sort=False)["caught"].agg(["sum", "size"])
        top = counts[counts["sum"] == counts["sum"].max()]
        best = top.sort_values("size").iloc[0]  # the same catches on fewer seeds: the higher rate
        names = ", ".join(f"`{name}`" for name in top.index)
        rows.append(
            f"| {family} | {len(counts)} | {_rate(rate(int(best['sum']), int(best['size'])))} "
            f"| {names} |"
        )
    return rows


# ----------------------------------------------------------------------------- figures


def write_figures(results: list[dict], folder: Path, labels: dict[str, str]) -> list[str]:
    """PNG figures (altair through vl-convert, in the kit's theme); `labels` names the
    conditions. Returns the figures' names."""
    with theme.enabled():
        return _figures(results, folder, labels)


def _figures(results: list[dict], folder: Path, labels: dict[str, str]) -> list[str]:
    names = []
    rows = [
        {"seed": str(r["seed"]), **point} for r in results if r["caught"] for point in r["timeline"]
    ]
    if rows:
        data = pd.DataFrame(rows)
        data["step1"] = data["step"].clip(lower=1)
        x = alt.X(
            "step1:Q",
            title="training step (log; step 0 drawn at 1)",
            scale=alt.Scale(type="log", domain=[1, int(data["step"].max())], nice=False),
        )
        base = alt.Chart(data).encode(x=x, color=alt.Color("seed:N", title="seed"))
        effect = alt.layer(
            base.mark_area(opacity=0.15).encode(
                y=alt.Y("effect_low:Q", title="ablation effect (nats)"), y2="effect_high:Q"
            ),
            base.mark_line(point=True).encode(y="effect:Q"),
        ).properties(width=320, height=220, title="Caught neuron: effect with 95% interval")
        selectivity = (
            base.mark_line(point=True)
            .encode(y=alt.Y("matched_selectivity:Q", title="same-token selectivity"))
            .properties(width=320, height=220, title="Caught neuron: same-token selectivity")
        )
        (effect | selectivity).save(str(folder / "vestigial_timelines.png"), scale_factor=1.5)
        names.append("vestigial_timelines")
    deltas = pd.DataFrame(
        [
            {
                "seed": r["seed"],
                "condition": labels[n],
                "delta_loss": c["final_loss"] - r["base"]["final_loss"],
            }
            for r in results
            for n, c in r["conditions"].items()
            if n in labels
        ]
    )
    if len(deltas):
        chart = (
            alt.Chart(deltas)
            .mark_circle(size=50)
            .encode(
                x=alt.X("delta_loss:Q", title="final loss, condition minus unchanged (nats)"),
                y=alt.Y("condition:N", title=None, sort=list(labels.values())),
                tooltip=["seed", alt.Tooltip("delta_loss:Q", format="+.3f")],
            )
            .properties(
                width=420,
                height=30 * deltas["condition"].nunique(),
                title="Training without the neuron, per seed",
            )
        )
        rule = alt.Chart(pd.DataFrame({"x": [0]})).mark_rule(color="gray").encode(x="x:Q")
        (rule + chart).save(str(folder / "suppression.png"), scale_factor=1.5)
        names.append("suppression")
    return names


# ----------------------------------------------------------------------------- formatting


def _ci(ci: dict, digits: int = 3, signed: bool = True) -> str:
    """'mean [low, high]'; `signed` for differences."""
    if ci["n"] == 0 or ci["mean"] is None or _isnan(ci["mean"]):
        return "n/a"
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    if _isnan(ci["low"]):
        return f.format(ci["mean"])
    return f"{f.format(ci['mean'])} [{f.format(ci['low'])}, {f.format(ci['high'])}]"


def _rate(r: dict) -> str:
    """'k/n (rate, 95% low-high)' from `vestige.stats.rate`."""
    if not r["n"]:
        return "0/0"
    return f"{r['k']}/{r['n']} ({r['rate']:.0%}, 95% {r['low']:.0%}-{r['high']:.0%})"


def _p(value) -> str:
    if _isnan(value):
        return "n/a"
    return f"{value:.2g}" if value >= 0.001 else "< 0.001"


def _tests(n: int) -> str:
    return f"{n} test" if n == 1 else f"{n} tests"


def _pct(value) -> str:
    return "n/a" if _isnan(value) else f"{value:.0%}"


def _int(value) -> str:
    return "never" if _isnan(value) else str(int(value))


def _isnan(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _seeds(seeds) -> str:
    """Seeds in order, each run of consecutive ones as first-last: "3000-3003, 5000"."""
    ordered = sorted(seeds)
    if not ordered:
        return "none"
    runs = [[s for _, s in run] for _, run in groupby(enumerate(ordered), lambda x: x[1] - x[0])]
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


def load(folder: str | os.PathLike) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(summary, per-seed results) of a written study, e.g. for notebooks."""
    folder = Path(folder)
    return (
        json.loads((folder / "summary.json").read_text()),
        json.loads((folder / "results.json").read_text()),
    )
