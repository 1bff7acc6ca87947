# %% [markdown]
# # Catching a vestigial neuron
#
# A neuron can fire for exactly one kind of input in the finished model, which makes it look
# important, and yet barely matter when you take it away. In this notebook you will find such
# a neuron, and use the training history to see *why* it is there: it did a job early in
# training, and a better mechanism took the job over. It is **vestigial**.
#
# **The task.** Each sequence is random tokens with a segment repeated later; the model is
# scored on the repeat, so the best strategy is to *copy* it (an induction mechanism). Inside
# the segment a trigger pair A B is usually followed by C: a shortcut (a *crutch*) that a model
# can learn long before it learns to copy. A and B also appear alone, as decoys, so only the
# pair predicts C. A second rule, D E followed by F, lives outside the segment, where copying
# cannot help: whatever serves it stays needed.
#
# Positions come in five classes: `trigger` (B right after A), `decoy` (A or B alone, D or E
# alone), `copy` (the rest of the repeat), `live` (E right after D) and `other`.
#
# Run the cells in order. Each exercise is followed by a check that tells you at once whether
# you got it, with a hint if not.

# %% tags=["parameters"]
student = ""             # your name, for the gradebook
runs_dir = "../runs"     # runs are saved here (trained once; reopened afterwards)
preset = "reference"
seed = 0
study_dir = "../course/study"   # the 10-seed study the course cites
try_suppression = True   # train the seed once more without the neuron (about a minute)

# %%
import json
from pathlib import Path

import altair as alt
import pandas as pd
import torch

import vestige
from vestige import charts
from vestige.analysis import analyze
from vestige.config import Suppress
from vestige.course import Checker
from vestige.detect import detect
from vestige.hooks import cache_activations, mlp_post, set_neurons
from vestige.metrics import class_means, per_position_loss, selectivity_index
from vestige.notebook import setup

setup()
check = Checker("10_vestigial")

# %% [markdown]
# ## 1. The run and its two learning stages
#
# `ensure_run` reopens the run if it is on disk (on Binder it was trained when the image was
# built) and trains it otherwise, with a progress bar.

# %%
run = vestige.ensure_run(vestige.preset(preset), seed, Path(runs_dir) / preset / f"seed-{seed}")
metrics = run.metrics
train = metrics[metrics.split == "train"]
classes = list(run.task.class_names)
print(run, "\nposition classes:", classes)

# %%
per_class = [c for c in train.columns if c.startswith("loss_")]
curves = train.melt("step", per_class, var_name="positions", value_name="nats")
alt.Chart(curves).mark_line().encode(
    x=alt.X("step:Q"), y=alt.Y("nats:Q", title="loss (nats)"), color="positions:N"
).properties(width=520, height=240, title="Loss on each kind of position")

# %% [markdown]
# The loss on **trigger** positions (predicting C after A B) falls within the first hundred
# steps: the shortcut. The loss on **copy** positions stays high for a while and then drops
# sharply: the model has learned to copy.
#
# ### Exercise 1
# Set `transition` to the first logged training step at which `loss_copy` is below 1.0 nats.

# %%
### BEGIN SOLUTION
transition = int(train.loc[train.loss_copy < 1.0, "step"].iloc[0])
### END SOLUTION
transition

# %%
check(
    "ex1",
    lambda: transition == int(train.loc[train.loss_copy < 1.0, "step"].iloc[0]),
    points=1,
    hint="Filter `train` with `train.loss_copy < 1.0` and take the first `step`.",
    success="Before this step the model cannot copy; after it, it can.",
)

# %% [markdown]
# ## 2. Selectivity
#
# A neuron's *class selectivity index* (Leavitt & Morcos, 2021) compares its mean activation
# on its favourite class of positions, mu_max, with its mean over the other classes, mu_rest:
#
# SI = (mu_max - mu_rest) / (mu_max + mu_rest)
#
# With ReLU activations SI is between 0 (fires the same everywhere) and 1 (fires for one class
# only).
#
# ### Exercise 2
# Write `selectivity(means)`: `means` is a tensor `[n_neurons, n_classes]` of mean activations
# per class; return a tensor `[n_neurons]` of SI values. Add `1e-7` to the denominator so that
# a silent neuron gets 0, not a division by zero.

