"""The checks of 40_many_seeds: each exercise fails its typical wrong answers and accepts
correct answers written another way. Independent of the course's live study: a small fake
study (summary.json and results.json of the shape `vestige study` writes, its summary made
by the kit's own `summarize`) is built here."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import vestige
from answers import (
    correlation_right,
    detours_right,
    paired_right,
    peak_settle_right,
    settled_right,
    spearman,
)
from scipy import stats
from vestige.course import grade, plain
from vestige.course.checks import AnswerError, many_seeds
from vestige.course.sandbox import Limits
from vestige.detect import settle_step
from vestige.report import json_safe
from vestige.report import load as load_study
from vestige.stats import mean_ci
from vestige.study import summarize

FIRST_COPY, SECOND_COPY, LONE_B = many_seeds.reference_stages()


def verdict(exercise, answer, hidden=None):
    ctx = many_seeds.context({}, hidden)
    ex = {e.id: e for e in many_seeds.EXERCISES}[exercise]
    return ex.judge(plain.roundtrip(ex.capture(answer, ctx)), ctx)


def hidden(seed):
    return plain.roundtrip(many_seeds.hidden_inputs({}, np.random.default_rng(seed)))


def passes_everywhere(exercise, answer):
    return all(verdict(exercise, answer, h).passed for h in (None, hidden(1), hidden(2)))


def fails_everywhere(exercise, answer):
    results = [verdict(exercise, answer, h) for h in (None, hidden(1), hidden(2))]
    return all(not r.passed and "wrong on" in r.message() for r in results)


# --- a fake study --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A 12-seed study folder written as `vestige study` writes it."""
    rng = np.random.default_rng(7)
    results = []
    for seed in range(12):
        settle = [None, 4, 8, 9, 11, 13, 16][seed % 7]
        copy_at = None if seed == 5 else int(rng.integers(9, 14))
        transitions = {
            "copy": copy_at,
            LONE_B: int(rng.integers(6, 11)),
            FIRST_COPY: int(rng.integers(6, 11)),
            SECOND_COPY: copy_at,
        }
        record = many_seeds.make_record(
            rng,
            seed,
            settle,
            transitions,
            caught=seed % 3 != 0,
            conditions=("neuron-whole", "alpha-1"),
        )
        if seed == 3:
            del record["conditions"]["alpha-1"]  # a seed without one condition
        # the study records it; ex3's reference is checked against the study's own rule below
        record["mechanism"]["coincides_with"] = many_seeds.reference_settled_with(record)
        record["best_candidate"] = {"failed": [] if record["caught"] else ["faded"]}
        results.append(record)
    nan_results = json.loads(json.dumps(results).replace("null", "NaN"))  # in-process: NaN
    summary = summarize(vestige.preset("reference"), nan_results, ("neuron-whole", "alpha-1"), 1.0)
    folder = tmp_path_factory.mktemp("study")
    for name, data in (("summary", summary), ("results", results)):
        (folder / f"{name}.json").write_text(json.dumps(json_safe(data), allow_nan=False))
    return folder


def test_the_fake_study_has_the_shape_the_notebook_reads(study):
    summary, results = load_study(study)
    assert summary["n_seeds"] == 12 and set(summary["conditions"]) == {"neuron-whole", "alpha-1"}
    assert summary["conditions"]["alpha-1"]["seeds"] == [s for s in range(12) if s != 3]
    assert any(r["base"]["transition"] is None for r in results)
    assert any(r["mechanism"]["settle_step"] is None for r in results)


