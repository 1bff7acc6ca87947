# %% [markdown]
# # Reading many seeds
#
# One run is an anecdote: `05_training` showed how much two seeds of one recipe already
# differ. The course's study (`vestige study`, run by `make study`) trains one preset on many
# seeds, runs the detector on each, follows one neuron per seed through training, and trains
# every seed again under changed conditions (the neuron held at its mean for four windows, a
# control neuron held the same way, a selectivity regulariser pushing every neuron's
# selectivity down or up). This notebook reads what it wrote, seed by
# seed, and asks three questions, with intervals: does the neuron's size relate to *when*
# the model learns to copy? What did its settling coincide with? What did training without
# it change?
#
# Every number below is read from the study's files when you run the cells; the study can be
# re-run (`make study`) and this notebook reads whatever it finds.

# %% tags=["parameters"]
student = ""  # your name, for the gradebook
runs_dir = "../runs"  # not used here: this notebook reads only the study's files
study_dir = "../course/study"  # summary.json and results.json, written by `vestige study`
n_boot = 2000  # bootstrap resamples of seeds
boot_seed = 0

# %%
import math
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
from IPython.display import Image, display
from scipy import stats
from vestige import CONDITION_NAMES, Checker, load_study, setup

setup()

# %% tags=["check"]
check = Checker("40_many_seeds", study_dir=study_dir)

# %% [markdown]
# ### Predict first
# {{pace predict}}
# The study ran the detector on seeds nobody looked at while the task was designed. In how
# many of them do you expect a vestigial neuron (every clause of `10_vestigial`)? Set
# `predicted_rate` to one of `"under a third"`, `"a third to two thirds"`, `"over two
# thirds"`. Any choice earns the point; the check records it and tells you what the study
# found.

# %%
### BEGIN SOLUTION
predicted_rate = "a third to two thirds"
### END SOLUTION

# %% tags=["check"]
check("predict", lambda: predicted_rate)

# %% [markdown]
# ## 1. The study's files
#
# `summary.json` holds the counts and the paired comparisons over seeds; `results.json` one
# record per seed. `vestige.report.load` reads both:

# %%
summary, results = load_study(study_dir)
print(f"preset {summary['preset']!r}: {summary['n_seeds']} seeds ({summary['seeds']})")
print(f"A vestigial neuron was caught in {summary['caught']} of {summary['n_seeds']} seeds.")
if "control" in summary:
    control = summary["control"]
    print(
        f"Negative control (preset {control['preset']!r}): caught in {control['caught']} of "
        f"{len(control['seeds'])} seeds."
    )
print("Each seed was trained again under:")
for name in summary["conditions"]:
    print(f"  {name}: {CONDITION_NAMES[name].label}")

# %% [markdown]
# One record per seed. Its fields:
#
# - `caught`: whether the detector caught a vestigial neuron; `neuron` its record (or null);
# - `target`: the neuron the study followed: the caught one, else the neuron the crutch leaned
#   on most (largest peak effect); `timeline` its ablation effect (loss increase on the focus
#   positions of its own crutch, nats) at every checkpoint;
# - `base`: what the unchanged run ended with, and `transition`, the step of its copy
#   transition (null when there was none);
# - `mechanism`: `transitions`, the checkpoint at which the copy loss and each stage curve
#   changed (null: never), the target's `settle_step`, and more;
# - `conditions`: for each changed training, the same outcomes as `base`.

# %%
example = results[0]
{key: type(value).__name__ for key, value in example.items()}

# %%
example["mechanism"]["transitions"]

# %% [markdown]
# Every seed's target neuron over training (the step axis is logarithmic, step 0 drawn at 1):

# %%
lines = pd.DataFrame(
    [
        {"seed": str(r["seed"]), "caught": r["caught"], **point}
        for r in results
        for point in r["timeline"]
    ]
)
lines["step1"] = lines["step"].clip(lower=1)
alt.Chart(lines).mark_line(point=True, opacity=0.7).encode(
    x=alt.X(
        "step1:Q",
        title="training step",
        scale=alt.Scale(type="log", domain=[1, int(lines["step"].max())], nice=False),
    ),
    y=alt.Y("effect:Q", title="ablation effect on its crutch's focus positions (nats)"),
    color=alt.Color("caught:N", title="caught"),
    detail="seed:N",
    tooltip=["seed", "step", alt.Tooltip("effect:Q", format=".3f")],
).properties(width=520, height=240, title="The target neuron of every seed")

