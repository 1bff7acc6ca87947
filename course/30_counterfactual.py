# %% [markdown]
# # Counterfactual training: change the past, compare the futures
#
# A checkpoint tells you what a model *was*; it cannot tell you what would have happened
# without some part of it. For that you train again, with one thing changed, and compare.
# A **fork** makes this cheap and exact: it continues a run from one of its checkpoints, with
# the optimiser state and random generator it had there, so up to that step the fork *is*
# the parent, bit for bit, and every difference after it comes from the change you made.
#
# Here you fork the reference run where its target neuron mattered most (the detector's
# vestigial neuron, or the neuron the crutch leaned on most), hold that neuron at its mean
# until the copy transition, and compare with the unforked run and with a control fork that
# holds a never-needed neuron the same way.

# %% tags=["parameters"]
student = ""  # your name, for the gradebook
runs_dir = "../runs"  # precomputed runs and forks (trained if missing)
preset = "reference"  # the course's runs: the study's preset (eight crutches)
seed = 3006  # a study seed whose caught neuron peaks before its copy transition
fallback_seed = 3006  # forked instead when `seed`'s fork is refused (section 1 says when)
study_dir = "../course/study/suppression"  # the study's suppression runs (make suppression)

# %%
from pathlib import Path

import altair as alt
import pandas as pd
import vestige
from vestige import Checker, charts, load_study, run_forks, setup, standard_forks, transition_step
from vestige.detect import detect, target_neuron
from vestige.runs import checkpoint_path

setup()

# %% [markdown]
# ## 1. The forks
#
# `standard_forks` names the course's forks of a run (the same ones `make runs` precomputes,
# so here they open from disk in a second; otherwise each is trained first, which takes minutes).
# It refuses a run whose target peaks at or after its copy transition: holding the target "from
# its peak until the transition" would then hold it through no step of the crutch phase
# (in many seeds the target peaks just after the transition, caught or not). The notebook then
# prints why and forks `fallback_seed` instead.


# %%
def parent_run(seed):
    return vestige.ensure_run(
        vestige.preset(preset), seed, vestige.seed_dir(Path(runs_dir) / preset, seed)
    )


run = parent_run(seed)
try:
    plans = standard_forks(run)
except vestige.ForkRefused as refused:
    print(f"Not forked: {refused}.\nThis notebook goes on with seed {fallback_seed}.")
    seed, run = fallback_seed, parent_run(fallback_seed)
    plans = standard_forks(run)
for name, plan in plans.items():
    print(f"{name}: fork at step {plan.at}; {plan.description}")
found = detect(run)
target = target_neuron(found)  # the neuron `hold-target` holds
crutch_loss = f"loss_{target.positions}"  # the loss on its crutch's focus positions
print(f"target {target.unit}, on {target.positions} positions")

# %% tags=["check"]
check = Checker("30_counterfactual", runs_dir=runs_dir, preset=preset, seed=seed)

# %%
forks = run_forks(run, Path(runs_dir) / "forks")
forks

# %% [markdown]
# Up to the fork the histories are identical: the same checkpoints, byte for byte.

# %%
fork_at = plans["hold-target"].at
shared = [s for s in run.steps if s <= fork_at]
same = [
    checkpoint_path(run.path, s).read_bytes()
    == checkpoint_path(forks["hold-target"].path, s).read_bytes()
    for s in shared
]
print(f"{sum(same)} of {len(shared)} shared checkpoints are identical")

# %% [markdown]
# ### Predict first
# {{pace predict}}
# The `hold-target` fork holds the target neuron at its mean from its peak until the copy
# transition. Will that fork learn to copy *earlier* than the parent, *later*, or at *about
# the same* step (within 5% of the parent's)? A crutch that is removed may push the model to
# the general mechanism sooner, or slow it down by taking away a stepping stone.
# Set `predicted_transition` to one of `"earlier"`, `"about the same"`, `"later"`.
# Any choice earns the point; the check records it and tells you what your run shows, and
# the next cells show why.

# %%
### BEGIN SOLUTION
predicted_transition = "about the same"
### END SOLUTION

# %% tags=["check"]
check("predict", lambda: predicted_transition)

# %% [markdown]
# ## 2. Three futures
#
# The evaluation loss on the focus positions of the target's crutch (where the crutch applies)
# and on copy positions (where only copying helps), for the parent and both forks:

# %%
futures = pd.concat(
    [
        r.metrics.query("split == 'eval'").assign(run=name)
        for name, r in {"parent": run, **forks}.items()
    ]
)
long = futures.melt(
    ["run", "step"], [crutch_loss, "loss_copy"], var_name="positions", value_name="nats"
)
alt.Chart(long).mark_line(point=True).encode(
    x=charts.step_x(run.steps),
    y=alt.Y("nats:Q", title="evaluation loss (nats)"),
    color="run:N",
    strokeDash="positions:N",
).properties(width=520, height=260, title=f"Forked at step {fork_at}")

# %% [markdown]
# ### Exercise 1
# {{pace ex1}}
# Set `delay` to the copy transition of the `hold-target` fork minus the parent's
# (`transition_step` dates any run's). A positive delay means the model learned to copy later
# without the neuron.

# %%
### BEGIN SOLUTION
delay = transition_step(forks["hold-target"]) - transition_step(run)
### END SOLUTION
delay

# %% tags=["check"]
check("ex1", lambda: delay)

# %% [markdown]
# ### Exercise 2
# {{pace ex2}}
# Holding *any* neuron at its mean perturbs training a little. The control fork measures how
# much. Set `held_cost` to the final evaluation loss on the target's crutch (the column
# `crutch_loss` names, in the last evaluation row) of the `hold-target` fork minus that of the
# `hold-control` fork.


# %%
### BEGIN SOLUTION
def final_crutch_loss(r):
    evals = r.metrics.query("split == 'eval'").sort_values("step")
    return float(evals[crutch_loss].iloc[-1])


held_cost = final_crutch_loss(forks["hold-target"]) - final_crutch_loss(forks["hold-control"])
### END SOLUTION
held_cost

# %% tags=["check"]
check("ex2", lambda: held_cost)

# %% [markdown]
# ## 3. Needed at step t, or needed for training to end the same?
#
# Two different claims hide in "the model needed this neuron". **Needed at step t**: at that
# checkpoint, holding the neuron at its mean raises the loss (the ablation of `10_vestigial`,
# on a fixed model). **Needed for training to end the same**: training *without* it from
# some step on ends with a worse model (a fork or a run trained again, compared at the end).
# A neuron can be the first and not the second: the model, trained without it, finds another
# way. Here, the target's effect at the fork step, on the fixed parent, beside what the fork
# changed at the end:

# %%
line = found.timelines.query("unit == @target.unit").set_index("step")
at_fork = line.loc[fork_at]
print(
    f"{target.unit} at step {fork_at}, on the parent: effect {at_fork.effect:.3f} nats "
    f"[{at_fork.effect_low:.3f}, {at_fork.effect_high:.3f}] on its positions"
)
try:
    print(
        f"held from step {fork_at}: the fork ends {held_cost:+.4f} nats on {target.positions} "
        "positions, against the control fork"
    )
except NameError:
    print("Solve exercise 2 first: this cell prints your held_cost.")

# %% [markdown]
# One seed cannot say whether the second number is more than luck. The study trained every
# seed again with its target held from step 0 until the copy transition, each paired with
# the unchanged run of its seed; the 95% interval over seeds is `mean_ci`'s (you write it
# yourself in `40_many_seeds`):

# %%
from vestige.stats import mean_ci

study, per_seed = load_study(study_dir)
deltas = [
    r["conditions"]["neuron-1T"]["final_loss"] - r["base"]["final_loss"]
    for r in per_seed
    if "neuron-1T" in r["conditions"]
]
if "neuron-1T" not in study["conditions"]:
    print(f"The study of preset {study['preset']!r} did not run this condition (see its report).")
else:
    entry, ci = study["conditions"]["neuron-1T"], mean_ci(deltas)
    print(
        f"{ci['n']} seeds of preset {study['preset']!r}: mean change in final loss "
        f"{ci['mean']:+.4f} nats, 95% interval [{ci['low']:+.4f}, {ci['high']:+.4f}]; "
        f"the study's verdict (Holm-corrected): {entry['verdict']}"
    )

# %% [markdown]
# **What to take away.** A fork separates what a structure *did* from what merely happened
# at the same time: the parent and the fork share every step before the change. The control
# fork keeps you honest about the intervention itself, and only the interval over seeds says
# whether a difference is more than one run's luck. The study's report frames these results
# against Leavitt & Morcos (2021), Ranadive et al. (2023) and Chen et al. (2024).