def test_the_references_agree_with_the_kit_on_the_fake_study(study):
    summary, results = load_study(study)
    for r in results:
        line = pd.DataFrame(r["timeline"]).sort_values("step").reset_index(drop=True)
        trained = line[line.step > 0]
        peak, settle = many_seeds.reference_peak_and_settle(r["timeline"])
        assert peak == trained.effect.max()
        assert settle == settle_step(line, trained.effect.idxmax()) == r["mechanism"]["settle_step"]
    for name, comparison in summary["conditions"].items():
        for outcome in ("final_loss", "transition", "focus_loss"):
            mine, kit = (
                many_seeds.reference_paired(results, name, outcome),
                comparison[f"delta_{outcome}"],
            )
            assert mine["n"] == kit["n"]
            for key in ("mean", "low", "high"):
                assert math.isclose(mine[key], kit[key], rel_tol=1e-9, abs_tol=1e-12)


def test_the_reference_of_ex3_is_the_studys_rule_on_a_real_run(course_runs):
    """`coincides_with` as `vestige.study.mechanism_record` computes it from a tiny run's
    real transitions, for a settle step at each checkpoint in turn."""
    from vestige.detect import detect
    from vestige.study import mechanism_record

    run = vestige.Run.open(course_runs / "tiny" / "seed-0")
    found = detect(run)
    seen = set()
    for settle in run.steps:
        neuron = found.neurons.iloc[0].copy()
        neuron["settle_step"] = settle
        kit = mechanism_record(run, found, neuron)
        record = {"timeline": [{"step": s} for s in run.steps], "mechanism": kit}
        assert many_seeds.reference_settled_with(record) == sorted(kit["coincides_with"])
        seen.add(tuple(sorted(kit["coincides_with"])))
    assert len(seen) > 1  # some settle steps coincide with a transition, some do not


def test_the_right_answers_run_on_the_fake_study(study):
    _, results = load_study(study)
    for r in results:
        assert settled_right(r) == many_seeds.reference_settled_with(r)
        assert peak_settle_right(r["timeline"]) == many_seeds.reference_peak_and_settle(
            r["timeline"]
        )
    usable = [r for r in results if r["base"]["transition"] is not None]
    x = np.array([peak_settle_right(r["timeline"])[0] for r in usable])
    y = np.array([r["base"]["transition"] for r in usable])
    rows = np.random.default_rng(0).integers(0, len(x), size=(500, len(x)))
    rho, lows, highs = many_seeds.reference_correlation(x, y, rows)
    assert np.allclose(correlation_right(x, y, rows), (rho, lows[0], highs[0]))
    assert np.allclose(
        paired_right(results, "alpha-1", "final_loss"),
        [
            mean_ci(
                [
                    r["conditions"]["alpha-1"]["final_loss"] - r["base"]["final_loss"]
                    for r in results
                    if "alpha-1" in r["conditions"]
                ]
            )[k]
            for k in ("mean", "low", "high")
        ],
    )


# --- ex1: peak and settle ------------------------------------------------------------------------


def peak_settle_pandas(timeline):  # the detector's way: a reversed running maximum; NaN, numpy
    line = pd.DataFrame(timeline).sort_values("step").reset_index(drop=True)
    line = line[line.step > 0]
    at = line.effect.idxmax()
    after = line.loc[at:]
    high = after.effect >= line.effect[at] / 2
    settled = after.step[~high[::-1].cummax()[::-1]]
    return np.float32(line.effect[at]), (settled.iloc[0] if len(settled) else np.nan)


def peak_settle_numpy(timeline):  # an array (peak, settle) with NaN, a torch peak
    steps = np.array([p["step"] for p in timeline])
    effect = np.array([p["effect"] for p in timeline])
    order = np.argsort(steps)
    steps, effect = steps[order][1:], effect[order][1:]
    at = int(np.argmax(effect))
    above = np.nonzero(effect >= effect[at] / 2)[0]
    last = above.max()
    settle = float(steps[last + 1]) if last + 1 < len(steps) else float("nan")
    return [torch.tensor(effect[at]), settle]


def peak_with_step_zero(timeline):
    points = sorted((p["step"], p["effect"]) for p in timeline)
    at = max(range(len(points)), key=lambda i: points[i][1])
    peak = points[at][1]
    for i in range(at, len(points)):
        if all(effect < peak / 2 for _, effect in points[i:]):
            return peak, points[i][0]
    return peak, None


