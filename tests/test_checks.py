"""One suite over every checks module in `checks.REGISTRY`, as scikit-learn's
`parametrize_with_checks` runs one suite over every estimator.

For every registered notebook and each of its exercises: the reference answer
(`answers.CASES`) passes in a learner's kernel and when graded (captured as plain data on
hidden inputs that went through a file, judged by the grader's judge step), an unsolved stub
reads as not attempted, hidden inputs differ per submission and survive the plain-data round
trip, the hint ladder climbs, and malformed data gets a verdict. What is particular to one
module (its typical wrong answers, right answers written another way) is in its own file.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from answers import CASES
from vestige.course import Checker, checker, checks, judge, plain
from vestige.course.checks import AnswerError, Verdict

MODULES = {notebook: checks.load(notebook) for notebook in checks.REGISTRY}
EXERCISES = [(nb, ex) for nb, module in MODULES.items() for ex in module.exercises]
HIDDEN = [nb for nb, module in MODULES.items() if hasattr(module.module, "hidden_inputs")]
LADDERS = [(nb, ex) for nb, ex in EXERCISES if MODULES[nb].exercises[ex].hints]
#: captured data no exercise should take for an answer (what a forged capture file can hold)
FORGED = [
    "passed",
    True,
    None,
    [],
    {},
    [1, 2],
    [[0.3]],
    [[[]]],
    {"rho": 1},
    {"status": "passed"},
    [None] * 8,
    [{"error": "x"}] * 8,
    ["x"] * 8,
    "x" * 1000,
    np.zeros((2, 2)),
]


@pytest.fixture
def params(course_runs, request):
    """The Checker parameters of a learner's kernel on the test runs, for the test's notebook."""
    return CASES[request.node.callspec.params["notebook"]].params(course_runs)


@pytest.fixture(autouse=True)
def fresh_kernel(monkeypatch):
    """Each test is a fresh kernel: no failed attempts counted yet."""
    monkeypatch.setattr(checker, "_ATTEMPTS", Counter())


def reference(notebook: str, exercise: str, params: dict):
    return CASES[notebook].answers[exercise](params)


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise: replace this line with your code")


def unsolved(kind: str):
    """What a check cell hands over while the learner's cell still raises the stub's error:
    the stub function itself, or a lambda over a name never defined."""
    return stub if kind == "function" else lambda: never_defined  # noqa: F821


def wrong(kind: str):
    """An answer of a type no exercise takes."""
    return (lambda *args: object()) if kind == "function" else lambda: object()


def graded(notebook: str, params: dict, hidden, answers: dict, tmp_path, monkeypatch):
    """(statuses, messages, flags) as the grader sees them: the hidden inputs written as
    plain data and read back by the Checker in grading mode, which captures the answers to
    files; the grader's judge step then judges those against the hidden inputs it made."""
    inputs, capture = tmp_path / "in", tmp_path / "capture"
    inputs.mkdir()
    monkeypatch.setenv(checker.GRADING_DIR_ENV, str(capture))
    if hidden is not None:
        plain.dump(inputs, "hidden", {"hidden": hidden})
        monkeypatch.setenv(checker.GRADING_HIDDEN_ENV, str(inputs / "hidden"))
    check = Checker(notebook, **params)
    for exercise, answer in answers.items():
        check(exercise, answer)
    assert {r["status"] for r in check.results.values()} == {"captured"}
    monkeypatch.delenv(checker.GRADING_DIR_ENV)
    return judge.judge(list(answers), MODULES[notebook], capture, params, hidden)


def text(data) -> str:
    """Plain data as one string (arrays by their bytes), to compare what JSON cannot."""
    structure, arrays = plain.encode(data)
    return json.dumps(structure, sort_keys=True) + "|".join(a.tobytes().hex() for a in arrays)


def test_every_registered_notebook_has_a_reference_answer_to_each_exercise():
    assert set(CASES) == set(checks.REGISTRY)
    for notebook, module in MODULES.items():
        assert set(CASES[notebook].answers) == set(module.exercises), notebook


