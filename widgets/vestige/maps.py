"""Training maps: phases of training across seeds, and the seeds that took a detour.

After Hu, Chen, Saphra & Cho, "Latent state models of training dynamics" (TMLR 2023;
code: github.com/michahu/modeling-training). Every checkpoint of every seed becomes a row of
statistics (`checkpoint_features`: weight norms per layer, the L1/L2 ratio, the spectral norm
of each weight matrix, the eval loss of each class of position, the task's stage
probabilities); each seed's sequence is z-scored per feature, as they do; a Gaussian hidden
Markov model (hmmlearn's `GaussianHMM`, diagonal covariances) is fitted for 1..8 states with
several restarts each, and the number of states with the lowest BIC is kept, its held-out log
likelihood beside it. Its states are phases of training; each seed's Viterbi path through
them is its route on the map; states only some seeds visit are detours.

`training_map(runs, seed=0)` gives a `TrainingMap` (deterministic for a given `seed`);
`detours(map, transition_steps, caught)` asks whether visiting a state goes with a later copy
transition and whether the seeds with a caught vestigial neuron took a different path;
`vestige.map_charts` draws both.

Differences from Hu et al., on purpose: BIC is computed on the fitted seeds (they average it
over restarts on the held-out seeds); the held-out log likelihood is reported per checkpoint
beside it; the restart kept for each size is the one with the highest log likelihood on the
fitted seeds; states are renumbered by when they occur (state 0 is the earliest phase), so
numbers and colours mean the same thing from one fit seed to the next.

Two ways a map can mislead, both measured in tests/test_maps.py. Z-scored per run, a phase's
values depend on how long the seed spends in each phase, so seeds that differ only in timing
get states of their own: spurious detours, correlated with timing by construction
(`normalize="pooled"` puts every seed on one scale instead). And on smooth, low-noise curves
BIC keeps falling as states are added: `TrainingMap.at_ceiling` says when the chosen number
is only the most that was tried.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from vestige.analysis import cached_tables, transition_step
from vestige.runs import Run, checkpoint_path, load_safetensors
from vestige.task import stage_probabilities

FEATURES_VERSION = 1
REFERENCE = "Hu, Chen, Saphra & Cho, Latent state models of training dynamics (TMLR 2023)"
MAX_STATES = 8
RESTARTS = 5
HELD_OUT = 0.2
MIN_GROUP = 5  # fewer seeds than this on either side of a comparison: too few to tell


# ----------------------------------------------------------------------------- features


def checkpoint_features(
    runs: Iterable[Run], stages: bool = True, cache: bool = True, progress: bool = False
) -> pd.DataFrame:
    """One row per checkpoint of every run: `seed`, `step` and the features (columns in a
    fixed order). `norm_<layer>`: the L2 norm of the layer's weights (`l0` is block 0);
    `l1_l2`: sum |w| / ||w||_2 over all weights; `spectral_<matrix>`: the largest singular
    value of each weight matrix; `loss_<class>`: the eval loss on each class of position
    (from the run's metrics); `stage_<name>`: the task's stage probabilities (one forward pass
    on the eval batch per checkpoint; none when the task has no stages, or `stages=False`).
    Cached in each run's analysis folder unless `cache=False` (e.g. read-only runs)."""
    tables = []
    for run in runs:
        if cache:
            settings = {"version": FEATURES_VERSION, "stages": bool(stages)}
            found = cached_tables(
                run,
                "map-features",
                settings,
                ("features",),
                lambda run=run: {"features": run_features(run, stages, progress)},
            )
            tables.append(found["features"])
        else:
            tables.append(run_features(run, stages, progress))
    if not tables:
        raise ValueError("no runs to make a map of")
    return pd.concat(tables, ignore_index=True).sort_values(["seed", "step"], ignore_index=True)


def run_features(run: Run, stages: bool = True, progress: bool = False) -> pd.DataFrame:
    """`checkpoint_features` of one run, not cached."""
    from tqdm.auto import tqdm

    steps = run.steps
    if not steps:
        raise ValueError(f"{run.path} has no checkpoints; train it first")
    curves = run.task.stages(run.eval_batch) if stages else {}
    rows = []
    for step in tqdm(steps, desc=f"map features seed {run.seed}", disable=not progress):
        tensors, _ = load_safetensors(checkpoint_path(run.path, step), run.retrain_hint())
        row = {"seed": run.seed, "step": step, **weight_features(tensors)}
        if curves:
            row.update(stage_features(run, step, curves))
        rows.append(row)
    table = pd.DataFrame(rows)
    losses = eval_losses(run)
    return table.merge(losses, on="step", how="left")[
        ["seed", "step", *weight_columns(table), *losses.columns[1:], *_stage_columns(table)]
    ]


def weight_features(tensors: dict[str, torch.Tensor]) -> dict[str, float]:
    """Norms of one checkpoint's weights (biases are left out): per layer, the L1/L2 ratio
    over all of them, and the spectral norm of every weight matrix."""
    weights = {
        k[: -len(".weight")]: v.double() for k, v in tensors.items() if k.endswith(".weight")
    }
    out: dict[str, float] = {}
    squares: dict[str, float] = {}
    for name, w in sorted(weights.items()):
        squares[_layer(name)] = squares.get(_layer(name), 0.0) + float((w * w).sum())
    for layer, total in squares.items():
        out[f"norm_{layer}"] = math.sqrt(total)
    flat = torch.cat([w.flatten() for _, w in sorted(weights.items())])
    out["l1_l2"] = float(flat.abs().sum() / flat.norm())
    for name, w in sorted(weights.items()):
        if w.ndim == 2:
            out[f"spectral_{_slug(name)}"] = float(torch.linalg.matrix_norm(w, ord=2))
    return out


def eval_losses(run: Run) -> pd.DataFrame:
    """`step` and `loss_<class>` of the run's eval rows (one per checkpoint)."""
    metrics = run.metrics
    columns = [f"loss_{name}" for name in run.task.class_names]
    if metrics.empty or "split" not in metrics:
        return pd.DataFrame(columns=["step", *columns])
    found = metrics[metrics["split"] == "eval"]
    columns = [c for c in columns if c in found]
    return found[["step", *columns]].drop_duplicates("step", keep="last")


@torch.no_grad()
def stage_features(run: Run, step: int, curves: dict) -> dict[str, float]:
    """The task's stage probabilities at one checkpoint (`vestige.task.stage_probabilities`,
    as `vestige.mechanism` computes its stage curves)."""
    logits = run.model_at(step)(run.eval_batch.tokens)
    return {f"stage_{_slug(k)}": v for k, v in stage_probabilities(logits, curves).items()}


def _layer(name: str) -> str:
    match = re.match(r"blocks\.(\d+)\.", name)
    return f"l{match.group(1)}" if match else name.split(".")[0]


def _slug(name: str) -> str:
    name = re.sub(r"^blocks\.(\d+)\.", r"l\1_", name)
    return re.sub(r"\W+", "_", name).strip("_").lower()


def weight_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table if c.startswith(("norm_", "spectral_")) or c == "l1_l2"]


