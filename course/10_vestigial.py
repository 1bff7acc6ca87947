# %% [markdown]
# # Catching a vestigial neuron
#
# A neuron can fire for one kind of input in the finished model, which makes it look
# important, and yet barely matter when you take it away. If the training history shows that
# it *did* matter once and no longer does, the neuron is **vestigial**: a leftover of an
# earlier stage of training. In this notebook you test that claim on one
# training run, the way the kit's detector does, and then see how often it holds across seeds.
#
# **The task.** Each sequence is random tokens with a segment written twice; the model is
# scored on the second copy, where *copying* the first copy (an induction mechanism) predicts
# every token. Inside the segment there are eight *crutches*: a pair A_k B_k (k = 0..7) is
# usually followed by C_k, a shortcut a model can learn long before it can copy. B_k also
# appears alone (a *decoy*), where C_k does not follow, so only the pair predicts C_k.
#
# Positions come in classes: `trigger_k` (B_k right after A_k: crutch k's *focus*
# positions), `decoy` (a lone B_k), `copy` (the rest of the second copy) and `other`. Each
# neuron is judged on the focus positions of the crutch it serves. Run the cells in order;
# each exercise is followed by a check.

# %% tags=["parameters"]
student = ""  # your name, for the gradebook
runs_dir = "../runs"  # precomputed runs (trained once; reopened afterwards)
preset = "reference"  # the course's runs: the study's preset (eight crutches)
seed = 3006  # a study seed in which the detector catches a vestigial neuron
study_dir = "../course/study"  # the study across seeds the course cites

# %%
from pathlib import Path

import altair as alt
import pandas as pd
import torch
import vestige
from vestige import (
    Checker,
    Criteria,
    Positions,
    analyze,
    cache_activations,
    charts,
    explorer_tables,
    load_study,
    mlp_post,
    per_position_loss,
    set_neurons,
    setup,
    target_neuron,
    target_subject,
    transition_step,
)
from vestige.detect import detect
from vestige.mechanism import mechanism

setup()

# %% tags=["check"]
check = Checker("10_vestigial", runs_dir=runs_dir, preset=preset, seed=seed)

# %% [markdown]
# ## 1. The run and its stages
#
# `ensure_run` reopens the run from disk (on Binder it was trained when the image was built)
# and trains it otherwise, with a progress bar.

# %%
run = vestige.ensure_run(
    vestige.preset(preset), seed, vestige.seed_dir(Path(runs_dir) / preset, seed)
)
metrics = run.metrics
train = metrics[metrics.split == "train"]
classes = list(run.task.class_names)
run

# %%
# every crutch's focus positions together (`loss_focus`), and each other class
focus_loss = run.task.focus_metric
per_class = [
    c
    for c in train.columns
    if c == focus_loss or (c.startswith("loss_") and c[5:] not in run.task.focus_classes)
]
curves = train.melt("step", per_class, var_name="positions", value_name="nats")
alt.Chart(curves).mark_line().encode(
    x=alt.X("step:Q"), y=alt.Y("nats:Q", title="loss (nats)"), color="positions:N"
).properties(width=520, height=220, title="Loss on each kind of position")

# %% [markdown]
# Compare when each curve falls. The loss on the crutches' focus positions
# (`loss_focus`) can fall early, before copying helps: that is the crutch. The loss on
# **copy** positions drops later and sharply, when the model learns to copy. The kit dates
# that drop with one definition, `transition_step`:

# %%
copy_transition = transition_step(run)
copy_transition

# %% [markdown]
# The loss alone hides a stage in between. The *stage curves* follow one crutch (the one
# the detector's target serves, section 4) and read the model's predicted probability of its
# C in three places: after A B in the first copy (only the crutch can predict C there;
# nothing is scored there, so nothing keeps it up after the crutch is dropped), after A B in
# the second copy (crutch or copying), and after a **lone** B, where C never follows: a model
# that predicts C there has learned "B, then C", not "A B, then C".

# %%
found = detect(run)  # (what it found waits for section 4)
target = target_neuron(found)
tools = mechanism(run, target_subject(found), progress=True)
stages = tools["stages"]
alt.Chart(stages).mark_line(point=True).encode(
    x=charts.step_x(run.steps),
    y=alt.Y("probability:Q", title="predicted P(C)"),
    color=alt.Color("stage:N", title=None),
).properties(width=520, height=220, title="What the model predicts after B")