@pytest.mark.parametrize("notebook, exercise", EXERCISES)
def test_the_reference_answer_passes_in_a_learners_kernel(notebook, exercise, params):
    check = Checker(notebook, strict=True, **params)
    check(exercise, reference(notebook, exercise, params))
    result = check.results[exercise]
    assert result["status"] == "passed"
    assert result["points"] == result["max_points"] == MODULES[notebook].exercises[exercise].points


@pytest.mark.parametrize("notebook", list(MODULES))
def test_the_reference_answers_pass_when_graded(notebook, params, tmp_path, monkeypatch):
    module = MODULES[notebook]
    hidden = module.hidden_inputs(params, np.random.default_rng(1))
    answers = {ex: reference(notebook, ex, params) for ex in module.exercises}
    statuses, messages, flags = graded(notebook, params, hidden, answers, tmp_path, monkeypatch)
    assert statuses == dict.fromkeys(answers, "passed"), messages
    assert flags == []


@pytest.mark.parametrize("notebook, exercise", EXERCISES)
def test_an_unsolved_stub_reads_as_not_attempted(notebook, exercise, params, tmp_path, monkeypatch):
    kind = MODULES[notebook].exercises[exercise].kind
    check = Checker(notebook, strict=False, **params)
    check(exercise, unsolved(kind))
    result = check.results[exercise]
    assert result["status"] == "not_attempted" and result["points"] == 0
    assert "Replace the `raise NotImplementedError(...)` line" in result["message"]
    statuses, _, flags = graded(
        notebook, params, None, {exercise: unsolved(kind)}, tmp_path, monkeypatch
    )
    assert statuses == {exercise: "not_attempted"} and flags == []


@pytest.mark.parametrize("notebook", HIDDEN)
def test_hidden_inputs_differ_per_submission_and_survive_the_plain_data_round_trip(
    notebook, params
):
    module = MODULES[notebook]
    one, two, again = (
        module.hidden_inputs(params, np.random.default_rng(seed)) for seed in (1, 2, 1)
    )
    assert text(one) != text(two)
    assert text(again) == text(one)  # the grader's salt reproduces them
    assert text(plain.roundtrip(one)) == text(one)
    # What the learner's functions run on changes with the submission, and is not what they
    # practised on. (On the tiny test runs some choices have few candidates, e.g. two neurons
    # to ablate, so one exercise's hidden inputs can repeat its practice ones; not all can.)
    functions = [ex for ex in module.exercises.values() if ex.kind == "function"]
    assert functions, f"{notebook} has hidden inputs but no function exercise"
    submissions = [
        plain.roundtrip(module.hidden_inputs(params, np.random.default_rng(seed)))
        for seed in range(1, 5)
    ]
    unlike_practice = 0
    for exercise in functions:
        answer = reference(notebook, exercise.id, params)
        practice, *graded_on = (
            text(exercise.capture(answer, module.context(params, hidden)))
            for hidden in (None, *submissions)
        )
        assert len({practice, *graded_on}) > 1, exercise.id
        unlike_practice += practice not in graded_on
    assert unlike_practice > 0


@pytest.mark.parametrize("notebook, exercise", LADDERS)
def test_the_hint_ladder_climbs(notebook, exercise, params):
    hints = MODULES[notebook].exercises[exercise].hints
    kind = MODULES[notebook].exercises[exercise].kind
    check = Checker(notebook, strict=False, **params)
    shown = []
    for _ in range(len(hints) + 1):
        check(exercise, wrong(kind))
        result = check.results[exercise]
        assert result["status"] == "failed" and result["points"] == 0
        shown.append(result["message"].rsplit("Hint: ", 1)[-1])
    assert shown == [*hints, hints[-1]]  # one more specific hint per attempt, then the last
    check(exercise, reference(notebook, exercise, params))
    assert check.results[exercise]["status"] == "passed"