def first_dip(timeline):  # the first checkpoint below half, not "for good"
    points = sorted((p["step"], p["effect"]) for p in timeline if p["step"] > 0)
    at = max(range(len(points)), key=lambda i: points[i][1])
    peak = points[at][1]
    return peak, next((s for s, e in points[at:] if e < peak / 2), None)


def assumes_sorted(timeline):
    points = [(p["step"], p["effect"]) for p in timeline][1:]
    at = max(range(len(points)), key=lambda i: points[i][1])
    peak = points[at][1]
    for i in range(at, len(points)):
        if all(effect < peak / 2 for _, effect in points[i:]):
            return peak, points[i][0]
    return peak, None


def peak_step_for_settle(timeline):
    points = sorted((p["step"], p["effect"]) for p in timeline if p["step"] > 0)
    step, peak = max(points, key=lambda p: p[1])
    return peak, step


def half_of_the_final(timeline):  # below half the peak... of the final value
    points = sorted((p["step"], p["effect"]) for p in timeline if p["step"] > 0)
    at = max(range(len(points)), key=lambda i: points[i][1])
    return points[at][1], next((s for s, e in points[at:] if e <= points[-1][1]), None)


@pytest.mark.parametrize("right", [peak_settle_right, peak_settle_pandas, peak_settle_numpy])
def test_ex1_accepts_other_methods_and_types(right):
    assert passes_everywhere("ex1", right)


@pytest.mark.parametrize(
    "wrong",
    [
        peak_with_step_zero,
        first_dip,
        assumes_sorted,
        peak_step_for_settle,
        half_of_the_final,
        lambda t: (0.3, None),
        lambda t: (0.3, 216),
        lambda t: peak_settle_right(t)[1],
    ],
)
def test_ex1_refuses_wrong_answers(wrong):
    assert fails_everywhere("ex1", wrong)


def test_ex1_says_which_case_went_wrong():
    message = verdict("ex1", first_dip).message()
    assert "dips below half its peak and comes back" in message and "another settle step" in message
    assert "at step 0" in verdict("ex1", peak_with_step_zero).message()


# --- ex2: a rank correlation with a bootstrap interval ---------------------------------------------


def correlation_scipy(x, y, resamples):  # scipy's spearmanr, sorting for the percentiles
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        boot = np.array([stats.spearmanr(x[row], y[row]).statistic for row in resamples])
    boot = np.sort(boot[~np.isnan(boot)])
    low, high = boot[int(0.025 * (len(boot) - 1))], boot[math.ceil(0.975 * (len(boot) - 1))]
    return [stats.spearmanr(x, y).statistic, low, high]


def correlation_pandas(x, y, resamples):  # pandas ranks, a torch result, 'nearest' percentiles
    import warnings

    def rho(i):
        with warnings.catch_warnings():  # a constant resample: NaN, dropped below
            warnings.simplefilter("ignore", stats.ConstantInputWarning)
            return pd.Series(x[i]).corr(pd.Series(y[i]), method="spearman")

    boot = pd.Series([rho(row) for row in resamples]).dropna()
    low, high = np.percentile(boot, [2.5, 97.5], method="nearest")
    return torch.tensor([rho(np.arange(len(x))), low, high], dtype=torch.float64)


def correlation_pearson(x, y, resamples):
    def r(a, b):
        return np.nan if a.std() == 0 else np.corrcoef(a, b)[0, 1]

    boot = np.array([r(x[row], y[row]) for row in resamples])
    return (r(x, y), *np.nanpercentile(boot, [2.5, 97.5]))


def correlation_ordinal_ranks(x, y, resamples):
    def rho(a, b):
        ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
        return np.nan if np.ptp(a) == 0 or np.ptp(b) == 0 else np.corrcoef(ra, rb)[0, 1]

    boot = np.array([rho(x[row], y[row]) for row in resamples])
    return (rho(x, y), *np.nanpercentile(boot, [2.5, 97.5]))


