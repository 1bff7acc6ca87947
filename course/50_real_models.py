# %% [markdown]
# # Real training histories: a checkpoint suite
#
# *Optional, and not graded: this notebook has no exercises and no checks. Run it to see
# the kit on a model it did not train.*
#
# Every run so far was trained by the kit. Research uses public training histories instead:
# Pythia (154 checkpoints of each model: step 0, log-spaced steps 1 to 512, then every 1,000
# steps to 143,000) and PolyPythias (the small Pythias trained again from nine more seeds).
# The kit opens such a *suite* as the same `Runs` its own training writes (`vestige.suites`),
# so the analysis, the detector, the mechanism tables and the explorer read it unchanged.
#
# The first three sections run offline on a **tiny suite**: a 2-layer GPT-NeoX (Pythia's
# architecture) trained here with the `transformers` library on *repeated random tokens*
# (each sequence's second half repeats its first), saved the way Pythia's checkpoints are.
# Only copying from the first half, an *induction* mechanism (Olsson et al. 2022), predicts
# the second half, so its loss drops when the model learns to copy. The last section opens
# Pythia and PolyPythias themselves; it runs only where a network (or a Hugging Face cache
# holding them) exists, and says so otherwise.

# %% tags=["parameters"]
student = ""  # not graded: kept so every course notebook takes the same parameters
runs_dir = "../runs"  # the tiny suite is built in runs_dir/tiny-suite the first time
hub_steps = [0, 64, 256, 512, 1000, 2000, 4000, 8000, 143000]  # Pythia revisions opened in 4
hub_seeds = [1234, 1, 2]  # 1234: the original pythia-14m; 1-9: PolyPythias' other seeds

# %%
from pathlib import Path

import altair as alt
import vestige
from IPython.display import display
from vestige import charts, explorer_tables, setup, suites, target_subject, tiny_suite
from vestige.detect import detect
from vestige.mechanism import mechanism

setup()

# %% [markdown]
# ## 1. A suite on disk
#
# `tiny_suite.ensure` trains the suite the first time (two seeds, about 10 s of CPU each) and
# reopens it afterwards. Each seed's folder holds one `save_pretrained` folder per checkpoint,
# named `step0`, `step1`, ... as Pythia's revisions are on the hub, and the training log.

# %%
runs = tiny_suite.ensure(Path(runs_dir) / "tiny-suite")
run = runs[runs.seeds[0]]
print(runs)
print(run.config.model)
print("checkpoints:", run.steps)
sorted(p.name for p in Path(run.revision(run.steps[-1])).iterdir())

# %% [markdown]
# `run.model_at(step)` loads one checkpoint with `transformers` and boots it through
# TransformerLens's `TransformerBridge`, the same bridge the kit's own models sit behind: the
# hook names (`vestige.hooks`) are the kit's.
#
# The evaluation set is the *induction probe*: random token sequences written twice, no
# corpus needed. Positions are `first_half` (their next token is new: nothing predicts it)
# and `second_half` (their next token appeared right after the current one in the first
# half); `second_half` is the focus, the class each neuron's effect is judged on.

# %%
probe = run.task
print(probe.description)
print("classes:", probe.class_names, " focus:", probe.focus_classes)
probe.batch.tokens[:2]

# %% [markdown]
# ## 2. The induction transition in the explorer
#
# The analysis of every checkpoint is computed the first time (a progress bar shows it) and
# cached next to the checkpoints. The mechanism tables find the heads that copy: for every
# head, how much of its attention from second-half positions goes to the *induction target*
# (the token after the earlier occurrence of the current token).

# %%
tables = explorer_tables(runs, progress=True)
found = detect(run)
tools = mechanism(run, target_subject(found), progress=True)
heads = tools["heads"]
last = heads[heads.step == run.steps[-1]]
top = last.loc[last.attn_induction.idxmax()]
print(
    f"seed {run.seed}, step {run.steps[-1]}: head {top.unit} sends "
    f"{top.attn_induction:.0%} of its attention from second-half positions to the induction "
    f"target; holding it at its mean costs {top.effect_focus:.2f} nats there"
)

# %% [markdown]
# The explorer opens at the transition (the dashed red line: where the second half's training
# loss falls half way), on the attention pattern of that head. Drag the step slider from
# step 0 to the end: the pattern's off-diagonal stripe (each token of the second copy looking
# at the token after its first occurrence) appears as the loss drops.

# %%
explorer = vestige.CheckpointExplorer(
    tables,
    seed=run.seed,
    step=tables.transition(run.seed),
    layer=int(top["layer"]),
    head=int(top["head"]),  # not top.head: a pandas row has a .head method
)
explorer

# %% [markdown]
# The same transition in numbers, per seed: the second half's loss before and after, read
# from each seed's training log.