# %% [markdown]
# ## 2. Peak and settling
#
# Two moments describe a neuron whose effect rose and then fell: its **peak** (its largest
# effect after step 0: at initialisation effects are noise) and the step at which it
# **settles**: the first checkpoint after the peak from which its effect stays below half
# the peak for good.
#
# ### Exercise 1
# {{pace ex1}}
# Write `peak_and_settle(timeline)`: `timeline` is a list of points like those in a record
# (`{"step": ..., "effect": ..., ...}`, in any order). Return `(peak, settle)`: the largest
# effect after step 0, and the settle step, or `None` if the effect never stays below half
# the peak. The check runs it on timelines of its own; here it is compared with the settle
# steps the study recorded.


# %%
def peak_and_settle(timeline: list[dict]) -> tuple[float, int | None]:
    ### BEGIN SOLUTION
    points = sorted((p["step"], p["effect"]) for p in timeline if p["step"] > 0)
    at = max(range(len(points)), key=lambda i: points[i][1])
    peak = points[at][1]
    for i in range(at, len(points)):
        if all(effect < peak / 2 for _, effect in points[i:]):
            return peak, points[i][0]
    return peak, None
    ### END SOLUTION


def missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


mine = [peak_and_settle(r["timeline"])[1] for r in results]
recorded = [r["mechanism"]["settle_step"] for r in results]
agree = sum((missing(a) and missing(b)) or a == b for a, b in zip(mine, recorded))
print(f"Your settle steps agree with the study's on {agree} of {len(results)} seeds.")

# %% tags=["check"]
check("ex1", peak_and_settle)

# %% [markdown]
# ## 3. One row per seed
#
# The study's numbers, one row per seed: the target's peak effect and when it settled (from
# its record), the copy transition of the unchanged run, and the checkpoint at which the
# stage curve P(C | lone B) (the model's probability of C after a B that follows no A) had
# moved half way to its final value.

# %%
LONE_B = "P(C | lone B)"
rows = []
for r in results:
    trained = [p for p in r["timeline"] if p["step"] > 0]
    best = max(trained, key=lambda p: p["effect"])
    rows.append(
        {
            "seed": r["seed"],
            "caught": r["caught"],
            "neuron": r["target"]["unit"],
            "peak effect": best["effect"],
            "peak step": best["step"],
            "settles at": r["mechanism"]["settle_step"],
            "copy transition": r["base"]["transition"],
            "P(C | lone B) drops at": r["mechanism"]["transitions"].get(LONE_B),
        }
    )
seeds = pd.DataFrame(rows).astype(
    {"settles at": float, "copy transition": float, "P(C | lone B) drops at": float}
)
seeds

# %%
alt.Chart(seeds.dropna(subset=["copy transition"])).mark_circle(size=70).encode(
    x=alt.X("peak effect:Q", title="target neuron's peak effect (nats)"),
    y=alt.Y("copy transition:Q", title="copy transition (step)", scale=alt.Scale(zero=False)),
    color=alt.Color("caught:N", title="caught"),
    tooltip=["seed", "neuron", "peak effect", "copy transition"],
).properties(width=420, height=260, title="Peak size against the time of the copy transition")

# %% [markdown]
# ## 4. Does the peak's size relate to when the model learns to copy?
#
# A **rank correlation** (Spearman's) asks whether seeds with larger peaks tend to have
# later (or earlier) transitions, in any monotone way, and one odd seed cannot dominate it.
# With as few seeds as a study can afford, it can be far from its true value by chance; a
# **bootstrap over seeds** says how far: draw as many seeds as there are, with replacement,
# recompute the correlation, many times; the middle 95% of those values is a 95% interval.
# The seed is what was replicated, so the seed is what is resampled.
#
# Each row of `resamples` below is one bootstrap draw: positions of seeds in `x` and `y`.

# %%
usable = seeds.dropna(subset=["peak effect", "copy transition"])
x = usable["peak effect"].to_numpy(float)
y = usable["copy transition"].to_numpy(float)
resamples = np.random.default_rng(boot_seed).integers(0, len(x), size=(n_boot, len(x)))
print(f"{len(x)} of {len(seeds)} seeds have a copy transition; {n_boot} resamples of them.")