def correlation_tie_free_formula(x, y, resamples):
    def rho(a, b):
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            return np.nan
        d = stats.rankdata(a) - stats.rankdata(b)
        n = len(a)
        return 1 - 6 * (d**2).sum() / (n * (n**2 - 1))

    boot = np.array([rho(x[row], y[row]) for row in resamples])
    return (rho(x, y), *np.nanpercentile(boot, [2.5, 97.5]))


def correlation_nan_kept(x, y, resamples):
    boot = np.array([spearman(x[row], y[row]) for row in resamples])
    return (spearman(x, y), *np.percentile(boot, [2.5, 97.5]))


def correlation_bootstrap_mean(x, y, resamples):
    boot = np.array([spearman(x[row], y[row]) for row in resamples])
    return (np.nanmean(boot), *np.nanpercentile(boot, [2.5, 97.5]))


def correlation_unpaired(x, y, resamples):  # x and y resampled with different rows
    shifted = np.roll(resamples, 1, axis=0)
    boot = np.array([spearman(x[a], y[b]) for a, b in zip(resamples, shifted)])
    return (spearman(x, y), *np.nanpercentile(boot, [2.5, 97.5]))


def correlation_90(x, y, resamples):
    boot = np.array([spearman(x[row], y[row]) for row in resamples])
    return (spearman(x, y), *np.nanpercentile(boot, [5, 95]))


@pytest.mark.parametrize("right", [correlation_right, correlation_scipy, correlation_pandas])
def test_ex2_accepts_other_methods_percentile_conventions_and_types(right):
    assert passes_everywhere("ex2", right)


@pytest.mark.parametrize(
    "wrong",
    [
        correlation_pearson,
        correlation_ordinal_ranks,
        correlation_tie_free_formula,
        correlation_nan_kept,
        correlation_bootstrap_mean,
        correlation_unpaired,
        correlation_90,
        lambda x, y, r: (0.2, -0.3, 0.6),
    ],
)
def test_ex2_refuses_wrong_answers(wrong):
    assert fails_everywhere("ex2", wrong)


def test_ex2_names_nan_bounds():
    assert "NaN bounds" in verdict("ex2", correlation_nan_kept).message()


# --- ex3: what the settling coincided with ---------------------------------------------------------


def settled_numpy(result):  # searchsorted, a set
    steps = np.sort([p["step"] for p in result["timeline"]])
    settle = result["mechanism"]["settle_step"]
    if settle is None or (isinstance(settle, float) and math.isnan(settle)):
        return set()
    at = np.searchsorted(steps, settle)
    return {
        name
        for name, step in result["mechanism"]["transitions"].items()
        if step is not None and abs(int(np.searchsorted(steps, step)) - int(at)) <= 1
    }


def settled_within_steps(window):
    def answer(result):
        settle = result["mechanism"]["settle_step"]
        if settle is None:
            return []
        return [
            n
            for n, s in result["mechanism"]["transitions"].items()
            if s is not None and abs(s - settle) <= window
        ]

    return answer


def settled_same_checkpoint(result):
    settle = result["mechanism"]["settle_step"]
    return [
        n for n, s in result["mechanism"]["transitions"].items() if s is not None and s == settle
    ]


def settled_within_two(result):
    steps = sorted(p["step"] for p in result["timeline"])
    settle = result["mechanism"]["settle_step"]
    if settle is None:
        return []
    return [
        n
        for n, s in result["mechanism"]["transitions"].items()
        if s is not None and abs(steps.index(s) - steps.index(settle)) <= 2
    ]


def settled_ignoring_none(result):
    steps = sorted(p["step"] for p in result["timeline"])
    settle = result["mechanism"]["settle_step"]
    return [
        n
        for n, s in result["mechanism"]["transitions"].items()
        if abs(steps.index(s) - steps.index(settle)) <= 1
    ]