@pytest.mark.parametrize("notebook, exercise", EXERCISES)
def test_malformed_data_gets_a_verdict(notebook, exercise, params):
    """A forged capture is refused (AnswerError: "malformed capture") or fails; it never
    passes and never crashes the judge."""
    module = MODULES[notebook]
    judge_it = module.exercises[exercise].judge
    ctx = module.context(params, None)
    for forged in FORGED:
        try:
            verdict = judge_it(plain.roundtrip(forged), ctx)
        except AnswerError:
            continue
        assert isinstance(verdict, Verdict) and not verdict.passed, forged


PREDICTIONS = [(nb, ex) for nb, ex in EXERCISES if ex == "predict"]


@pytest.mark.parametrize("notebook, exercise", PREDICTIONS)
def test_a_prediction_passes_for_every_option_and_says_what_the_run_shows(
    notebook, exercise, params
):
    """Every listed option is recorded and passes, with feedback naming the option the run
    bears out (the same for every guess); anything else is refused, listing the options."""
    module = MODULES[notebook]
    ex = module.exercises[exercise]
    ctx = module.context(params, None)
    assert ex.options
    shown = set()
    for option in ex.options:
        verdict_ = ex.judge(plain.roundtrip(ex.capture(option, ctx)), ctx)
        assert verdict_.passed and f"You predicted {option!r}" in verdict_.note
        shown.add(verdict_.note.split("the data show ", 1)[1].split(":", 1)[0])
    assert len(shown) == 1 and shown.pop().strip("'") in ex.options
    for bad in ("", "LATER", "none of these", 1, ["later"]):
        with pytest.raises(AnswerError, match="option|one of"):
            ex.capture(bad, ctx)
    broken = module.context(
        {**params, "runs_dir": "/nonexistent", "study_dir": "/nonexistent"}, None
    )
    still = ex.judge(ex.options[0], broken)  # no data to compare with: recorded all the same
    assert still.passed and ("could not be read" in still.note or "not at hand" in still.note)


# --- grading on other seeds than the notebook's -------------------------------------------------

ON_SETS = [nb for nb, module in MODULES.items() if hasattr(module.module, "GRADING_SETS")]


def own_parameters(notebook: str) -> dict:
    """The defaults of the learner notebook's parameters cell."""
    nb = json.loads((Path(__file__).parents[1] / "notebooks" / f"{notebook}.ipynb").read_text())
    (cell,) = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    values: dict = {}
    exec("".join(cell["source"]), {}, values)
    return values


def seeds_of(parameters: dict) -> set[int]:
    return {int(parameters["seed"])} if "seed" in parameters else set(parameters.get("seeds", ()))


def fake_precomputed(root: Path, seeds: set[int]) -> None:
    """What `grading_parameters` looks for, for `seeds`: an analysed run and its forks."""
    from vestige.runs import config_path, manifest_path, seed_dir

    for seed in seeds:
        for path in (
            manifest_path(seed_dir(root / checks.COURSE_PRESET, seed)),
            config_path(seed_dir(root / "forks" / checks.COURSE_PRESET, seed) / "hold-control"),
        ):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}")


@pytest.mark.parametrize("notebook", ON_SETS)
def test_a_submission_is_never_graded_on_its_notebooks_own_seeds(notebook, tmp_path):
    module = MODULES[notebook].module
    own = seeds_of(own_parameters(notebook))
    assert own, "the notebook's parameters name no seed"
    declared = [seeds_of(s) for s in module.GRADING_SETS]
    assert declared and not any(s & own for s in declared)
    with pytest.raises(FileNotFoundError, match="make runs"):
        module.grading_parameters(tmp_path, np.random.default_rng(0))
    fake_precomputed(tmp_path, own)  # the notebook's own runs alone are not enough
    with pytest.raises(FileNotFoundError, match="make runs"):
        module.grading_parameters(tmp_path, np.random.default_rng(0))
    fake_precomputed(tmp_path, set().union(*declared))
    chosen = [
        seeds_of(module.grading_parameters(tmp_path, np.random.default_rng(s))) for s in range(30)
    ]
    assert {frozenset(c) for c in chosen} == {frozenset(s) for s in declared}