# %% [markdown]
# ### Exercise 2
# {{pace ex2}}
# Write `rank_correlation_ci(x, y, resamples)`. Return `(rho, low, high)`: Spearman's rank
# correlation of `x` and `y` (tied values get their average rank: `scipy.stats.rankdata`),
# and the 2.5th and 97.5th percentiles of the same correlation computed on each resample
# (`x[row]`, `y[row]` for each `row` of `resamples`). A resample in which all the `x` (or
# all the `y`) are equal has no correlation: leave it out.


# %%
def rank_correlation_ci(
    x: np.ndarray, y: np.ndarray, resamples: np.ndarray
) -> tuple[float, float, float]:
    ### BEGIN SOLUTION
    def spearman(a, b):
        ra, rb = stats.rankdata(a), stats.rankdata(b)
        if ra.std() == 0 or rb.std() == 0:
            return np.nan
        return np.corrcoef(ra, rb)[0, 1]

    boot = np.array([spearman(x[row], y[row]) for row in resamples])
    low, high = np.nanpercentile(boot, [2.5, 97.5])
    return spearman(x, y), low, high
    ### END SOLUTION


if len(x) >= 3:
    rho, low, high = rank_correlation_ci(x, y, resamples)
    print(
        f"Spearman's rho = {rho:+.2f}, 95% bootstrap interval [{low:+.2f}, {high:+.2f}], "
        f"over {len(x)} seeds."
    )
    if low <= 0 <= high:
        print(
            "The interval includes 0: these seeds do not show a relation between the size of "
            "the neuron's peak and the time of the copy transition (which is not evidence that "
            "there is none)."
        )
    else:
        direction = "later" if rho > 0 else "earlier"
        print(
            f"The interval excludes 0: in these seeds, larger peaks go with {direction} copy "
            "transitions."
        )
else:
    print("Fewer than 3 seeds have a copy transition: no correlation to compute.")

# %% tags=["check"]
check("ex2", rank_correlation_ci)

# %% [markdown]
# How wide the interval is depends on the number of seeds: with a handful, almost any
# correlation is compatible with the data. A correlation across seeds also says nothing about
# cause: a seed with a larger peak may differ in many other ways.
#
# ## 5. What did the neuron's settling coincide with?
#
# A neuron retired by the copying mechanism would settle at the copy transition. One retired
# earlier, when the model learned to check for A before predicting C (the drop of P(C | lone
# B)), would settle with that drop instead. The study dates every transition at a
# checkpoint, and counts a coincidence when two are at most **one checkpoint** apart (the
# checkpoints are log-spaced: one checkpoint spans a few steps early on, many steps late).
#
# ### Exercise 3
# {{pace ex3}}
# Write `settled_with(result)`: for one seed's record, the names (keys of
# `result["mechanism"]["transitions"]`) of the transitions whose step is at most one
# checkpoint from the target's `settle_step`, where the checkpoints are the steps of the
# record's `timeline`, in order. A transition that never happened is `None`; a neuron that
# never settled coincides with nothing. Compute it: the check's records have no
# `coincides_with` field.


# %%
def settled_with(result: dict) -> list[str]:
    ### BEGIN SOLUTION
    steps = sorted(p["step"] for p in result["timeline"])
    settle = result["mechanism"]["settle_step"]
    if settle is None:
        return []
    at = steps.index(settle)
    return [
        name
        for name, step in result["mechanism"]["transitions"].items()
        if step is not None and abs(steps.index(step) - at) <= 1
    ]
    ### END SOLUTION


def kind(result: dict) -> str:
    names = settled_with(result)
    if missing(result["mechanism"]["settle_step"]):
        return "never settled"
    if LONE_B in names and "copy" not in names:
        return "the drop of P(C | lone B), not the copy transition"
    if "copy" in names and LONE_B not in names:
        return "the copy transition, not the drop of P(C | lone B)"
    if "copy" in names:
        return "both (within one checkpoint of each)"
    return "neither"


settled = pd.DataFrame(
    {
        "seed": [r["seed"] for r in results],
        "caught": [r["caught"] for r in results],
        "settled with": [kind(r) for r in results],
    }
)
lone_b_first = int(
    (settled["settled with"] == "the drop of P(C | lone B), not the copy transition").sum()
)
print(
    f"{lone_b_first} of {len(results)} seeds' target neurons settled with the drop of "
    f"P(C | lone B) rather than the copy transition."
)
pd.crosstab(settled["settled with"], settled["caught"].map({True: "caught", False: "not caught"}))