@pytest.mark.parametrize(
    "right", [settled_right, settled_numpy, lambda r: tuple(reversed(settled_right(r)))]
)
def test_ex3_accepts_other_methods_and_types(right):
    assert passes_everywhere("ex3", right)


@pytest.mark.parametrize(
    "wrong",
    [
        settled_within_steps(25),
        settled_within_steps(60),
        settled_within_steps(150),
        settled_same_checkpoint,
        settled_within_two,
        settled_ignoring_none,
        lambda r: [],
        lambda r: [LONE_B],
        lambda r: r["mechanism"]["coincides_with"],
    ],
)
def test_ex3_refuses_wrong_answers(wrong):
    assert fails_everywhere("ex3", wrong)


def test_ex3_says_coincides_with_is_not_there_to_read():
    message = verdict("ex3", lambda r: r["mechanism"]["coincides_with"]).message()
    assert "have no `coincides_with`: compute it" in message


# --- ex4: a paired difference --------------------------------------------------------------------


def paired_mean_ci(results, condition, outcome):  # the kit's interval, a dict
    return mean_ci(
        [
            r["conditions"][condition][outcome] - r["base"][outcome]
            for r in results
            if condition in r["conditions"]
            and r["conditions"][condition][outcome] is not None
            and r["base"][outcome] is not None
        ]
    )


def paired_scipy(results, condition, outcome):  # a one-sample t-test's interval, float32
    table = pd.DataFrame(
        [
            {"base": r["base"][outcome], "changed": r["conditions"][condition][outcome]}
            for r in results
            if condition in r["conditions"]
        ]
    ).dropna()
    d = (table.changed - table.base).to_numpy()
    ci = stats.ttest_1samp(d, 0).confidence_interval(0.95)
    return np.array([d.mean(), ci.low, ci.high])


def paired_unpaired(results, condition, outcome):
    a = np.array(
        [
            r["conditions"][condition][outcome]
            for r in results
            if condition in r["conditions"]
            and r["conditions"][condition][outcome] is not None
            and r["base"][outcome] is not None
        ]
    )
    b = np.array(
        [
            r["base"][outcome]
            for r in results
            if condition in r["conditions"]
            and r["conditions"][condition][outcome] is not None
            and r["base"][outcome] is not None
        ]
    )
    half = stats.t.ppf(0.975, len(a) - 1) * math.sqrt(
        a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)
    )
    return a.mean() - b.mean(), a.mean() - b.mean() - half, a.mean() - b.mean() + half


def paired_with(interval):
    def answer(results, condition, outcome):
        d = np.array(
            [
                r["conditions"][condition][outcome] - r["base"][outcome]
                for r in results
                if condition in r["conditions"]
                and r["conditions"][condition][outcome] is not None
                and r["base"][outcome] is not None
            ]
        )
        half = interval(d)
        return d.mean(), d.mean() - half, d.mean() + half

    return answer


def t_interval(d):
    d = np.asarray(d, dtype=float)
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return d.mean(), d.mean() - half, d.mean() + half


def paired_keeps_none(results, condition, outcome):  # a null value is not left out
    return t_interval(
        [
            r["conditions"][condition][outcome] - r["base"][outcome]
            for r in results
            if condition in r["conditions"]
        ]
    )


def paired_every_seed(results, condition, outcome):  # seeds without the condition kept
    return t_interval(
        [
            r["conditions"][condition][outcome] - r["base"][outcome]
            for r in results
            if r["conditions"][condition][outcome] is not None and r["base"][outcome] is not None
        ]
    )


def paired_summarize(results, condition, outcome):
    s = summarize(vestige.preset("reference"), results, (condition,), 0)
    d = s["conditions"][condition][f"delta_{outcome}"]
    return d["mean"], d["low"], d["high"]


@pytest.mark.parametrize("right", [paired_right, paired_mean_ci, paired_scipy])
def test_ex4_accepts_other_methods_and_types(right):
    assert passes_everywhere("ex4", right)