# %%
for seed in runs.seeds:
    train = tables.metrics.query("seed == @seed").set_index("step")
    at = tables.transition(seed)
    first, final = train.iloc[0], train.iloc[-1]
    print(
        f"seed {seed}: transition at step {at:g}; second-half loss {first.loss_second_half:.2f} "
        f"-> {final.loss_second_half:.2f} nats, first half {first.loss_first_half:.2f} -> "
        f"{final.loss_first_half:.2f}"
    )

# %% [markdown]
# The stage curves of the probe: the predicted probability of the right next token in each
# half, and each head's attention to the induction target, over training.

# %%
stage_chart = (
    alt.Chart(tools["stages"])
    .mark_line(point=True)
    .encode(
        x=charts.step_x(run.steps),
        y=alt.Y("probability:Q", title="P(right next token)"),
        color=alt.Color("stage:N", title=None),
    )
    .properties(width=300, height=200, title="Stage curves")
)
head_chart = (
    alt.Chart(heads)
    .mark_line(point=True)
    .encode(
        x=charts.step_x(run.steps),
        y=alt.Y("attn_induction:Q", title="attention to the induction target"),
        color=alt.Color("unit:N", title="head"),
    )
    .properties(width=300, height=200, title="Heads that copy")
)
stage_chart | head_chart

# %% [markdown]
# ## 3. The detector on its neurons
#
# The kit's one definition of "vestigial" (`vestige.detect`) judges every MLP neuron of the
# suite, on its `second_half` positions, against the same clauses as for the kit's runs.
# Whatever it finds here is this suite's answer, not the toy task's: read it from the
# summary and the table.

# %%
for seed in runs.seeds:
    print(detect(runs[seed]).summary())
columns = ["unit", "peak_effect", "peak_low", "peak_step", "final_effect", "final_selectivity"]
found.neurons[[*columns, "selectivity_baseline", "failed"]].head(8)

# %% [markdown]
# How much the MLP layer of the detector's first-ranked neuron matters as a whole, next to
# that neuron alone (mean ablation, second-half positions, in nats):

# %%
neuron = tools["neuron"].set_index("step")
neuron[["unit", "effect_alone", "effect_joint", "effect_all_others"]].tail(4)

# %% [markdown]
# ## 4. Pythia and PolyPythias
#
# The same code with a hub name: `suites.open_hub(name, steps=...)` opens the revisions
# `step<N>` of `EleutherAI/pythia-14m` (and `suites.polypythias("14m")` names its other
# seeds). Each checkpoint is downloaded the first time it is opened (about 60 MB for
# pythia-14m) into the Hugging Face cache. The cells below run only where that can happen, or
# where the checkpoints are already cached; offline they print why they were skipped. They
# draw the probe's loss at each checkpoint (one forward pass each): the full analysis and
# the detector on Pythia's 3,072 neurons take much longer on a CPU (see `docs/suites.md`).
#
# Pythia's MLPs use GELU, which can go negative: the kit's selectivity index assumes
# non-negative activations (ReLU), so on Pythia it can leave [0, 1]. Read Pythia's
# selectivities with that in mind.

# %%
pythia = suites.polypythias("14m", seeds=[s for s in hub_seeds if s != suites.PYTHIA_SEED])
pythia = {seed: name for seed, name in pythia.items() if seed in hub_seeds}
revisions = [f"step{step}" for step in hub_steps]
skipped = {seed: suites.unavailable(name, revisions) for seed, name in pythia.items()}
for seed, reason in skipped.items():
    print(f"{pythia[seed]}: " + (f"skipped: {reason}" if reason else "available"))

# %%
probe_32 = suites.induction_probe((1000, 20000), half=32, n_sequences=32)
available = {seed: name for seed, name in pythia.items() if not skipped[seed]}
if available:
    hub = suites.open_hub(
        available, steps=hub_steps, probe=probe_32, cache=Path(runs_dir) / "hub" / "pythia-14m"
    )
    curves = []
    for hub_run in hub:
        evals = hub_run.metrics  # the probe's losses at each checkpoint (cached afterwards)
        curves.append(evals.assign(seed=str(hub_run.seed)))
    import pandas as pd

    long = pd.concat(curves).melt(
        ["seed", "step"], ["loss_first_half", "loss_second_half"], var_name="half"
    )
    display(
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=charts.step_x(hub_steps),
            y=alt.Y("value:Q", title="loss (nats)"),
            color=alt.Color("seed:N"),
            strokeDash=alt.StrokeDash("half:N"),
        )
        .properties(width=520, height=220, title="pythia-14m: the induction probe over training")
    )
else:
    print("no Pythia checkpoint can be opened here: nothing to draw")