def _stage_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table if c.startswith("stage_")]


def zscore_runs(features: pd.DataFrame, columns: list[str], normalize: str = "run") -> pd.DataFrame:
    """Each seed's sequence z-scored per feature (`normalize="run"`, as Hu et al. do, with
    scipy's `zscore`), or every seed on one scale (`"pooled"`: z-scored over all rows); a
    feature constant over the rows scored together is 0 there rather than NaN.

    Per run, a phase's z-scores depend on how long the seed spends in each phase (the run's
    mean and spread do); with little noise the HMM then splits one phase into several."""
    from scipy.stats import zscore

    if normalize not in ("run", "pooled"):
        raise ValueError(f"normalize must be 'run' or 'pooled', got {normalize!r}")
    out = features[["seed", "step"]].copy()
    values = features[columns].to_numpy(float)
    z = np.zeros_like(values)
    groups = features["seed"] if normalize == "run" else pd.Series(0, index=features.index)
    for key in groups.unique():
        rows = (groups == key).to_numpy()
        varies = np.ptp(values[rows], axis=0) > 0
        z[np.ix_(rows, varies)] = zscore(values[rows][:, varies], axis=0)
    out[columns] = z
    return out


# ----------------------------------------------------------------------------- the map


@dataclass
class TrainingMap:
    """A fitted training map. `states`: one row per (seed, checkpoint) with its Viterbi state
    and whether the seed was fitted or held out; `selection`: one row per number of states
    tried (BIC on the fitted seeds, log likelihood per checkpoint on fitted and held-out
    seeds); `transmat[i, j]`: P(state j at the next checkpoint | state i); `means`: each
    state's mean feature values (z-scores). States are numbered by when they occur."""

    n_states: int
    columns: list[str]
    selection: pd.DataFrame
    states: pd.DataFrame
    transmat: np.ndarray
    startprob: np.ndarray
    means: pd.DataFrame
    fit_seeds: list[int]
    held_out_seeds: list[int]
    seed: int
    normalize: str = "run"
    transitions: dict[int, float] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    model: Any = field(default=None, repr=False, compare=False)

    @property
    def at_ceiling(self) -> bool:
        """BIC was still falling at the largest number of states tried: the number of states
        is then a floor set by `max_states`, not a finding (smooth, low-noise curves with many
        features do this: every stretch of training gets its own state)."""
        return self.n_states == int(self.selection["n_states"].max()) and self.n_states > 1

    @property
    def seeds(self) -> list[int]:
        return sorted(self.states["seed"].unique().tolist())

    def paths(self) -> dict[int, list[int]]:
        """Each seed's state at each of its checkpoints, in step order."""
        return {s: g["state"].tolist() for s, g in self.states.groupby("seed", sort=True)}

    def occupancy(self) -> pd.DataFrame:
        """Seeds x states: the fraction of each seed's checkpoints spent in each state."""
        table = pd.crosstab(self.states["seed"], self.states["state"], normalize="index")
        return table.reindex(columns=range(self.n_states), fill_value=0.0)

    def visited(self) -> pd.DataFrame:
        """Seeds x states: whether the seed's path passes through the state."""
        return self.occupancy() > 0

    def detour_states(self) -> list[int]:
        """States some seeds visit and others never do."""
        counts = self.visited().sum()
        return [int(s) for s, n in counts.items() if 0 < n < len(self.seeds)]

    def edges(self, min_probability: float = 0.01) -> pd.DataFrame:
        """The transition graph: `source`, `target`, `probability` (the fitted transition
        matrix, self-loops included, edges below `min_probability` left out) and `seeds` (how
        many seeds' Viterbi paths take that step)."""
        taken: dict[tuple[int, int], set[int]] = {}
        for seed, path in self.paths().items():
            for a, b in zip(path[:-1], path[1:]):
                taken.setdefault((a, b), set()).add(seed)
        rows = [
            {
                "source": i,
                "target": j,
                "probability": float(self.transmat[i, j]),
                "seeds": len(taken.get((i, j), ())),
            }
            for i in range(self.n_states)
            for j in range(self.n_states)
            if self.transmat[i, j] >= min_probability or (i, j) in taken
        ]
        return pd.DataFrame(rows, columns=["source", "target", "probability", "seeds"])

    def summary(self) -> dict[str, Any]:
        """The map as plain JSON data (no NaN: missing numbers are None)."""
        visits = self.visited().sum()
        return _plain(
            {
                "reference": REFERENCE,
                "seed": self.seed,
                "normalize": self.normalize,
                "n_states": self.n_states,
                "at_ceiling": self.at_ceiling,
                "features": self.columns,
                "dropped_features": self.dropped,
                "fit_seeds": self.fit_seeds,
                "held_out_seeds": self.held_out_seeds,
                "selection": self.selection.to_dict("records"),
                "startprob": np.round(self.startprob, 4).tolist(),
                "transmat": np.round(self.transmat, 4).tolist(),
                "edges": self.edges().round(4).to_dict("records"),
                "seeds_visiting": {str(s): int(visits[s]) for s in range(self.n_states)},
                "detour_states": self.detour_states(),
                "paths": [
                    {
                        "seed": seed,
                        "steps": group["step"].tolist(),
                        "states": group["state"].tolist(),
                        "transition_step": self.transitions.get(seed),
                    }
                    for seed, group in self.states.groupby("seed", sort=True)
                ],
            }
        )