# %% tags=["check"]
check("ex3", settled_with)

# %% [markdown]
# The study's own count, over the caught neurons only (`summary.json`):

# %%
print(
    "Caught neurons settled together with:",
    summary["coincides_with"] or "nothing",
    "| with no transition:",
    summary["coincides_with_none"],
)
print("At the end they were:", summary["end_status"] or "-", "| backups:", summary["backup_at_end"])

# %% [markdown]
# ## 6. Training without the neuron
#
# Each condition retrains every seed from scratch with one change, so each seed gives a
# **pair**: the changed run and the unchanged run of the same seed, with the same data and
# the same initial weights. When seeds differ from each other more than a change moves any
# one of them, comparing the two groups' means drowns the change in that spread; the
# difference *within* each pair does not.
#
# ### Exercise 4
# {{pace ex4}}
# Write `paired_difference(results, condition, outcome)`: over the seeds whose record has
# both `r["conditions"][condition][outcome]` and `r["base"][outcome]` (not `None`; a seed
# may lack the condition), the mean of the differences (condition minus base) and its 95%
# t-interval, mean ± t(0.975, n - 1) · sd / √n. Return `(mean, low, high)`.


# %%
def paired_difference(
    results: list[dict], condition: str, outcome: str
) -> tuple[float, float, float]:
    ### BEGIN SOLUTION
    deltas = []
    for r in results:
        changed = r["conditions"].get(condition, {}).get(outcome)
        base = r["base"].get(outcome)
        if changed is not None and base is not None:
            deltas.append(changed - base)
    d = np.array(deltas, dtype=float)
    if len(d) < 2:
        return (d.mean() if len(d) else math.nan), math.nan, math.nan
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return d.mean(), d.mean() - half, d.mean() + half
    ### END SOLUTION


ran = summary["conditions"]  # empty when the study ran no condition
whole = "neuron-whole" if "neuron-whole" in ran else next(iter(ran), None)
outcomes = {  # outcome: (unit, digits, words for an interval above / below 0)
    "final_loss": ("nats", 3, "higher", "lower"),
    "focus_loss": ("nats", 3, "higher", "lower"),
    "copy_loss": ("nats", 3, "higher", "lower"),
    "transition": ("steps", 1, "later", "earlier"),
}
if whole is None:
    print("This study retrained no seed under a condition (its report says which were not run).")
else:
    print(f"{CONDITION_NAMES[whole].label}, minus the unchanged run of the same seed:")
    for outcome, (unit, digits, up, down) in outcomes.items():
        mean, low, high = paired_difference(results, whole, outcome)
        if not (math.isfinite(low) and math.isfinite(high)):
            print(f"  {outcome}: {mean:+.{digits}f} {unit} (too few seeds for an interval)")
            continue
        reading = up if low > 0 else down if high < 0 else "no clear difference"
        print(
            f"  {outcome}: {mean:+.{digits}f} {unit}, 95% interval [{low:+.{digits}f}, "
            f"{high:+.{digits}f}]: {reading}"
        )

# %% tags=["check"]
check("ex4", paired_difference)

# %% [markdown]
# Every condition's change in final loss, seed by seed, with the study's own verdict on the
# paired interval (`summary.json`):

# %%
deltas = pd.DataFrame(
    [
        {
            "seed": r["seed"],
            "condition": CONDITION_NAMES[name].label,
            "d final loss": c["final_loss"] - r["base"]["final_loss"],
        }
        for r in results
        for name, c in r["conditions"].items()
    ]
)


def signed(value) -> str:
    return "n/a" if value is None else f"{value:+.4f}"


for name, comparison in summary["conditions"].items():
    d = comparison["delta_final_loss"]
    print(
        f"{CONDITION_NAMES[name].label}: {signed(d['mean'])} nats over {d['n']} seeds, "
        f"[{signed(d['low'])}, {signed(d['high'])}]: {comparison['verdict']}"
    )
zero = alt.Chart(pd.DataFrame({"x": [0]})).mark_rule(color="gray").encode(x="x:Q")
points = (
    alt.Chart(deltas)
    .mark_circle(size=50)
    .encode(
        x=alt.X("d final loss:Q", title="final loss, condition minus unchanged (nats)"),
        y=alt.Y("condition:N", title=None, axis=alt.Axis(labelLimit=360)),
        tooltip=["seed", alt.Tooltip("d final loss:Q", format="+.4f")],
    )
)
if deltas.empty:
    print("No condition to show.")