@pytest.mark.parametrize(
    "wrong",
    [
        paired_unpaired,
        paired_with(lambda d: 1.96 * d.std(ddof=1) / math.sqrt(len(d))),  # z
        paired_with(
            lambda d: stats.t.ppf(0.975, len(d) - 1) * d.std() / math.sqrt(len(d))
        ),  # ddof 0
        paired_with(
            lambda d: stats.t.ppf(0.975, len(d)) * d.std(ddof=1) / math.sqrt(len(d))
        ),  # n dof
        paired_keeps_none,
        paired_every_seed,
        lambda r, c, o: (0.01, 0.0, 0.02),
    ],
)
def test_ex4_refuses_wrong_answers(wrong):
    assert fails_everywhere("ex4", wrong)


def test_ex4_refuses_the_kits_summarize():
    with pytest.raises(AnswerError, match="summarize"):
        many_seeds.capture_ex4(paired_summarize, many_seeds.context({}))


def test_ex4_says_how_wide_a_wrong_interval_is():
    z = paired_with(lambda d: 1.96 * d.std(ddof=1) / math.sqrt(len(d)))
    assert "times as wide as the paired t-interval" in verdict("ex4", z).message()


# --- ex5: detours in a training map -------------------------------------------------------------


def detours_by_pandas(paths):
    frame = pd.DataFrame(
        [(p["seed"], s) for p in paths for s in p["states"]], columns=["seed", "s"]
    )
    seeds = frame.groupby("s")["seed"].nunique()
    return np.array(seeds[seeds < frame["seed"].nunique()].index)


def detours_by_sets(paths):
    every = set.intersection(*(set(p["states"]) for p in paths))
    return {s for p in paths for s in p["states"]} - every


@pytest.mark.parametrize("right", [detours_right, detours_by_pandas, detours_by_sets])
def test_ex5_accepts_other_methods_and_types(right):
    assert passes_everywhere("ex5", right)


def _by_checkpoints(paths):  # counts checkpoints, not seeds
    visits = Counter(s for p in paths for s in p["states"])
    return sorted(s for s, n in visits.items() if n < len(paths))


@pytest.mark.parametrize(
    "wrong",
    [
        _by_checkpoints,
        lambda paths: sorted({s for p in paths for s in p["states"]}),  # every visited state
        lambda paths: sorted(set.intersection(*(set(p["states"]) for p in paths))),  # the road
        lambda paths: sorted(  # visited by one seed only
            s for s, n in Counter(s for p in paths for s in set(p["states"])).items() if n == 1
        ),
        lambda paths: [],
    ],
)
def test_ex5_refuses_wrong_answers(wrong):
    assert fails_everywhere("ex5", wrong)


def test_ex5_agrees_with_the_maps_own_detours():
    """The reference is the kit's rule: a TrainingMap holding the test paths as its Viterbi
    states names the same detour states."""
    from vestige.maps import TrainingMap

    for case in many_seeds.make_maps(np.random.default_rng(3)):
        states = pd.DataFrame(
            [(p["seed"], i, s) for p in case["paths"] for i, s in enumerate(p["states"])],
            columns=["seed", "step", "state"],
        )
        fitted = TrainingMap(
            n_states=6,
            columns=[],
            selection=pd.DataFrame(),
            states=states,
            transmat=np.eye(6),
            startprob=np.full(6, 1 / 6),
            means=pd.DataFrame(),
            fit_seeds=[],
            held_out_seeds=[],
            seed=0,
        )
        assert many_seeds.reference_detours(case["paths"]) == fitted.detour_states()


# --- the framework's side ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exercise, function",
    [
        ("ex1", lambda t: type("A", (), {"__eq__": lambda s, o: True})()),
        (
            "ex2",
            lambda x, y, r: type("A", (), {"__eq__": lambda s, o: True, "__len__": lambda s: 3})(),
        ),
        ("ex4", lambda *a: {"mean": True, "low": 0, "high": 1}),
    ],
)
def test_always_equal_results_are_refused(exercise, function):
    assert not verdict(exercise, function).passed