# %% [markdown]
# ### Exercise 1
# {{pace ex1}}
# Write `change_step(steps, probs)`: for a curve that rises and then falls, return the first
# step *after its peak* at which it is below the midpoint of the peak and its final value.
# Leave step 0 out (an untrained model's value is noise), and do not assume the points come
# sorted. The check runs your function on curves of its own; here is the one above:


# %%
def change_step(steps, probs) -> float:
    ### BEGIN SOLUTION
    points = sorted((int(s), float(p)) for s, p in zip(steps, probs) if s > 0)
    peak_at = max(range(len(points)), key=lambda i: points[i][1])
    middle = (points[peak_at][1] + points[-1][1]) / 2
    return next((s for s, p in points[peak_at:] if p < middle), float("nan"))
    ### END SOLUTION


lone_b = stages[stages.stage == "P(C | lone B)"]
checks_for_a = change_step(lone_b.step.tolist(), lone_b.probability.tolist())
print(
    f"stops predicting C after a lone B at step {checks_for_a:g}; learns to copy at step "
    f"{copy_transition:g}: checking for A came "
    + ("first" if checks_for_a < copy_transition else "no earlier than copying")
)

# %% tags=["check"]
check("ex1", change_step)

# %% [markdown]
# When your step comes before `copy_transition`, the model learned to check for A before it
# learned to copy: the crutch became a sharper rule on its own, in the crutch phase.
#
# ## 2. Selectivity, against the right baseline
#
# A neuron's *class selectivity index* (Leavitt & Morcos, 2021) compares its mean
# activation on its favourite class with its mean over the others:
# SI = (mu_max - mu_rest) / (mu_max + mu_rest), between 0 and 1 for ReLU neurons.
#
# Here the classes are mostly *token identities* (a crutch's focus position holds a B_k, and
# so does a decoy), so an **untrained** neuron that happens to respond to a B_k already looks
# selective. The analysis measures that baseline: the selectivity of 32 untrained models'
# neurons with the same labels. The usual baseline is the same neurons with the class labels shuffled.

# %% [markdown]
# ### Predict first
# {{pace predict}}
# Which bar is harder for a trained neuron to pass: the 99th percentile of selectivity
# with shuffled labels, or that of untrained neurons with the true labels?
# Set `predicted_bar` to one of `"shuffled labels"`, `"untrained neurons"`, `"about the same"`.
# Any choice earns the point; the check records it and tells you what your run shows, and
# the next cells show why.

# %%
### BEGIN SOLUTION
predicted_bar = "untrained neurons"
### END SOLUTION

# %% tags=["check"]
check("predict", lambda: predicted_bar)

# %% [markdown]
# The two bars at the last checkpoint, per layer (and the same-token bar of section 2's
# second half):

# %%
tables = analyze(run, progress=True)
final = run.steps[-1]
baseline = (
    tables["baseline"]
    .query("step == @final")[["layer", "p99", "untrained_p99"]]
    .merge(tables["neurons"].groupby("layer", as_index=False)["untrained_matched_p99"].first())
)
baseline.rename(
    columns={
        "p99": "shuffled labels, p99",
        "untrained_p99": "untrained, p99",
        "untrained_matched_p99": "untrained same-token, p99",
    }
)

# %% [markdown]
# Compare the columns with your prediction: wherever the untrained bar is the higher one,
# shuffled labels would let a neuron that merely tracks its token pass as selective.
#
# A sharper test compares a neuron's activation on a crutch's focus positions with its
# activation on **other positions with the same current token** (a lone B_k): token identity
# cannot make a neuron selective there. A neuron that only tracks "the current token is B"
# scores about 0.
#
# ### Exercise 2
# {{pace ex2}}
# Write `token_selectivity(acts, focus, same)`: `acts` is `[n_positions, n_neurons]`, `focus`
# and `same` are boolean masks over positions. Return, per neuron,
# (mean on focus - mean on same) / (mean on focus + mean on same + 1e-7). Write it yourself
# (the check refuses the kit's own function).