else:
    display(
        (zero + points).properties(
            width=420,
            height=30 * deltas["condition"].nunique(),
            title="Training under each condition, per seed",
        )
    )

# %% [markdown]
# Read the intervals as they are: an interval that excludes 0 says the change was
# consistent across these seeds, in the direction its sign gives; one that includes 0 says
# these seeds cannot tell. Compare the target neuron's rows with the control neuron's (held
# the same way, but never needed): a cost that appears for both is a cost of holding *any*
# neuron still, not of losing this one. The study's `report.md` has the same comparisons
# for every outcome, as a table.

# %% [markdown]
# ## 7. A training map: which seeds took a detour
#
# Every seed so far was summed up by a few numbers. A *training map* (Hu, Chen, Saphra & Cho,
# TMLR 2023) looks at the whole road instead: per checkpoint, statistics of the weights
# (norms, spectral norms) and of the behaviour (the loss per class of position, the stage
# curves), z-scored within each run; a Gaussian hidden Markov model fitted to all seeds at
# once gives a small number of *states* (phases of training) and, for every seed, the state
# it was in at every checkpoint (its *path*). `make study` fits it (`vestige.maps`: 1 to 8
# states, the number chosen by BIC) and writes it into `summary.json`.

# %%
fitted = summary.get("map", {}).get("reference", {})
training_map = fitted.get("run", {}).get("map")
if training_map is None:
    print("This study has no training map:", fitted.get("skipped", "run `make study` again"))
    paths = []
else:
    paths = training_map["paths"]
    print(f"{training_map['n_states']} states over {len(paths)} seeds")
    for name in fitted.get("figures", [])[:1]:  # each seed's state over training
        if (Path(study_dir) / f"{name}.png").is_file():
            display(Image(str(Path(study_dir) / f"{name}.png")))
pd.DataFrame([{"seed": p["seed"], "states": " ".join(map(str, p["states"]))} for p in paths])

# %% [markdown]
# ### Exercise 5
# {{pace ex5}}
# A state that some seeds pass through and others never do is a *detour*. Write
# `detour_states(paths)`: `paths` is a list of `{"seed": ..., "states": [state at each
# checkpoint, ...]}`; return the sorted list of detour states. A seed that stays in a state
# for many checkpoints visits it once.


# %%
def detour_states(paths) -> list[int]:
    ### BEGIN SOLUTION
    from collections import Counter

    visits = Counter(state for path in paths for state in set(path["states"]))
    return sorted(state for state, n in visits.items() if n < len(paths))
    ### END SOLUTION


# %% tags=["check"]
check("ex5", detour_states)

# %% [markdown]
# Your detours on the study's map, against the map's own, and what the study concludes
# from them: whether visiting a state predicts a later copy transition, and whether the
# seeds with a caught neuron take another road (with 20 seeds, often too few to tell; the
# verdict says so when it is).

# %%
if training_map is not None:
    try:
        print("yours:", detour_states(paths), " the map's:", training_map["detour_states"])
    except NotImplementedError:
        print("Solve exercise 5 first: this cell uses your detour_states.")
    print(fitted["run"]["detours"]["verdict"])

# %% [markdown]
# ## 8. How much of one seed's verdict is float noise?
#
# The study also retrained some seeds with a change that should not matter: two torch threads
# instead of one (the same sums, added in another order), or initial weights moved by noise of
# size 1e-6. If a seed's catch were a property of the seed, it would survive both. The counts
# below say how often it did (`summary["numerics"]`; the rows marked pooled add seeds perturbed
# in later batches, each against its own unchanged run trained on the same machine). Where many
# verdicts change, only the rate over seeds is worth reporting, not which seeds were caught.

# %%
tables = {"this study's seeds": summary.get("numerics") or {}}
for name, table in (summary.get("numerics_pooled") or {}).items():
    tables[f"pooled, {name}"] = table
shown = 0
for label, table in tables.items():
    for kind, entry in table.items():
        if entry["seeds"]:
            kept = entry["verdict"]
            print(
                f"{kind:>10} ({label}): verdict kept in {kept['k']} of {kept['n']} seeds "
                f"(95% {kept['low']:.0%}-{kept['high']:.0%})"
            )
            shown += 1
if not shown:
    print("This study perturbed no seed.")