def test_hidden_inputs_cover_every_case_and_carry_no_answer():
    one = many_seeds.hidden_inputs({}, np.random.default_rng(1))
    assert [c["case"] for c in one["timelines"]] == list(many_seeds.TIMELINE_CASES)
    assert sorted(c["case"] for c in one["records"]) == sorted(
        c for c, *_ in many_seeds.RECORD_CASES
    )
    assert all("coincides_with" not in c["record"]["mechanism"] for c in one["records"])


def test_the_made_up_records_have_the_studys_outcomes_and_transitions():
    from vestige.study import OUTCOMES

    one = many_seeds.hidden_inputs({}, np.random.default_rng(1))
    record = one["records"][0]["record"]
    assert list(record["base"]) == list(OUTCOMES)
    assert list(record["mechanism"]["transitions"]) == ["copy", *many_seeds.reference_stages()]
    assert [p["step"] for p in record["timeline"]] == vestige.preset("reference").checkpoint_steps


# --- grading in the sandbox ----------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
STUB = 'raise NotImplementedError("Exercise: replace this line with your code")'


def submission(edits: dict[str, tuple[str, str]] = ()) -> dict:
    """The learner notebook with the reference solutions filled in, then `edits`: {a text in
    the solution cell: (old, new)}."""
    learner = json.loads((REPO / "notebooks/40_many_seeds.ipynb").read_text())
    solution = {
        c["id"]: "".join(c["source"])
        for c in json.loads((REPO / "course/solutions/40_many_seeds.ipynb").read_text())["cells"]
    }
    for cell in learner["cells"]:
        if STUB in "".join(cell["source"]):
            cell["source"] = solution[cell["id"]]
            for marker, (old, new) in dict(edits).items():
                if marker in cell["source"]:
                    assert old in cell["source"], (marker, old)
                    cell["source"] = cell["source"].replace(old, new)
    return learner


@pytest.mark.slow
def test_many_seeds_submissions_are_graded_in_the_sandbox(study, tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    cheats = {
        "ada": submission(),
        # the study's own fields and numbers instead of a computation, a printed interval
        "bea": submission(
            {
                "def settled_with": (
                    "    steps = sorted(",
                    "    return result['mechanism']['coincides_with']\n    steps = sorted(",
                ),
                "def paired_difference": (
                    "    deltas = []",
                    (
                        "    d = summary['conditions'][condition]"
                        "['delta_' + outcome]\n    return d['mean'], d['low'], d['high']"
                    ),
                ),
                "def rank_correlation_ci": (
                    "    def spearman(a, b):",
                    "    return 0.12, -0.45, 0.61\n\n    def spearman(a, b):",
                ),
                "def detour_states": (
                    "    from collections import Counter",
                    "    return training_map['detour_states']\n    from collections import Counter",
                ),
            }
        ),
    }
    for name, nb in cheats.items():
        (subs / f"{name}_40_many_seeds.ipynb").write_text(json.dumps(nb))
    gradebook = grade(
        subs,
        manifest=REPO / "course/solutions/manifest.json",
        salt="seeds",
        data={"study": str(study)},
        parameters={"study_dir": "/data/study"},
        limits=Limits(wall_seconds=300, memory_bytes=2 << 30),
    )
    rows = {r["student"]: r for r in gradebook.to_dict("records")}
    points = json.loads((REPO / "course/solutions/exercises.json").read_text())["40_many_seeds"]
    total = sum(points.values())
    assert [rows["ada"][k] for k in ("points", "max_points", "reason")] == [total, total, ""]
    assert json.loads(rows["ada"]["grading"])["study_dir"] == "/data/study"
    exercises = sorted(e for e in points if e != "predict")
    assert [rows["bea"][e] for e in exercises] == ["passed"] + ["failed"] * 4
    assert rows["bea"]["predict"] == "passed"  # any option is a prediction
    assert rows["bea"]["points"] == points["ex1"] + points["predict"]