def training_map(
    runs: Iterable[Run],
    *,
    seed: int = 0,
    columns: list[str] | None = None,
    stages: bool = True,
    cache: bool = True,
    progress: bool = False,
    **options,
) -> TrainingMap:
    """The training map of `runs` (a `Runs` or any iterable of `Run`): `checkpoint_features`,
    then `fit_map` (its keyword `options`: max_states, restarts, held_out, n_iter, tol). Each
    run's copy transition (`vestige.analysis.transition_step`) is kept for the charts and
    `detours`."""
    runs = list(runs)
    features = checkpoint_features(runs, stages=stages, cache=cache, progress=progress)
    transitions = {run.seed: transition_step(run) for run in runs}
    return fit_map(features, seed=seed, columns=columns, transitions=transitions, **options)


def split_seeds(seeds: Iterable[int], held_out: float, seed: int) -> tuple[list[int], list[int]]:
    """Fitted and held-out seeds: a permutation of the sorted seeds drawn from `seed`, the
    last round(held_out * n) held out (none with fewer than 3 seeds)."""
    seeds = sorted(int(s) for s in seeds)
    n_held = int(round(held_out * len(seeds))) if len(seeds) >= 3 else 0
    n_held = min(n_held, len(seeds) - 1)
    order = np.random.default_rng(seed).permutation(len(seeds))
    fit = sorted(seeds[i] for i in order[: len(seeds) - n_held])
    held = sorted(seeds[i] for i in order[len(seeds) - n_held :])
    return fit, held