# %%
def selectivity(means: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION
    top = means.max(dim=-1).values
    rest = (means.sum(dim=-1) - top) / (means.shape[-1] - 1)
    return (top - rest) / (top + rest + 1e-7)
    ### END SOLUTION


# %%
def _check_selectivity():
    means = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [3.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    assert torch.allclose(selectivity(means), torch.tensor([1.0, 0.0, 0.5, 0.0]), atol=1e-5), \
        f"for {means.tolist()} expected [1, 0, 0.5, 0], got {selectivity(means).tolist()}"
    random = torch.rand(16, 5)
    assert torch.allclose(selectivity(random), selectivity_index(random), atol=1e-5)


check("ex2", _check_selectivity, points=2,
      hint="mu_rest is the mean of the other classes: (sum of all classes - mu_max) / (n_classes - 1).")

# %% [markdown]
# Now the selectivity of every MLP neuron at the final checkpoint. `cache_activations` runs
# the model on the evaluation batch and keeps the activations at the hooks we ask for;
# `mlp_post(layer)` names the MLP activations of a layer.

# %%
final = run.steps[-1]
model = run.model_at(final)
batch = run.eval_batch
layers = range(run.config.model.n_layers)
_, acts = cache_activations(model, batch.tokens, [mlp_post(layer) for layer in layers])
si = pd.DataFrame([
    {"unit": f"L{layer}N{n}", "layer": layer, "selectivity": float(value)}
    for layer in layers
    # the kit's selectivity_index computes what your `selectivity` does (the check compared them)
    for n, value in enumerate(selectivity_index(class_means(acts[mlp_post(layer)], batch.labels, len(classes))))
])
alt.Chart(si).mark_bar().encode(
    x=alt.X("unit:N", sort=None), y="selectivity:Q", color="layer:N"
).properties(width=560, height=200, title=f"Selectivity at step {final}")

# %% [markdown]
# With five classes and thousands of positions even a random neuron has some selectivity.
# The analysis also computes a **baseline**: the selectivity neurons get when the position
# labels are shuffled. Only neurons above its 99th percentile are called selective.

# %% [markdown]
# ## 3. Ablation: does the model need the neuron?
#
# *Mean ablation* replaces a neuron's activation everywhere by its mean over the evaluation
# batch, removing the information it carries, and measures how much the loss goes up.
#
# ### Exercise 3
# Write `ablation_effect(model, layer, neuron, where)`: the increase in mean loss, over the
# positions where the boolean mask `where` is True, when `neuron` of `layer` is mean-ablated.
#
# Tools: `acts[mlp_post(layer)]` holds the activations `[batch, seq, d_mlp]` you need for the
# mean (recompute them for `model`); `set_neurons([neuron], value)` makes a hook;
# `model.run_with_hooks(batch.tokens, fwd_hooks=[(mlp_post(layer), hook)])` returns logits;
# `per_position_loss(logits, batch.tokens)` returns `(loss, correct)`, each `[batch, seq]`.

# %%
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


# %%
tables = analyze(run)  # every checkpoint, every neuron; computed once, then cached on disk
trigger = batch.loss_mask & (batch.labels == classes.index("trigger"))


def _check_ablation():
    expected = tables["ablation"].query("mode == 'mean' and positions == 'trigger'")
    for step, layer, neuron in [(run.steps[len(run.steps) // 2], 0, 0), (final, 0, 1)]:
        want = expected.query("step == @step and layer == @layer and neuron == @neuron").delta_loss.item()
        got = ablation_effect(run.model_at(step), layer, neuron, trigger)
        assert abs(got - want) < 1e-3, f"step {step}, L{layer}N{neuron}: expected {want:.4f}, got {got:.4f}"


check("ex3", _check_ablation, points=3,
      hint="Take the mean of the neuron's activations over batch and positions, hook it in, "
           "and compare the per-position losses with and without the hook on `where` only.")

# %% [markdown]
# ## 4. Selective, yet not needed
#
# `tables` holds, for every checkpoint, each neuron's selectivity and its ablation effect on
# the positions of the class it prefers. At the final checkpoint, look at the neurons that are
# clearly selective but whose ablation costs almost nothing (the shaded region):

# %%
explorer_tables = run.explorer_tables()
charts.selectivity_vs_effect(explorer_tables, seed=seed, step=final)

# %% [markdown]
# Selectivity alone would call every neuron on the right important. The history tells them
# apart. Here is each neuron's effect on trigger positions across training (log-spaced
# checkpoints):

# %%
effects = tables["ablation"].query("mode == 'mean' and positions == 'trigger'").copy()
effects["unit"] = "L" + effects.layer.astype(str) + "N" + effects.neuron.astype(str)
effects["step1"] = effects.step.clip(lower=1)
alt.Chart(effects).mark_line().encode(
    x=alt.X("step1:Q", scale=alt.Scale(type="log"), title="step (log)"),
    y=alt.Y("delta_loss:Q", title="effect on trigger positions (nats)"),
    color=alt.Color("unit:N", legend=alt.Legend(columns=2)),
).properties(width=520, height=260)

# %% [markdown]
# ### Exercise 4
# Set `vestigial_unit` (a string like `"L0N3"`) to the neuron that
# 1. is selective at the end: its selectivity at the final checkpoint is above the
#    shuffled-label p99 of its layer (`tables["baseline"]`, column `p99`);
# 2. mattered once: its effect on trigger positions reached at least 0.15 nats at some
#    checkpoint after step 0 (at step 0 the model is untrained and effects are noise);
# 3. does not matter now: its final effect is below a tenth of that peak.
#
# If several qualify, take the one with the largest peak. `tables["neurons"]` has each
# neuron's `selectivity` per step; `effects` (above) has its effect on trigger positions.

# %%
### BEGIN SOLUTION
at_end = tables["neurons"].query("step == @final").merge(
    tables["baseline"].query("step == @final")[["layer", "p99"]], on="layer")
selective = at_end.loc[at_end.selectivity > at_end.p99, "unit"]
peak = effects[effects.step > 0].groupby("unit").delta_loss.max()
last = effects[effects.step == final].set_index("unit").delta_loss.reindex(peak.index)
qualifies = peak[(peak >= 0.15) & (last < 0.1 * peak) & peak.index.isin(selective)]
vestigial_unit = qualifies.idxmax()
### END SOLUTION
vestigial_unit

# %%
found = detect(run)
print(found.summary())

# %%
check(
    "ex4",
    lambda: found.vestigial is not None and vestigial_unit == found.vestigial.unit,
    points=2,
    hint="Per unit: the peak is the max of delta_loss over steps > 0, the final value is at "
         "step == final; keep peak >= 0.15, final < 0.1 * peak, and SI > p99; then the largest peak.",
    success="Selective at the end, needed once, not needed now: vestigial.",
)

# %% [markdown]
# The detector also names a **contrast**: a selective neuron that the final model still
# needs. Selectivity does not tell the two apart; ablation across training does.

# %%
found.neurons.head(8)[["unit", "peak_effect", "peak_step", "final_effect", "final_selectivity",
                       "baseline", "vestigial", "reason"]]

# %% [markdown]
# ## 5. Would training without it hurt?
#
# If the neuron is only a leftover, a model trained with it held at its mean from the start
# should end no worse. That is a prediction to test, not a given. One seed proves little, so the course ran this on ten seeds
# (`vestige study`, report in `course/study/report.md`). First, your own seed (the detector
# also says when the neuron's effect *settled*: compare it with the transition step):

# %%
if try_suppression and found.vestigial is not None:
    v = found.vestigial
    config = run.config.replace(interventions=(Suppress(int(v.layer), (int(v.neuron),)),))
    suppressed = vestige.ensure_run(config, seed, Path(runs_dir) / f"{preset}-without-{v.unit}" / f"seed-{seed}")
    both = pd.concat([run.metrics.assign(run="with the neuron"), suppressed.metrics.assign(run="neuron held at its mean")])
    display(alt.Chart(both[both.split == "eval"]).mark_line(point=True).encode(
        x="step:Q", y=alt.Y("loss:Q", title="evaluation loss (nats)"), color="run:N"
    ).properties(width=520, height=220))

# %% [markdown]
# And the ten seeds. `d final loss` is suppressed minus unsuppressed, with a 95% interval:

# %%
study = json.loads((Path(study_dir) / "summary.json").read_text())
print(f"vestigial neuron caught in {study['vestigial_found']} of {study['seeds']} seeds; "
      f"in {study['retired_at_transition']} of them it stopped mattering around the transition "
      "(as if induction took its job over), in the others earlier.")
pd.DataFrame({
    name: {"seeds": len(c["seeds"]), "d final loss (mean)": c["delta_loss"]["mean"],
           "95% low": c["delta_loss"]["low"], "95% high": c["delta_loss"]["high"], "verdict": c["verdict"]}
    for name, c in study["comparisons"].items()
}).T

# %% [markdown]
# ### Exercise 5
# According to the study, what does holding the neuron at its mean for the **whole run** do to
# the final loss? Set `answer` to `"better"`, `"worse"` or `"no clear difference"`.

# %%
### BEGIN SOLUTION
answer = study["comparisons"]["suppress-whole"]["verdict"].split(" (")[0]
### END SOLUTION
answer

# %%
check(
    "ex5",
    lambda: study["comparisons"]["suppress-whole"]["verdict"].startswith(answer)
    and answer in ("better", "worse", "no clear difference"),
    points=1,
    hint="Read the 'verdict' column for suppress-whole: does its 95% interval lie below 0, "
         "above 0, or contain 0?",
)

# %% [markdown]
# **What to take away.** A selective neuron is not necessarily a needed one: the checkpoints
# show when a structure mattered, and training without it tests whether the final model
# depends on its having been there. Read the study's table as it is: a small but consistent
# cost is a different answer from "no difference", and the detector's *settles at* column says
# whether copying, or something earlier, made the neuron unnecessary. Next: `20_explorer.ipynb`,
# to watch all of this happen with a slider.