# %%
def token_selectivity(acts: torch.Tensor, focus: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION
    mu_focus = acts[focus].mean(0)
    mu_same = acts[same].mean(0)
    return (mu_focus - mu_same) / (mu_focus + mu_same + 1e-7)
    ### END SOLUTION


positions = Positions.of(run)
model = run.model_at(final)
_, acts = cache_activations(model, run.eval_batch.tokens, [mlp_post(0)])
layer0 = acts[mlp_post(0)].reshape(-1, run.config.model.d_mlp)
crutch = target.positions  # the detector's target's crutch, e.g. "trigger_5" (section 4)
token_selectivity(
    layer0, positions.focus_all[crutch].reshape(-1), positions.same_token[crutch].reshape(-1)
)

# %% tags=["check"]
check("ex2", token_selectivity)

# %% [markdown]
# ## 3. Ablation: does the model need the neuron?
#
# A *hook* is a function the model calls on an intermediate activation as it runs (TransformerLens
# names each place: `mlp_post(0)` is layer 0's MLP neurons after the nonlinearity); a hook that
# returns a changed tensor changes the rest of the forward pass. Here is a worked ablation:
# neuron 0 of layer 0 set to **zero** on every position, and the loss (in *nats*: natural-log
# cross-entropy, so 0.69 nats is a coin flip) before and after, over every scored position:

# %%
batch = run.eval_batch
with torch.no_grad():  # no gradients needed to measure a loss
    clean, _ = per_position_loss(model(batch.tokens), batch.tokens)
    zeroed, _ = per_position_loss(
        model.run_with_hooks(batch.tokens, fwd_hooks=[(mlp_post(0), set_neurons([0], 0.0))]),
        batch.tokens,
    )
print(
    f"mean loss {clean[batch.loss_mask].mean():.4f} -> {zeroed[batch.loss_mask].mean():.4f} nats "
    "with L0N0 set to zero"
)

# %% [markdown]
# *Mean ablation* holds a neuron at its mean activation over the evaluation batch instead of
# zero (zero is a value the neuron may never take, so it measures a shock more than a loss of
# information), and measures how much the loss goes up.
#
# ### Exercise 3
# {{pace ex3}}
# Write `ablation_effect(model, layer, neuron, where)`: the increase in mean loss over the
# positions where the boolean mask `where` is True when `neuron` of `layer` is held at its
# mean over every position of the batch. Tools: `cache_activations(model, tokens,
# [mlp_post(layer)])` returns `(logits, {name: activations})`; `set_neurons([neuron], value)`
# makes a hook; `model.run_with_hooks(tokens, fwd_hooks=[(mlp_post(layer), hook)])` returns
# logits; `per_position_loss(logits, tokens)` returns `(loss, correct)`, each `[batch, seq]`.

# %%
focus = positions.classes[crutch]  # the scored focus positions of the target's crutch


@torch.no_grad()
def ablation_effect(model, layer: int, neuron: int, where: torch.Tensor) -> float:
    ### BEGIN SOLUTION
    logits, cache = cache_activations(model, batch.tokens, [mlp_post(layer)])
    mean = cache[mlp_post(layer)][..., neuron].mean()
    clean, _ = per_position_loss(logits, batch.tokens)
    hook = set_neurons([neuron], mean)
    ablated, _ = per_position_loss(
        model.run_with_hooks(batch.tokens, fwd_hooks=[(mlp_post(layer), hook)]), batch.tokens
    )
    return (ablated - clean)[where].mean().item()
    ### END SOLUTION


# %% tags=["check"]
check("ex3", ablation_effect)

# %% [markdown]
# The analysis did this for every neuron at every checkpoint, with a 95% bootstrap interval
# over the evaluation sequences. Each line is one neuron's effect on its own crutch's focus
# positions:

# %%
explorer = explorer_tables(run)
charts.effects_over_training(explorer, seed=seed)

# %% [markdown]
# ## 4. The definition, clause by clause
#
# The kit has one definition of "vestigial", `vestige.detect.Criteria`. Every chart, report
# and notebook reads it from there:

# %%
for name, text in Criteria().clauses().items():
    print(f"{name:16s} {text}")

# %% [markdown]
# ### Exercise 4
# {{pace ex4}}
# Write `is_vestigial(line, init_floor)`. `line` is one neuron's timeline, a table with
# columns `step`, `effect`, `effect_low`, `effect_high` (the 95% interval), `selectivity`,
# `untrained_p99`, `matched_selectivity`, `untrained_matched_p99`, `preferred_class` and
# `positions` (the neuron's own focus class, such as `"trigger_5"`; `"trigger"` in a
# one-crutch preset), one row per checkpoint in any order; `init_floor` is the largest
# effect of any neuron at step 0. Return True when every clause above holds (with the
# default thresholds). Step 0 is left out of the peak (an untrained model's effects are
# noise); "needed" asks the lower bound of the interval *at the peak step* to reach the
# threshold; "sustained" asks that many consecutive trained checkpoints whose lower bound
# reaches it; "faded" reads the *upper* bound at the last checkpoint. The check builds
# timelines where each clause fails on its own.


# %%
def is_vestigial(line: pd.DataFrame, init_floor: float) -> bool:
    ### BEGIN SOLUTION
    c = Criteria()
    line = line.sort_values("step").reset_index(drop=True)
    trained = line[line.step > 0]
    peak = trained.loc[trained.effect.idxmax()]
    needed = (trained.effect_low >= c.min_peak).astype(int).tolist()
    longest = run_length = 0
    for flag in needed:
        run_length = run_length + 1 if flag else 0
        longest = max(longest, run_length)
    end = line.iloc[-1]
    return bool(
        peak.effect_low >= c.min_peak
        and peak.effect >= c.init_floor_ratio * init_floor
        and longest >= c.sustained
        and end.effect_high < c.max_final_fraction * peak.effect
        and end.selectivity > end.untrained_p99
        and end.preferred_class == end.positions
        and end.matched_selectivity > end.untrained_matched_p99
    )
    ### END SOLUTION


# %% tags=["check"]
check("ex4", is_vestigial)

# %% [markdown]
# Now the kit's detector on this run, every neuron judged by the same clauses (the table
# lists the best candidates first, with the clauses each one failed):

# %%
print(found.summary())
found.neurons.head(6)[
    [
        "unit",
        "peak_effect",
        "peak_low",
        "peak_step",
        "settle_step",
        "final_effect",
        "final_high",
        "final_selectivity",
        "selectivity_baseline",
        "final_matched_selectivity",
        "matched_baseline",
        "failed",
    ]
]

# %% [markdown]
# ### Exercise 5
# {{pace ex5}}
# Now do the catch yourself. Run **your** `is_vestigial` on every neuron of this run: the
# timelines are in `found.timelines` (one row per neuron and checkpoint, with the columns
# your function reads), and each neuron is judged against the init floor of its own
# positions (`found.floor_for(positions)`, from `found.init_floors`). Your set of caught neurons should be the detector's. The
# check runs your function on every neuron of the run (of another seed, when graded).

# %% tags=["raises-exception"]
mine = {}  # (until exercise 4 is solved, this cell stops at its stub)
for unit, line in found.timelines.groupby("unit"):
    mine[unit] = is_vestigial(line, found.floor_for(line.positions.iloc[-1]))
print("you catch:", sorted(u for u, v in mine.items() if v) or "nothing")
print("the detector catches:", sorted(found.neurons.query("vestigial").unit) or "nothing")

# %% tags=["check"]
check("ex5", is_vestigial)

# %% [markdown]
# **If nothing is caught in your seed**, that is a result, not a failure: the table above
# says which clause stopped the best candidate. The rest of the notebook follows the
# detector's *target*, the caught neuron or else the best candidate (the neuron the crutch
# leaned on most), so every cell still has something to measure; read its verdicts as those
# of a neuron that did not pass.

# %%
if found.vestigial is None:
    print(
        f"No catch in seed {seed}; following the best candidate {target.unit}, which fails:",
        ", ".join(target.failed),
    )
else:
    print(f"Seed {seed}: the detector catches {target.unit} ({target.positions} positions).")

# %% [markdown]
# ### Exercise 6
# {{pace ex6}}
# Measure the target yourself: with **your** `ablation_effect`, its effect on the positions
# of its own class at its peak step and at the last checkpoint. Set `my_effects` to
# `{"peak": ..., "end": ...}`; the table beside it is the kit's.

# %%
where = positions.classes[target.positions]
peak_step, end_step = int(target.peak_step), run.steps[-1]
### BEGIN SOLUTION
my_effects = {
    "peak": ablation_effect(run.model_at(peak_step), int(target.layer), int(target.neuron), where),
    "end": ablation_effect(run.model_at(end_step), int(target.layer), int(target.neuron), where),
}
### END SOLUTION
pd.DataFrame(
    {
        "step": [peak_step, end_step],
        "yours": [my_effects["peak"], my_effects["end"]],
        "kit": [target.peak_effect, target.final_effect],
        "kit 95% interval": [
            f"[{target.peak_low:.3f}, {target.peak_high:.3f}]",
            f"[{target.final_low:.3f}, {target.final_high:.3f}]",
        ],
    },
    index=["peak", "end"],
).round(4)

# %% tags=["check"]
check("ex6", lambda: my_effects)

# %% [markdown]
# That pair of numbers is the whole phenomenon: the model needed this neuron at one point of
# its training and does not need it at the end, though it still fires selectively.
#
# ## 5. Not needed, or not used?
#
# The loss saturates: once copying predicts C almost surely, removing any one contributor
# barely moves the loss, even if that contributor still pushes C. The drop in the target's
# *logit margin* (its logit minus the mean logit) does not saturate.
#
# ### Exercise 7
# {{pace ex7}}
# Set `margin_fraction` to the target's `margin_effect` at the final checkpoint divided by
# its largest `margin_effect` over the trained checkpoints (from `tables["neurons"]`).

# %%
caught = target  # the detector's vestigial neuron (else the best candidate)
### BEGIN SOLUTION
line = tables["neurons"].query("unit == @caught.unit").sort_values("step")
margin_fraction = float(line.margin_effect.iloc[-1] / line[line.step > 0].margin_effect.max())
### END SOLUTION
margin_fraction

# %% tags=["check"]
check("ex7", lambda: margin_fraction)

# %% [markdown]
# Compare it with the same ratio for the loss (`final_effect / peak_effect` in the table
# above). A neuron whose margin effect stays large is **still used, but outweighed**: the
# loss no longer depends on it because something else predicts C too. One whose margin
# effect falls as well is **unused**.
#
# ## 6. What changed as it settled
#
# The mechanism tables ablate every attention head at every checkpoint. The heads whose cost
# on the focus positions of the target's crutch grew while the neuron faded, and where they
# look from there (the previous token, A, or the induction target, the token after the
# earlier copy of A B):

# %%
heads = tools["heads"]
settle = int(caught.settle_step) if pd.notna(caught.settle_step) else run.steps[-1]
at = heads[heads.step.isin([int(caught.peak_step), settle, final])]
at.pivot(index="unit", columns="step", values="effect_focus").round(2)

# %%
at.pivot(index="unit", columns="step", values="attn_previous").round(2)

# %% [markdown]
# And the **backup test**: the neuron's effect when every later attention head is held at
# its mean. A neuron that matters again once its successor is removed is a *backup*, not
# dead weight. (A neuron in the last layer has no later attention: that column is then empty.)

# %%
columns = ["step", "effect_alone", "effect_later_attn_ablated"]
tools["neuron"].reindex(columns=columns).round(3)

# %% [markdown]
# ## 7. One seed is an anecdote
#
# The course's study ran the same detector, and these mechanism tests, on seeds it never
# looked at while the task was designed (`course/study/report.md`). It studies this
# notebook's preset, `reference`; the detector and its clauses are the same. What it found:

# %%
study, per_seed = load_study(study_dir)
print(
    f"Preset {study['preset']!r}: a vestigial neuron was caught in {study['caught']} of "
    f"{study['n_seeds']} seeds "
    f"(negative control, the task without its crutch: {study['control']['caught']} of "
    f"{len(study['control']['seeds'])})."
)
print(
    "Clauses that stopped the other seeds' best candidates:",
    study["failed_clauses_when_not_caught"],
)
print(
    "The caught neurons settled together with:",
    study["coincides_with"],
    "| with no stage:",
    study["coincides_with_none"],
)
print("At the end they were:", study["end_status"], "| backups:", study["backup_at_end"])

# %% [markdown]
# Read those counts as they are. A best candidate stopped by `needed` was never needed with
# confidence (no neuron's ablation cost 0.15 nats at its peak: the crutch, if there was one,
# was spread over several neurons or carried elsewhere); by `selective`, it ended no more
# selective than an untrained neuron; by `faded`, its final effect's upper bound stayed above
# a tenth of its peak. The study's pre-registered target was a catch in 8 seeds of 10; the
# report gives the rate it measured with its interval, and its appendix writes up the search
# for a task and model that would reach the target, variant by variant. A clean single
# vestigial neuron is a property of some seeds, not of the task: that is why the study counts
# seeds. The next notebooks train runs yourself, fork them, and read many seeds at once.