def fit_map(
    features: pd.DataFrame,
    *,
    seed: int = 0,
    columns: list[str] | None = None,
    max_states: int = MAX_STATES,
    restarts: int = RESTARTS,
    held_out: float = HELD_OUT,
    normalize: str = "run",
    n_iter: int = 500,
    tol: float = 1e-4,
    transitions: dict[int, float] | None = None,
) -> TrainingMap:
    """Fit the map to a features table (`seed`, `step`, feature columns; e.g. from
    `checkpoint_features`, or synthetic). `columns`: the features to use (default: all but
    seed and step); a column with a missing value anywhere is dropped and named in
    `TrainingMap.dropped`. `normalize`: "run" (each seed z-scored on its own, as Hu et al.)
    or "pooled" (see `zscore_runs`). Deterministic for a given `seed` (it draws the held-out split and
    every restart's initialisation)."""
    from hmmlearn.hmm import GaussianHMM

    features = features.sort_values(["seed", "step"], ignore_index=True)
    columns = (
        list(columns) if columns is not None else [c for c in features if c not in ("seed", "step")]
    )
    dropped = [c for c in columns if features[c].isna().any()]
    columns = [c for c in columns if c not in dropped]
    if not columns:
        raise ValueError(f"no feature without missing values to fit (dropped: {dropped})")
    z = zscore_runs(features, columns, normalize)
    fit_seeds, held_seeds = split_seeds(z["seed"].unique(), held_out, seed)
    X_fit, len_fit = _stack(z, fit_seeds, columns)
    X_held, len_held = _stack(z, held_seeds, columns)

    rows, best = [], {}
    for n in range(1, max_states + 1):
        if n > len(X_fit):
            break
        candidates = []
        for restart in range(restarts):
            state = int(np.random.SeedSequence([seed, n, restart]).generate_state(1)[0])
            model = GaussianHMM(
                n_components=n,
                covariance_type="diag",
                n_iter=n_iter,
                tol=tol,
                random_state=state,
                # "log", not "scaling": scaling's forward pass underflows on held-out seeds
                # far from every state (a 3-seed tiny study raised there)
                implementation="log",
            )
            try:
                with _quiet_hmmlearn(), np.errstate(divide="ignore", invalid="ignore"):
                    model.fit(X_fit, len_fit)
                    score = model.score(X_fit, len_fit)
            except ValueError:  # EM collapsed a state (NaN parameters): a failed restart
                continue
            if np.isfinite(score):
                candidates.append((score, restart, model))
        if not candidates:
            rows.append({"n_states": n, "bic": math.nan, "fit_log_likelihood": math.nan})
            continue
        score, _, model = max(candidates, key=lambda c: (c[0], -c[1]))
        best[n] = model
        bic = float(model.bic(X_fit, len_fit))  # hmmlearn's own: -2 log L + k log(rows)
        held = float(model.score(X_held, len_held)) / len(X_held) if len(X_held) else math.nan
        rows.append(
            {
                "n_states": n,
                "bic": bic,
                "fit_log_likelihood": score / len(X_fit),
                "held_out_log_likelihood": held,
                "parameters": int(round((bic + 2 * score) / math.log(len(X_fit)))),
                "converged": int(model.monitor_.converged),
                "restarts_fitted": len(candidates),
            }
        )
    selection = pd.DataFrame(rows)
    if not best:
        raise ValueError("no model could be fitted; too few checkpoints?")
    chosen = int(selection.loc[selection["bic"].idxmin(), "n_states"])
    model = best[chosen]
    _relabel_by_time(model, z, columns)
    states = _decode(model, z, columns, held_seeds)
    return TrainingMap(
        n_states=chosen,
        columns=columns,
        selection=selection,
        states=states,
        transmat=model.transmat_.copy(),
        startprob=model.startprob_.copy(),
        means=pd.DataFrame(model.means_, columns=columns).rename_axis("state"),
        fit_seeds=fit_seeds,
        held_out_seeds=held_seeds,
        seed=seed,
        normalize=normalize,
        transitions={int(k): float(v) for k, v in (transitions or {}).items()},
        dropped=dropped,
        model=model,
    )


def _stack(z: pd.DataFrame, seeds: list[int], columns: list[str]):
    parts = [z.loc[z["seed"] == s, columns].to_numpy(float) for s in seeds]
    if not parts:
        return np.zeros((0, len(columns))), []
    return np.vstack(parts), [len(p) for p in parts]


def _decode(model, z: pd.DataFrame, columns: list[str], held: list[int]) -> pd.DataFrame:
    parts = []
    for seed, group in z.groupby("seed", sort=True):
        _, path = model.decode(group[columns].to_numpy(float), algorithm="viterbi")
        parts.append(
            pd.DataFrame(
                {
                    "seed": int(seed),
                    "step": group["step"].to_numpy(),
                    "state": path.astype(int),
                    "split": "held_out" if seed in held else "fit",
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _relabel_by_time(model, z: pd.DataFrame, columns: list[str]) -> None:
    """Renumber the model's states by the mean relative position (0 = first checkpoint, 1 =
    last) of the checkpoints Viterbi puts in them, over all seeds; states no path uses go
    last. hmmlearn numbers states arbitrarily, so without this the same phase would get a
    different number (and colour) from one fit seed to the next."""
    states = _decode(model, z, columns, [])
    states["position"] = states.groupby("seed").cumcount() / (
        states.groupby("seed")["step"].transform("size") - 1
    ).clip(lower=1)
    mean = states.groupby("state")["position"].mean()
    key = [(0, mean[s], s) if s in mean else (1, 0.0, s) for s in range(model.n_components)]
    order = np.array([k[2] for k in sorted(key)])
    covars = np.diagonal(model.covars_, axis1=1, axis2=2)[order]  # diag: setter wants (n, f)
    model.startprob_ = model.startprob_[order]
    model.transmat_ = model.transmat_[order][:, order]
    model.means_ = model.means_[order]
    model.covars_ = covars


@contextmanager
def _quiet_hmmlearn():
    """hmmlearn logs (not warns) when EM stops before `tol` or a size has more parameters than
    rows; the selection table records convergence instead."""
    log = logging.getLogger("hmmlearn")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


# ----------------------------------------------------------------------------- detours


@dataclass
class Detours:
    """What the map's states say about the copy transition and the caught neurons.

    Per state (`table`, one row each):

    * `shift` [`shift_low`, `shift_high`]: for a detour (a state some seeds visit and others
      never do), the mean copy-transition step of the seeds that visit it minus that of the
      others (OLS of the step on the 0/1 visit, 95% interval), as Hu et al. relate detours to
      convergence time;
    * `slope` [`slope_low`, `slope_high`]: OLS of the step on the state's occupancy (the
      fraction of the seed's checkpoints spent in it), in steps per unit of occupancy. For a
      state every seed passes through, its occupancy is partly the transition's timing itself
      (a seed that leaves the state later has its transition later), so a link there is
      expected by construction (`every_seed` is True) and is not evidence of a detour;
    * caught x visited counts and Fisher's exact test (`p_value`), Holm-corrected over the
      detour states (`p_holm`): do seeds with a caught vestigial neuron visit it at a
      different rate?

    `reading` says in words what each row shows; `verdict` what it all shows, saying plainly
    when the seeds are too few to tell (fewer than `min_group` on either side)."""

    table: pd.DataFrame
    n_seeds: int
    n_caught: int
    n_not_caught: int
    n_with_transition: int
    enough_for_regression: bool
    enough_for_path_test: bool
    verdict: str
    min_group: int = MIN_GROUP

    def summary(self) -> dict[str, Any]:
        return _plain(
            {
                "n_seeds": self.n_seeds,
                "n_caught": self.n_caught,
                "n_not_caught": self.n_not_caught,
                "n_with_transition": self.n_with_transition,
                "min_group": self.min_group,
                "enough_for_regression": self.enough_for_regression,
                "enough_for_path_test": self.enough_for_path_test,
                "verdict": self.verdict,
                "states": self.table.to_dict("records"),
            }
        )


def detours(
    training: TrainingMap,
    transition_steps: dict[int, float] | None = None,
    caught: dict[int, bool] | None = None,
    *,
    min_group: int = MIN_GROUP,
    level: float = 0.05,
) -> Detours:
    """Which states are detours, and do they matter (see `Detours`). `transition_steps`: seed
    -> copy-transition step (default: the map's own, from `training_map`; NaN: none);
    `caught`: seed -> whether the detector caught a vestigial neuron in it (default: no path
    test). Seeds missing from either are left out of that part."""
    from scipy.stats import fisher_exact
    from statsmodels.stats.multitest import multipletests

    steps = training.transitions if transition_steps is None else transition_steps
    caught = caught or {}
    occupancy = training.occupancy()
    seeds = list(occupancy.index)
    timed = [s for s in seeds if s in steps and np.isfinite(steps[s])]
    judged = [s for s in seeds if s in caught]
    is_caught = np.array([bool(caught[s]) for s in judged], bool)
    n_caught, n_not = int(is_caught.sum()), int((~is_caught).sum())
    y = np.array([steps[s] for s in timed], float)

    rows = []
    for state in range(training.n_states):
        share = occupancy.loc[timed, state].to_numpy(float)
        visits = (occupancy[state] > 0).to_numpy()
        came = share > 0
        every = bool(visits.all())
        row: dict[str, Any] = {
            "state": state,
            "seeds_visiting": int(visits.sum()),
            "every_seed": every,
            "mean_occupancy": float(occupancy[state].mean()),
            "n_regression": len(timed),
            **_ols(y, came.astype(float), "shift", enough=not every),
            **_ols(y, share, "slope"),
        }
        v = (occupancy.loc[judged, state] > 0).to_numpy()
        counts = [[int((v & is_caught).sum()), int((~v & is_caught).sum())]]
        counts.append([int((v & ~is_caught).sum()), int((~v & ~is_caught).sum())])
        row.update(
            caught_visiting=counts[0][0],
            caught_not_visiting=counts[0][1],
            others_visiting=counts[1][0],
            others_not_visiting=counts[1][1],
            p_value=math.nan,
        )
        if n_caught and n_not and 0 < v.sum() < len(judged):
            row["p_value"] = float(fisher_exact(counts).pvalue)
        row["reading"] = _reading(row, int(came.sum()), len(timed) - int(came.sum()), min_group)
        rows.append(row)
    table = pd.DataFrame(rows)
    table["p_holm"] = math.nan
    tested = table["p_value"].notna()
    if tested.any():
        table.loc[tested, "p_holm"] = multipletests(table.loc[tested, "p_value"], method="holm")[1]
    readable = table["reading"].str.startswith(("visiting", "no measurable"))
    return Detours(
        table=table,
        n_seeds=len(seeds),
        n_caught=n_caught,
        n_not_caught=n_not,
        n_with_transition=len(timed),
        enough_for_regression=bool(readable.any()),
        enough_for_path_test=n_caught >= min_group and n_not >= min_group,
        verdict=_verdict(table, len(timed), n_caught, n_not, min_group, level, bool(caught)),
        min_group=min_group,
    )


def _ols(y: np.ndarray, x: np.ndarray, name: str, enough: bool = True) -> dict[str, float]:
    """Slope of y on x with its 95% interval (statsmodels OLS); NaN when x does not vary."""
    import statsmodels.api as sm

    out = {name: math.nan, f"{name}_low": math.nan, f"{name}_high": math.nan}
    if enough and len(y) >= 3 and np.ptp(x) > 0:
        fit = sm.OLS(y, sm.add_constant(x)).fit()
        low, high = fit.conf_int(alpha=0.05)[1]
        out.update({name: float(fit.params[1]), f"{name}_low": low, f"{name}_high": high})
    return {k: float(v) for k, v in out.items()}


def _reading(row: dict, visiting: int, others: int, min_group: int) -> str:
    if row["every_seed"]:
        return "every seed passes through it: a phase, not a detour"
    if row["seeds_visiting"] == 0:
        return "no seed's path uses it"
    if min(visiting, others) < min_group:
        return (
            f"too few seeds to tell: {visiting} seed(s) with a copy transition visit it and "
            f"{others} do not (need {min_group} of each)"
        )
    if row["shift_low"] <= 0 <= row["shift_high"]:
        return "no measurable link to the copy-transition step (the interval spans zero)"
    later = "a later" if row["shift_low"] > 0 else "an earlier"
    return f"visiting it goes with {later} copy transition"


def _verdict(table, n_timed, n_caught, n_not, min_group, level, asked_paths) -> str:
    detour = table[~table["every_seed"] & (table["seeds_visiting"] > 0)]
    said = []
    if detour.empty:
        said.append("No detours: every state the map uses is visited by every seed.")
    elif n_timed < min_group:
        said.append(f"Too few seeds with a copy transition to tell ({n_timed}, need {min_group}).")
    else:
        linked = detour[detour["reading"].str.startswith("visiting")]
        readable = detour[detour["reading"].str.startswith(("visiting", "no measurable"))]
        for _, r in linked.iterrows():
            said.append(
                f"State {r['state']}: {r['reading']} ({r['shift']:+.0f} steps, 95% interval "
                f"[{r['shift_low']:+.0f}, {r['shift_high']:+.0f}])."
            )
        if readable.empty:
            said.append(
                f"Too few seeds to tell whether any detour goes with a later copy transition: "
                f"every detour state is visited, or avoided, by fewer than {min_group} seeds."
            )
        elif linked.empty:
            said.append(
                "No detour measurably shifts the copy transition: every 95% interval spans zero."
            )
    if not asked_paths:
        return " ".join(said)
    if n_caught < min_group or n_not < min_group:
        said.append(
            "Too few seeds to tell whether seeds with a caught neuron take a different path: "
            f"{n_caught} caught and {n_not} not (need at least {min_group} in each)."
        )
    elif (table["p_holm"] < level).any():
        states = table.loc[table["p_holm"] < level, "state"].tolist()
        said.append(
            f"Seeds with a caught neuron visit state(s) {states} at a different rate "
            f"(Fisher's exact test, Holm-corrected p < {level})."
        )
    else:
        said.append(
            "No measurable difference between the paths of seeds with and without a caught "
            f"neuron (Fisher's exact test per detour state, Holm-corrected: none below {level})."
        )
    return " ".join(said)


def _plain(value):
    """Plain JSON data: numpy scalars and arrays to Python, NaN and inf to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
