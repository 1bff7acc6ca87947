"""Grading by re-execution in a sandbox, against a hostile class.

A small sample course (``10_sample``, no torch: each submission runs in a few seconds) with
its checks module in a temp dir: ex1 a value that depends on the run's seed, ex2 a function
checked on hidden inputs, ex3 a word. The hostile set: forged outputs, forged captures,
rebinding ``check``, appended and edited check cells, an always-equal object, another
course's notebook, a constant pasted from the learner's own seed, malformed files, a FIFO,
a huge file, hostile names, resubmissions, a submission that tries to get out of its
sandbox, one that runs forever, one that eats memory.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from vestige.course import (
    MIME_TYPE,
    Checker,
    CheckFailed,
    build,
    copies,
    execute,
    grade,
    grade_to_csv,
    gradebook,
    intake,
    judge,
    parameters,
    plain,
    prepare,
    resubmissions,
    sandbox,
    survey,
)
from vestige.course import checks as checks_registry
from vestige.course.checks import AnswerError, as_array, as_number, as_text, call_each, unwrap
from vestige.course.gradebook import neutralise
from vestige.course.scan import scan_code

SAMPLE = '''\
# %% [markdown]
# # Sample
# Numbers from the run, squares, a word.

# %% tags=["parameters"]
student = ""
seed = 0
runs_dir = "runs"

# %%
import json
from pathlib import Path

from vestige.course import Checker

# %% tags=["check"]
check = Checker("10_sample", runs_dir=runs_dir, seed=seed)

# %%
numbers = json.loads((Path(runs_dir) / f"seed-{seed}.json").read_text())
### BEGIN SOLUTION
total = sum(numbers)
### END SOLUTION

# %% tags=["check"]
check("ex1", lambda: total)


# %%
def square(x):
    """Return x squared."""
    ### BEGIN SOLUTION
    return x * x
    ### END SOLUTION


# %% tags=["check"]
check("ex2", square)

# %%
### BEGIN SOLUTION
word = "Better"
### END SOLUTION

# %% tags=["check"]
check("ex3", lambda: word)
'''

SAMPLE_CHECKS = '''\
"""Checks of the sample notebook (a checks module outside the package)."""
import json
from pathlib import Path

from vestige.course.checks import (AnswerError, Exercise, Verdict, as_number, as_text,
                                   call_each, close)

NOTEBOOK = "10_sample"


class Context:
    def __init__(self, params, hidden):
        self.runs_dir = Path(str(params.get("runs_dir", "runs")))
        self.seed = int(params.get("seed", 0))
        self.hidden = hidden

    @property
    def numbers(self):
        return json.loads((self.runs_dir / f"seed-{self.seed}.json").read_text())

    @property
    def inputs(self):
        return list(self.hidden["xs"]) if self.hidden else [1.5, -2.0, 3.0]


def context(params, hidden=None):
    return Context(params, hidden)


def grading_parameters(runs_dir, rng):
    seeds = sorted(int(p.stem.split("-")[1]) for p in Path(runs_dir).glob("seed-*.json"))
    others = [s for s in seeds if s != 0] or seeds
    return {"seed": others[int(rng.integers(len(others)))]}


def hidden_inputs(params, rng):
    return {"xs": [round(float(x), 3) for x in rng.uniform(-10, 10, 5)]}


def judge_ex1(got, ctx):
    if type(got) is not float:
        raise AnswerError("not a number")
    want = float(sum(ctx.numbers))
    if close(got, want, 1e-9):
        return Verdict(True)
    return Verdict(False, "the sum of `numbers`", f"{got:g}")


def judge_ex2(got, ctx):
    wrong = [x for x, y in zip(ctx.inputs, got) if isinstance(y, dict) or not close(y, x * x, 1e-9, 1e-9)]
    if len(got) == len(ctx.inputs) and not wrong:
        return Verdict(True)
    return Verdict(False, "x * x for every test input", f"a wrong result for {len(wrong)} of them")


def judge_ex3(got, ctx):
    return Verdict(got.strip().casefold() == "better", "one of the words in the question")


EXERCISES = (
    Exercise("ex1", 2, capture=lambda a, ctx: as_number(a), judge=judge_ex1,
             hints=("Add the numbers up.", "sum(numbers)")),
    Exercise("ex2", 1, kind="function", judge=judge_ex2,
             capture=lambda f, ctx: call_each(f, [(x,) for x in ctx.inputs], as_number),
             hints=("Multiply x by itself.",)),
    Exercise("ex3", 3, capture=lambda a, ctx: as_text(a), judge=judge_ex3),
)
'''

STUB = 'raise NotImplementedError("Exercise: replace this line with your code")'
NUMBERS = {0: [1, 2, 3], 1: [10, 20, 5], 2: [7, 7, 7, 7]}
# the learner notebook's solution cells, by id: (cell-4) total, (cell-6) square, (cell-8) word
HONEST = {"cell-4": "total = sum(numbers)", "cell-6": "return x * x", "cell-8": 'word = "better"'}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The sample course, built, with its runs (one JSON of numbers per seed)."""
    root = tmp_path_factory.mktemp("sample-course")
    (root / "course").mkdir()
    (root / "course/10_sample.py").write_text(SAMPLE)
    (root / "checks").mkdir()
    (root / "checks/sample_checks.py").write_text(SAMPLE_CHECKS)
    (root / "runs").mkdir()
    for seed, numbers in NUMBERS.items():
        (root / f"runs/seed-{seed}.json").write_text(json.dumps(numbers))
    with pytest.MonkeyPatch.context() as mp:
        _register(mp, root)
        problems = build(root / "course", root / "notebooks", root / "course/solutions")
    assert problems == []
    return root


def _register(mp, root: Path) -> None:
    mp.syspath_prepend(str(root / "checks"))
    mp.setenv(checks_registry.MODULES_ENV, json.dumps({"10_sample": "sample_checks"}))
    mp.setenv("PYTHONPATH", str(root / "checks"))


@pytest.fixture
def course(sample, monkeypatch):
    _register(monkeypatch, sample)
    return sample


def learner(course: Path) -> dict:
    return json.loads((course / "notebooks/10_sample.ipynb").read_text())


def solve(nb: dict, answers: dict[str, str]) -> dict:
    """The learner notebook with the stub of cell ``id`` replaced by ``answers[id]``."""
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["id"] in answers:
            assert STUB in source
            source = source.replace(STUB, answers[cell["id"]])
        cell["source"] = source
    return nb


def write(path: Path, nb: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb))
    return path


def add_cell(nb: dict, after_id: str | None, source: str, cell_type="code", **extra) -> dict:
    nb = copy.deepcopy(nb)
    cell = {
        "cell_type": cell_type,
        "id": extra.pop("id", f"x{len(nb['cells'])}"),
        "metadata": extra.pop("metadata", {}),
        "source": source,
    }
    if cell_type == "code":
        cell.update(outputs=extra.pop("outputs", []), execution_count=None)
    index = (
        len(nb["cells"])
        if after_id is None
        else next(i for i, c in enumerate(nb["cells"]) if c["id"] == after_id) + 1
    )
    nb["cells"].insert(index, cell)
    return nb


def rows_by_student(gradebook: pd.DataFrame) -> dict:
    return {r["student"]: r for r in gradebook.to_dict("records")}


def run_grade(course: Path, subs, **options):
    options.setdefault("limits", sandbox.Limits(wall_seconds=120, memory_bytes=1536 << 20))
    return grade(
        subs,
        manifest=course / "course/solutions/manifest.json",
        runs=course / "runs",
        salt="test",
        **options,
    )


# --- build stamps and manifest -----------------------------------------------------------------


def test_build_stamps_notebooks_and_writes_the_manifest(course):
    nb = learner(course)
    stamp = nb["metadata"]["vestige"]
    manifest = json.loads((course / "course/solutions/manifest.json").read_text())
    entry = manifest["notebooks"]["10_sample"]
    assert manifest["course"] == stamp["course"] == "vestige"
    assert stamp["build"] == entry["build"] and len(stamp["build"]) == 16
    solution = json.loads((course / "course/solutions/10_sample.ipynb").read_text())
    assert solution["metadata"]["vestige"]["build"] == stamp["build"]
    checks = [c for c in nb["cells"] if "check" in c["metadata"].get("tags", [])]
    assert [c["id"] for c in checks] == ["check-setup", "check-ex1", "check-ex2", "check-ex3"]
    assert all(
        c["metadata"]["editable"] is False and c["metadata"]["deletable"] is False for c in checks
    )
    for cell in checks:
        assert entry["check_cells"][cell["id"]]["sha256"] == prepare.sha256("".join(cell["source"]))
        assert "sum(" not in "".join(cell["source"]) and "x * x" not in "".join(cell["source"])
    assert entry["exercises"] == {"ex1": 2, "ex2": 1, "ex3": 3}
    assert entry["api"] == "checks" and entry["checks_module"] == "sample_checks"
    assert entry["parameters"] == ["student", "seed", "runs_dir"]
    assert entry["cells"] == [c["id"] for c in nb["cells"]]
    assert (
        json.loads((course / "course/solutions/exercises.json").read_text())["10_sample"]
        == entry["exercises"]
    )
    # the stamp changes with the source, and a rebuild is byte-identical
    assert (
        build(course / "course", course / "notebooks", course / "course/solutions", check=True)
        == []
    )


@pytest.mark.parametrize(
    "edit, message",
    [
        (('# %% tags=["check"]\ncheck("ex1"', '# %%\ncheck("ex1"'), "tag it 'check'"),
        (
            ('check("ex3", lambda: word)', 'check("ex3", lambda: word, points=5)'),
            "belong in the checks module",
        ),
        (
            ('check("ex3", lambda: word)', 'check("ex4", lambda: word)'),
            "'ex4' is not in the checks module",
        ),
        (('check("ex3", lambda: word)', "pass"), "tagged 'check' but neither"),
        (
            ('check("ex3", lambda: word)', 'check("ex2", lambda: word)'),
            "'ex2' is checked more than once",
        ),
        (('# %% tags=["check"]\ncheck("ex3", lambda: word)', "# %%\n1"), "no check cell for ex3"),
        (
            ("# %%\n### BEGIN SOLUTION\nword", '# %% tags=["check"]\n### BEGIN SOLUTION\nword'),
            "cannot hold a solution",
        ),
    ],
)
def test_broken_check_cells_are_build_problems(course, tmp_path, edit, message):
    (tmp_path / "course").mkdir()
    source = SAMPLE.replace(*edit)
    assert source != SAMPLE
    (tmp_path / "course/10_sample.py").write_text(source)
    [problem] = build(tmp_path / "course", tmp_path / "nb", tmp_path / "sol")
    assert message in problem


# --- checks: capture refuses what it cannot trust -------------------------------------------


class AlwaysEqual:
    def __eq__(self, other):
        return True

    __ne__ = lambda self, other: False
    __lt__ = __le__ = __gt__ = __ge__ = __eq__
    __hash__ = object.__hash__

    def __float__(self):
        return 6.0

    def __abs__(self):
        return 0.0

    def __sub__(self, other):
        return 0.0

    __rsub__ = __sub__


class SneakyFloat(float):
    def __eq__(self, other):
        return True

    __hash__ = float.__hash__


def test_capture_converts_only_known_types():
    import torch

    assert as_number(np.float32(1.25)) == 1.25 and type(as_number(np.float32(1.25))) is float
    assert as_number(torch.tensor(2.5)) == 2.5 and as_number(torch.tensor([3])) == 3.0
    assert as_number(np.array([[4.0]])) == 4.0 and as_number(7) == 7.0
    for bad in (
        AlwaysEqual(),
        SneakyFloat(6.0),
        True,
        np.bool_(True),
        "6",
        [6.0],
        None,
        pd.Series([6.0]),
        torch.tensor([1.0, 2.0]),
        np.array(["6"]),
    ):
        with pytest.raises(AnswerError):
            as_number(bad)
    with pytest.raises(AnswerError, match="pandas"):
        as_number(pd.Series([6.0]))
    assert as_array([[1, 2], [3, 4]]).dtype == np.float64
    assert as_array(torch.ones(2, dtype=torch.float16)).tolist() == [1.0, 1.0]
    with pytest.raises(AnswerError):
        as_array([AlwaysEqual()])
    with pytest.raises(AnswerError):
        as_array(np.array([object()]))

    class Text(str):
        def __eq__(self, other):
            return True

        __hash__ = str.__hash__

    assert type(as_text(Text("worse"))) is str and as_text(Text("worse")) == "worse"
    assert as_text(np.str_("better")) == "better"
    with pytest.raises(AnswerError):
        as_text(AlwaysEqual())


def test_unwrap_and_call_each():
    from vestige.course.checks import NotAttempted

    with pytest.raises(NotAttempted):
        unwrap(lambda: undefined_answer)  # noqa: F821
    with pytest.raises(NotAttempted):
        unwrap(lambda: _stub())
    with pytest.raises(NameError):  # a bug inside the learner's own function is not "not attempted"
        unwrap(lambda: _buggy())
    assert unwrap(lambda: 3) == 3 and unwrap(5) == 5
    square = lambda x: x * x
    assert unwrap(square, "function") is square
    assert unwrap(lambda: square, "function") is square
    results = call_each(lambda x: 1 / x if x else "zero", [(2,), (0,), (-1,)], as_number)
    assert results[0] == 0.5 and results[2] == -1.0 and "unusable result" in results[1]["error"]
    assert "ZeroDivisionError" in call_each(lambda x: 1 / x, [(0,)], as_number)[0]["error"]
    with pytest.raises(NotAttempted):
        call_each(lambda x: _stub(), [(1,)], as_number)


def _stub():
    raise NotImplementedError("Exercise")


def _buggy():
    return oops  # noqa: F821


def test_plain_data_roundtrip_and_hostile_capture_files(tmp_path):
    payload = {
        "exercise": "ex1",
        "status": "captured",
        "detail": "",
        "data": [1.5, {"a": np.arange(6, dtype=np.float32).reshape(2, 3)}, "x", None, float("nan")],
    }
    plain.dump(tmp_path, "ex1", payload)
    loaded = plain.load(tmp_path, "ex1")
    assert loaded["data"][1]["a"].tolist() == [[0, 1, 2], [3, 4, 5]] and np.isnan(loaded["data"][4])
    assert plain.load(tmp_path, "ex9") is None
    with pytest.raises(plain.PlainDataError):
        plain.dump(tmp_path, "ex2", {"data": AlwaysEqual()})
    with pytest.raises(plain.PlainDataError):
        plain.dump(tmp_path, "ex2", {"data": np.array([object()])})
    with pytest.raises(plain.PlainDataError):
        plain.dump(tmp_path, "../ex2", {"data": 1})
    # what a hostile kernel could leave in the capture folder
    os.symlink("/etc/passwd", tmp_path / "ex3.json")
    os.mkfifo(tmp_path / "ex4.json")
    (tmp_path / "ex5.json").write_text("[" * 100_000)
    (tmp_path / "ex6.json").write_text(json.dumps({"format": 1, "arrays": 1, "payload": {}}))
    np.save(tmp_path / "ex6.0.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "ex7.json").write_bytes(b"0" * (plain.MAX_JSON_BYTES + 1))
    for name, message in [
        ("ex3", "symlink"),
        ("ex4", "not a regular file"),
        ("ex5", "nested too deeply"),
        ("ex6", "numeric"),
        ("ex7", "cap"),
    ]:
        with pytest.raises(plain.PlainDataError, match=message):
            plain.load(tmp_path, name)


def test_checker_in_learner_mode_judges_and_climbs_the_hint_ladder(course, capsys):
    check = Checker("10_sample", strict=False, runs_dir=str(course / "runs"), seed=1)
    total = 35
    check("ex1", lambda: undefined_total)  # noqa: F821
    assert check.results["ex1"]["status"] == "not_attempted"
    check("ex1", lambda: 34)
    first = check.results["ex1"]["message"]
    check("ex1", lambda: 34.5)
    second = check.results["ex1"]["message"]
    assert first.startswith(
        "❌ ex1: not passing yet (0/2 points). Expected the sum of `numbers`; got 34."
    )
    assert first.endswith("Hint: Add the numbers up.") and second.endswith("Hint: sum(numbers)")
    check("ex1", lambda: total)
    assert check.results["ex1"]["status"] == "passed" and check.results["ex1"]["points"] == 2
    check("ex1", AlwaysEqual())
    assert "expected a number, got" in check.results["ex1"]["message"]
    check("ex2", lambda x: x * x)
    check("ex3", lambda: np.str_("BETTER "))
    assert check.results["ex2"]["passed"] and check.results["ex3"]["passed"]
    check("ex2", lambda x: _stub())
    assert check.results["ex2"]["status"] == "not_attempted"
    check("ex2", lambda x: 1.0)
    assert "a wrong result for 3 of them" in check.results["ex2"]["message"]
    with pytest.raises(TypeError, match="set in the checks module"):
        check("ex3", lambda: "better", points=10)
    strict = Checker("10_sample", strict=True, runs_dir=str(course / "runs"), seed=0)
    with pytest.raises(CheckFailed):
        strict("ex1", lambda: 7)
    assert "❌ ex1" in capsys.readouterr().out


def test_checker_in_grading_mode_writes_plain_data_only(course, tmp_path, monkeypatch):
    monkeypatch.setenv("VESTIGE_GRADING_DIR", str(tmp_path / "capture"))
    monkeypatch.setenv("VESTIGE_STRICT_CHECKS", "1")  # ignored while grading
    check = Checker("10_sample", runs_dir=str(course / "runs"), seed=0)
    check("ex1", lambda: np.float32(6))
    check("ex2", lambda x: x * x)
    check("ex3", AlwaysEqual())
    assert {r["status"] for r in check.results.values()} == {"captured"}
    assert sorted(p.name for p in (tmp_path / "capture").iterdir()) == [
        "ex1.json",
        "ex2.json",
        "ex3.json",
    ]
    ex1 = plain.load(tmp_path / "capture", "ex1")
    assert ex1 == {"exercise": "ex1", "status": "captured", "detail": "", "data": 6.0}
    assert plain.load(tmp_path / "capture", "ex2")["data"] == [2.25, 4.0, 9.0]
    ex3 = plain.load(tmp_path / "capture", "ex3")
    assert (
        ex3["status"] == "failed" and "expected a string" in ex3["detail"] and ex3["data"] is None
    )


# --- intake --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, student, resubmission",
    [
        ("frank_10_sample (1).ipynb", "frank", 1),
        ("Frank_10_sample(2).ipynb", "frank", 2),
        ("frank_10_sample - Copy.ipynb", "frank", 1),
        ("Grace.ipynb", "grace", 0),
        ("GRACE HOPPER_10_sample.ipynb", "grace_hopper", 0),
        ("ＧＲＡＣＥ_10_sample.ipynb", "grace", 0),
        ("--exercises=x.ipynb", "exercises=x", 0),
        ('=HYPERLINK("x";1)_10_sample.ipynb', '=hyperlink("x";1)', 0),
        ("al\u200bice\n_10_sample.ipynb", "alice", 0),
    ],
)
def test_student_names_come_from_the_file_name(path, student, resubmission):
    assert intake.student_of(Path("subs") / path, Path("subs"), ["10_sample"]) == (
        student,
        "file name",
        resubmission,
    )


def test_student_names_come_from_the_folder_first():
    assert intake.student_of(
        Path("subs/Grace/work/alice_10_sample.ipynb"), Path("subs"), ["10_sample"]
    ) == ("grace", "folder", 0)
    assert intake.student_of(Path("subs/bob/10_sample.ipynb"), None, ["10_sample"])[0] == "bob"


def test_formula_injection_is_neutralised():
    for value in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", " =1"):
        assert neutralise(value).startswith("'")
    assert neutralise("alice") == "alice" and neutralise(3) == 3


# --- grading: the hostile set ------------------------------------------------------------------


def forged_outputs(nb: dict) -> dict:
    """Outputs pasted from a solved notebook under every check cell (stubs left in)."""
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        if cell["id"].startswith("check-ex"):
            exercise = cell["id"].removeprefix("check-")
            result = {
                "notebook": "10_sample",
                "exercise": exercise,
                "points": 3,
                "max_points": 3,
                "passed": True,
                "status": "passed",
                "message": "passed",
            }
            cell["outputs"] = [
                {
                    "output_type": "display_data",
                    "metadata": {},
                    "data": {MIME_TYPE: result, "text/plain": "✅ passed"},
                }
            ]
            cell["execution_count"] = 1
    return nb


FORGE_CAPTURE = """\
import json, os
folder = os.environ.get("VESTIGE_GRADING_DIR", ".")
for name, data in {"ex1": 6.0, "ex3": "better"}.items():
    with open(os.path.join(folder, name + ".json"), "w") as f:
        json.dump({"format": 1, "arrays": 0, "payload": {"exercise": name, "status": "captured",
                   "detail": "", "data": data}}, f)
"""

ESCAPE = """\
import os, socket, pathlib
report = []
for target in {targets!r}:
    try:
        pathlib.Path(target).write_text("escaped")
        report.append("WROTE " + target)
    except OSError as exc:
        report.append(f"blocked {{target}}: {{type(exc).__name__}}")
for address in [("127.0.0.1", {port}), ("1.1.1.1", 80)]:
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect(address)
        report.append(f"CONNECTED {{address}}")
    except OSError as exc:
        report.append(f"no network {{address}}: {{exc}}")
    finally:
        s.close()
for path in {hidden!r}:
    report.append(f"visible {{path}}: {{os.path.exists(path)}}")
print("\\n".join(report))
"""


@pytest.mark.slow
def test_the_hostile_class(course, tmp_path):
    subs = tmp_path / "subs"
    base = learner(course)
    honest = solve(base, HONEST)
    write(subs / "alice_10_sample.ipynb", honest)
    # stored results are never read: forged outputs, also pasted into a markdown cell
    write(subs / "bob_10_sample.ipynb", forged_outputs(base))
    pasted = add_cell(
        base,
        "check-ex3",
        "✅ ex1: passed (2/2 points)\n\n<pre>{json}</pre>".format(
            json=json.dumps({MIME_TYPE: {"exercise": "ex1", "status": "passed", "points": 2}})
        ),
        "markdown",
    )
    write(subs / "carl_10_sample.ipynb", pasted)
    # rebinding check, forging the capture files, appended and edited check cells
    write(
        subs / "dora_10_sample.ipynb", add_cell(base, "check-setup", "check = lambda *a, **k: None")
    )
    write(subs / "ed_10_sample.ipynb", add_cell(base, "check-setup", FORGE_CAPTURE))
    appended = add_cell(
        add_cell(base, None, 'check("ex1", lambda: True)'),
        None,
        'check("ex3", lambda: "better")\ncheck("ex2", lambda x: True)',
        metadata={"tags": ["check"]},
    )
    write(subs / "fay_10_sample.ipynb", appended)
    edited = copy.deepcopy(honest)
    edited["cells"] = [c for c in edited["cells"] if c["id"] != "check-ex2"]  # deleted
    for cell in edited["cells"]:
        if cell["id"] == "check-ex1":
            cell["source"] = 'check("ex1", lambda: 6.0)'
    edited = add_cell(
        edited,
        "check-ex3",
        "".join(next(c for c in base["cells"] if c["id"] == "check-ex3")["source"]),
        id="copied",
    )
    write(subs / "gus_10_sample.ipynb", edited)
    # an always-equal object; a constant pasted from the learner's own seed (0)
    always = solve(
        base,
        {
            **HONEST,
            "cell-4": (
                "class Total:\n    __eq__ = lambda s, o: True\n    __float__ = lambda s: 6.0\ntotal = Total()"
            ),
        },
    )
    write(subs / "hal_10_sample.ipynb", always)
    write(subs / "ivy_10_sample.ipynb", solve(base, {**HONEST, "cell-4": "total = 6"}))
    # another course's notebook reusing the id
    other = copy.deepcopy(honest)
    other["metadata"]["vestige"]["course"] = "another-course"
    write(subs / "jo_10_sample.ipynb", other)
    # the student parameter does not decide who it is
    claimed = copy.deepcopy(honest)
    for cell in claimed["cells"]:
        if cell["id"] == "cell-1":
            cell["source"] = 'student = "alice"\nseed = 0\nruns_dir = "runs"'
    write(subs / "kim_10_sample.ipynb", claimed)
    # a notebook of an older build of this course: graded, flagged
    older = copy.deepcopy(honest)
    older["metadata"]["vestige"]["build"] = "0123456789abcdef"
    write(subs / "lee_10_sample.ipynb", older)

    gradebook = run_grade(course, subs)
    rows = rows_by_student(gradebook)
    assert sorted(rows) == [
        "alice",
        "bob",
        "carl",
        "dora",
        "ed",
        "fay",
        "gus",
        "hal",
        "ivy",
        "jo",
        "kim",
        "lee",
    ]
    assert (rows["alice"]["points"], rows["alice"]["max_points"]) == (6, 6)
    assert [rows["alice"][e] for e in ("ex1", "ex2", "ex3")] == ["passed"] * 3
    assert json.loads(rows["alice"]["grading"])["seed"] in (1, 2)
    for cheat in ("bob", "carl", "dora", "fay"):
        assert rows[cheat]["points"] == 0, cheat
    assert rows["bob"]["ex1"] == "not_attempted" and rows["carl"]["ex1"] == "not_attempted"
    assert rows["dora"]["ex1"] == "not_run" and "rebinds check" in rows["dora"]["flags"]
    assert rows["ed"]["points"] == 0 and "touches the grading machinery" in rows["ed"]["flags"]
    assert rows["fay"]["flags"].count("extra check cell dropped") == 2
    # gus: the edited check restored (his honest answers count), the deleted one put back
    assert rows["gus"]["points"] == 6
    assert "edited check cell restored: check-ex1" in rows["gus"]["flags"]
    assert "missing check cell re-inserted: check-ex2" in rows["gus"]["flags"]
    assert "copy of check cell dropped: copied (copy of check-ex3)" in rows["gus"]["flags"]
    assert rows["hal"]["ex1"] == "failed" and rows["hal"]["points"] == 4
    assert rows["ivy"]["ex1"] == "failed" and rows["ivy"]["points"] == 4
    assert rows["jo"]["points"] == 0 and rows["jo"]["reason"].startswith("another course")
    assert rows["kim"]["points"] == 6 and "student parameter says 'alice'" in rows["kim"]["flags"]
    assert rows["lee"]["points"] == 6 and "another build: 0123456789abcdef" in rows["lee"]["flags"]
    # identical solution code is grouped for review
    assert "same code in cell-4 as: gus, kim, lee" in rows["alice"]["flags"]
    assert "same code in cell-6 as: gus, hal, ivy, kim, lee" in rows["alice"]["flags"]
    assert "same code as the reference solution in cell-4" in rows["alice"]["flags"]


@pytest.mark.slow
def test_the_sandbox_holds(course, tmp_path):
    """Writes outside the scratch dir fail, the network is unreachable, nothing else shows."""
    subs = tmp_path / "subs"
    outside = tmp_path / "outside.txt"
    targets = [
        str(outside),
        str(course / "runs/seed-0.json"),
        str(subs / "evil.txt"),
        "/tmp/../etc/evil",
        str(Path(sys.prefix) / "evil.txt"),
        "/grade/in/evil",
    ]
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    accepted = []

    def serve():
        deadline = time.time() + 120
        while time.time() < deadline and not accepted:
            try:
                accepted.append(server.accept())
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    hidden = [
        str(subs),
        str(course / "course/solutions"),
        str(tmp_path),
        "/etc/shadow",
        "/root/.bashrc",
        str(Path(__file__).parent),
        "/work/main/course",
        "/sys/kernel",
    ]
    nb = add_cell(
        solve(learner(course), HONEST),
        "check-ex3",
        ESCAPE.format(targets=targets, port=port, hidden=hidden),
    )
    write(subs / "mallory_10_sample.ipynb", nb)
    before = (course / "runs/seed-0.json").read_text()
    keep = tmp_path / "keep"
    gradebook = run_grade(course, subs, keep=keep)
    thread.join(1)
    server.close()
    row = gradebook.iloc[0]
    assert row["points"] == 6 and row["reason"] == ""
    assert not outside.exists() and not (subs / "evil.txt").exists() and not accepted
    assert (course / "runs/seed-0.json").read_text() == before
    [executed] = keep.glob("*.ipynb")
    text = "".join(
        o.get("text", "") for c in nbformat.read(executed, 4).cells for o in c.get("outputs", [])
    )
    assert "WROTE" not in text and "CONNECTED" not in text
    assert text.count("blocked") == len(targets) and text.count("no network") == 2
    assert text.count(": False") == len(hidden) and ": True" not in text


@pytest.mark.slow
def test_limits_end_runaway_submissions(course, tmp_path):
    subs = tmp_path / "subs"
    base = solve(learner(course), HONEST)
    write(subs / "loop_10_sample.ipynb", add_cell(base, "check-ex1", "while True:\n    pass"))
    hog = "import numpy as np\nblocks = []\nwhile True:\n    blocks.append(np.ones(50_000_000))"
    write(subs / "hog_10_sample.ipynb", add_cell(base, "check-ex1", hog))
    fork = "import os\nfor _ in range(200):\n    if os.fork() == 0:\n        import time; time.sleep(60)"
    write(subs / "fork_10_sample.ipynb", add_cell(base, "check-ex1", fork))
    limits = sandbox.Limits(wall_seconds=20, memory_bytes=700 << 20, max_processes=32)
    details = tmp_path / "details.jsonl"
    gradebook = grade_to_csv(
        subs,
        tmp_path / "gb.csv",
        manifest=course / "course/solutions/manifest.json",
        runs=course / "runs",
        details=details,
        salt="t",
        limits=limits,
    )
    rows = rows_by_student(gradebook)
    assert rows["loop"]["reason"].startswith("timeout: killed after 20 s")
    assert (
        rows["loop"]["ex1"] == "passed" and rows["loop"]["ex2"] == "not_run"
    )  # captured before it
    assert rows["hog"]["reason"].startswith("memory limit: killed at")
    assert rows["fork"]["reason"].startswith("processes limit")
    peaks = {
        json.loads(line)["student"]: json.loads(line) for line in details.read_text().splitlines()
    }
    # the watchdog's overshoot: at most one poll interval of allocation (400 MB blocks here)
    assert peaks["hog"]["peak_memory_mb"] < 700 + 800


@pytest.mark.slow
def test_malformed_files_each_get_a_row_and_the_csv_is_written(course, tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    honest = solve(learner(course), HONEST)
    write(subs / "ok_10_sample.ipynb", honest)
    (subs / "badjson_10_sample.ipynb").write_text('{"cells": [')
    (subs / "deep_10_sample.ipynb").write_text("[" * 100_000)
    outputs = copy.deepcopy(honest)
    next(c for c in outputs["cells"] if c["cell_type"] == "code")["outputs"] = 5
    write(subs / "outputs_10_sample.ipynb", outputs)
    (subs / "v3_10_sample.ipynb").write_text(json.dumps({"nbformat": 3, "worksheets": []}))
    (subs / "list_10_sample.ipynb").write_text("[1, 2]")
    (subs / "binary_10_sample.ipynb").write_bytes(b"\xff\xfe\x00garbage")
    student_expr = copy.deepcopy(honest)
    student_expr["cells"][1]["source"] = "student = " + "+".join(["'a'"] * 50_000)
    write(subs / "expr_10_sample.ipynb", student_expr)
    os.mkfifo(subs / "fifo_10_sample.ipynb")
    (subs / "dir_10_sample.ipynb").mkdir()
    os.symlink(course / "course/solutions/10_sample.ipynb", subs / "link_10_sample.ipynb")
    with open(subs / "huge_10_sample.ipynb", "wb") as f:
        f.truncate(3 << 20)  # sparse: the cap refuses it from its size, nothing is read
    (subs / "notes.txt").write_text("not a notebook")
    write(
        subs / "stranger.ipynb", {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}
    )
    write(subs / "--exercises=x_10_sample.ipynb", honest)
    write(subs / "=HYPERLINK(1)_10_sample.ipynb", learner(course))
    write(subs / "@cmd_10_sample.ipynb", learner(course))
    write(subs / "esc\x1b[2J_10_sample.ipynb", learner(course))  # a terminal escape in the name
    out = tmp_path / "gradebook.csv"

    def alarm(*_):
        raise TimeoutError("grading hung")

    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(600)
    try:
        with pytest.MonkeyPatch.context() as mp:
            real = intake.safe_read

            def unreadable(path, limit):
                if Path(path).name.startswith("binary"):
                    raise PermissionError(13, "Permission denied")
                return real(path, limit)

            mp.setattr(intake, "safe_read", unreadable)
            gradebook = grade_to_csv(
                subs,
                out,
                manifest=course / "course/solutions/manifest.json",
                runs=course / "runs",
                salt="t",
                max_bytes=2 << 20,
            )
    finally:
        signal.alarm(0)
    rows = {Path(r["file"]).name: r for r in gradebook.to_dict("records")}
    reasons = {name: rows[name]["reason"] for name in rows}
    assert rows["ok_10_sample.ipynb"]["points"] == 6 and reasons["ok_10_sample.ipynb"] == ""
    assert reasons["badjson_10_sample.ipynb"].startswith("invalid JSON")
    assert reasons["deep_10_sample.ipynb"] == "invalid JSON: nested too deeply"
    assert "outputs is 5, not a list" in reasons["outputs_10_sample.ipynb"]
    assert reasons["v3_10_sample.ipynb"].startswith("not an nbformat 4 notebook")
    assert reasons["list_10_sample.ipynb"].startswith("not a Jupyter notebook")
    assert reasons["binary_10_sample.ipynb"] == "cannot read: Permission denied"
    assert reasons["fifo_10_sample.ipynb"] == "not a regular file: a FIFO"
    assert reasons["dir_10_sample.ipynb"] == "not a regular file: a directory"
    assert reasons["link_10_sample.ipynb"] == "not a regular file: a symlink, not followed"
    assert reasons["huge_10_sample.ipynb"].startswith("file too large: 3.0 MB, over the 2 MB cap")
    assert reasons["stranger.ipynb"].startswith("not a notebook of this course")
    assert rows["expr_10_sample.ipynb"]["points"] == 6  # graded; the parameter is never evaluated
    assert rows["--exercises=x_10_sample.ipynb"]["student"] == "exercises=x"
    assert rows["--exercises=x_10_sample.ipynb"]["points"] == 6
    assert "notes.txt" not in rows
    raw = out.read_text()
    table = list(csv.reader(raw.splitlines()))
    students = [r[0] for r in table[1:]]
    assert "'=hyperlink(1)" in students and "'@cmd" in students
    assert not any(cell.startswith(("=", "+", "-", "@")) for r in table for cell in r)
    assert "\x1b" not in raw and "esc[2j" in students
    assert len(table) == 1 + len(rows)


@pytest.mark.slow
def test_resubmissions_and_case(course, tmp_path):
    subs = tmp_path / "subs"
    honest, blank = solve(learner(course), HONEST), learner(course)
    now = time.time()
    for name, nb, age in [
        ("Grace_10_sample.ipynb", blank, 300),
        ("grace/10_sample.ipynb", honest, 100),
        ("frank_10_sample.ipynb", honest, 300),
        ("frank_10_sample (1).ipynb", blank, 200),
        ("frank_10_sample (2).ipynb", blank, 200),
    ]:
        path = write(subs / name, nb)
        os.utime(path, (now - age, now - age))
    gradebook = run_grade(course, subs, jobs=2)
    rows = rows_by_student(gradebook)
    assert sorted(rows) == ["frank", "grace"]
    assert rows["grace"]["points"] == 6 and rows["grace"]["file"].endswith("grace/10_sample.ipynb")
    assert "1 earlier submission(s) not graded: Grace_10_sample.ipynb" in rows["grace"]["flags"]
    # same time: the higher resubmission number counts
    assert (
        rows["frank"]["file"].endswith("frank_10_sample (2).ipynb") and rows["frank"]["points"] == 0
    )
    assert "frank_10_sample (1).ipynb" in rows["frank"]["flags"]
    assert "byte-identical file to" not in rows["frank"]["flags"]


@pytest.mark.slow
def test_cli_grade_takes_file_names_as_files(course, tmp_path, capsys, monkeypatch):
    import argparse

    from vestige.course import add_course_parser

    subs = tmp_path / "subs"
    write(subs / "--exercises=x.ipynb", solve(learner(course), HONEST))
    parser = argparse.ArgumentParser(prog="vestige")
    add_course_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "gb.csv"
    common = [
        "course",
        "grade",
        "--runs",
        str(course / "runs"),
        "--salt",
        "s",
        "--manifest",
        str(course / "course/solutions/manifest.json"),
    ]
    monkeypatch.chdir(subs)
    with pytest.raises(SystemExit):  # a file name where an option could be: refused, not used
        parser.parse_args([*common, "--out", str(out), "--exercises=x.ipynb"])
    with pytest.raises(SystemExit, match="looks like a submission"):
        args = parser.parse_args([*common, "--out=x.ipynb", "ok.ipynb"])
        args.func(args)
    args = parser.parse_args([*common, "--out", str(out), "--", "--exercises=x.ipynb"])
    args.func(args)
    table = pd.read_csv(out, keep_default_na=False)
    assert table[["student", "points", "max_points", "reason"]].values.tolist() == [
        ["exercises=x", 6, 6, ""]
    ]
    assert "wrote" in capsys.readouterr().out and (tmp_path / "gb.details.jsonl").exists()


def test_a_missing_sandbox_is_a_reason_on_every_row(course, tmp_path, monkeypatch):
    subs = tmp_path / "subs"
    write(subs / "amy_10_sample.ipynb", solve(learner(course), HONEST))
    write(subs / "ben_10_sample.ipynb", learner(course))
    monkeypatch.setattr(sandbox, "probe", lambda: "bubblewrap (bwrap) is not installed")
    out = tmp_path / "gb.csv"
    gradebook = grade_to_csv(
        subs, out, manifest=course / "course/solutions/manifest.json", runs=course / "runs"
    )
    assert (
        gradebook["reason"].tolist()
        == ["sandbox unavailable: bubblewrap (bwrap) is not installed"] * 2
    )
    assert gradebook["points"].tolist() == [0, 0] and out.exists()


def test_prepare_restores_check_cells_and_injects_parameters(course):
    manifest = json.loads((course / "course/solutions/manifest.json").read_text())
    entry = manifest["notebooks"]["10_sample"]
    nb = learner(course)
    nb["cells"] = [c for c in nb["cells"] if c["id"] != "check-ex1"]
    nb = add_cell(nb, "cell-1", "seed = 0", metadata={"tags": ["injected-parameters"]}, id="forged")
    prepared, flags, _ = prepare.prepare(nb, entry, {"student": "a'\"\nb", "seed": 2})
    ids = [c["id"] for c in prepared["cells"]]
    assert ids.index("check-ex1") == ids.index("cell-4") + 1
    injected = prepared["cells"][ids.index("cell-1") + 1]
    assert injected["metadata"]["tags"] == ["injected-parameters"]
    namespace = {}
    exec(injected["source"], namespace)
    assert namespace["student"] == "a'\"\nb" and namespace["seed"] == 2
    assert flags == [
        "injected-parameters cell dropped: forged",
        "missing check cell re-inserted: check-ex1",
    ]
    nbformat.validate(nbformat.from_dict(prepared))
    assert all(c.get("outputs", []) == [] for c in prepared["cells"])


def test_old_notebooks_without_cell_ids_are_matched_by_checksum(course):
    manifest = json.loads((course / "course/solutions/manifest.json").read_text())
    entry = manifest["notebooks"]["10_sample"]
    nb = solve(learner(course), HONEST)
    nb["nbformat_minor"] = 4
    for cell in nb["cells"]:
        del cell["id"]
    nb["cells"] = [c for c in nb["cells"] if "".join(c["source"]) != 'check("ex2", square)']
    prepared, flags, _ = prepare.prepare(nb, entry, {"seed": 1})
    ids = [c["id"] for c in prepared["cells"]]
    assert [i for i in ids if i.startswith("check-")] == [
        "check-setup",
        "check-ex1",
        "check-ex2",
        "check-ex3",
    ]
    assert ids.index("check-ex2") == ids.index("check-ex1") + 2
    assert flags == ["missing check cell re-inserted: check-ex2"]
    nbformat.validate(nbformat.from_dict(prepared))


def test_a_notebook_graded_against_runs_needs_them(course, tmp_path):
    write(tmp_path / "subs/amy_10_sample.ipynb", solve(learner(course), HONEST))
    gradebook = grade(tmp_path / "subs", manifest=course / "course/solutions/manifest.json")
    assert gradebook["reason"].tolist() == [
        "this notebook is graded against precomputed runs: pass --runs DIR"
    ]


@pytest.mark.parametrize(
    "source, findings, only_checks",
    [
        (
            'import os\nfolder = os.environ["VESTIGE_GRADING_DIR"]',
            ["touches the grading machinery"],
            False,
        ),
        ("from vestige.course.checks import welcome", ["touches the grading machinery"], False),
        ("check = lambda *a, **k: None", ["rebinds check"], False),
        (
            "from vestige.course import Checker as check",
            ["rebinds Checker", "rebinds check", "touches the grading machinery"],
            False,
        ),
        ("check.__call__ = print", ["reaches into check"], False),
        ('check("ex1", lambda: True)\ncheck("ex2", f)  # appended', [], True),
        (
            'total = 6; check("ex1", lambda: total)',
            ["calls check() in a learner cell (kept)"],
            False,
        ),
        ("checks = 3\nplain = checks + 1", [], False),
        ("def f(:\n", [], False),  # not Python: nothing to say, nothing dropped
        ("x = (" * 5000 + ")" * 5000, [], False),
    ],
)
def test_learner_code_scan(source, findings, only_checks):
    scan = scan_code(source)
    assert scan.findings == findings and scan.only_check_calls is only_checks


# --- the grading steps, one at a time ----------------------------------------------------------


def surveyed(path: str, student: str, mtime: float = 0.0, resubmission: int = 0, **fields):
    sub = intake.Submission(Path(path), student, "file name", resubmission, mtime)
    return survey.Survey(sub, notebook="10_sample", **fields)


def test_the_latest_resubmission_counts_and_lists_the_others():
    items = [
        surveyed("a.ipynb", "amy", mtime=2),
        surveyed("a (1).ipynb", "amy", mtime=2, resubmission=1),
        surveyed("old.ipynb", "amy", mtime=1),
        surveyed("x.ipynb", "", mtime=3),  # no student name: never merged
        surveyed("y.ipynb", "", mtime=3),
        surveyed("bad.ipynb", "bea", reason="invalid JSON"),
    ]
    counted, unreadable = resubmissions.choose(items)
    assert [c.sub.path.name for c in counted] == ["x.ipynb", "y.ipynb", "a (1).ipynb"]
    assert counted[-1].flags == ["2 earlier submission(s) not graded: old.ipynb, a.ipynb"]
    assert [u.sub.path.name for u in unreadable] == ["bad.ipynb"]


def test_copies_are_flagged_across_students_and_against_the_reference():
    notebooks = {"10_sample": {"solution_cells": {"c": {"stub": "S", "solution": "R"}}}}
    items = [
        surveyed("a.ipynb", "amy", sha256="f1", fingerprints={"c": "R"}),
        surveyed("b.ipynb", "bob", sha256="f1", fingerprints={"c": "R"}),
        surveyed("c.ipynb", "cat", sha256="f2", fingerprints={"c": "S"}),  # the stub
        surveyed("d.ipynb", "dan", sha256="f2", fingerprints={"c": "S"}),
    ]
    copies.flag_copies(items, notebooks)
    assert items[0].flags == [
        "same code as the reference solution in c",
        "same code in c as: bob",
        "byte-identical file to: bob",
    ]
    assert items[2].flags == items[3].flags == []  # unsolved twins are not copies


def test_judging_reads_only_what_it_can_trust(course, tmp_path):
    exercises = ["ex1", "ex2", "ex3"]
    checks = checks_registry.load("10_sample")
    params = {"runs_dir": str(course / "runs"), "seed": 0}
    capture = tmp_path / "capture"
    capture.mkdir()
    plain.dump(capture, "ex1", {"exercise": "ex1", "status": "captured", "data": 6.0})
    plain.dump(capture, "ex2", {"exercise": "ex3", "status": "captured", "data": []})
    statuses, messages, flags = judge.judge(exercises, checks, capture, params, None)
    assert statuses == {"ex1": "passed", "ex2": "error", "ex3": "not_run"}
    assert messages["ex2"] == "capture of another exercise"
    assert flags == ["malformed capture for ex2"]
    plain.dump(capture, "ex1", {"exercise": "ex1", "status": "captured", "data": "six"})
    plain.dump(capture, "ex3", {"exercise": "ex3", "status": "passed", "data": "better"})
    statuses, _, flags = judge.judge(exercises, checks, capture, params, None)
    assert statuses["ex1"] == "failed" and statuses["ex3"] == "error"  # no verdict from inside
    assert flags.count("malformed capture for ex1") == 1
    (tmp_path / "link").symlink_to(capture)
    statuses, _, flags = judge.judge(exercises, checks, tmp_path / "link", params, None)
    assert set(statuses.values()) == {"error"}
    assert flags == ["the capture folder was removed or replaced"]


def test_the_end_of_a_sandboxed_run_is_a_reason_or_a_flag():
    limits = sandbox.Limits(wall_seconds=5)
    ended = lambda code, limit=None, err="": sandbox.Outcome(code, limit, 1.0, 0, "", err)
    assert execute.ending(ended(0), limits) == ("", None)
    assert execute.ending(ended(3, err="x\nDeadKernelError\n"), limits) == (
        "",
        "kernel died: DeadKernelError",
    )
    reason, flag = execute.ending(ended(None, "wall time"), limits)
    assert reason == "timeout: killed after 5 s (answers captured before it are graded)"
    assert flag is None
    assert execute.ending(ended(1), limits)[0] == "sandbox failed (exit status 1): no output"


def test_grading_parameters_are_injected_only_where_declared(course):
    checks = checks_registry.load("10_sample")
    rng = np.random.default_rng(0)
    runs = course / "runs"
    grading = parameters.choose(
        checks, ["student", "seed", "runs_dir"], runs, {"seed": 2, "other": 1}, "amy", rng
    )
    assert grading.injected == {"student": "amy", "runs_dir": "/runs", "seed": 2}
    assert grading.judged["runs_dir"] == str(runs) and grading.shown == {
        "runs_dir": "/runs",
        "seed": 2,
    }
    assert len(grading.hidden["xs"]) == 5
    with pytest.raises(parameters.SetupError, match="pass --runs DIR"):
        parameters.choose(checks, ["seed"], None, {}, "amy", rng)


def test_the_gradebook_csv_is_neutralised_and_written_whole(tmp_path):
    frame = pd.DataFrame({"student": ["=1+1", "amy"], "points": [1, float("nan")]})
    out = tmp_path / "gb.csv"
    gradebook.write_csv(frame, out)
    assert out.read_bytes() == b"student,points\r\n'=1+1,1.0\r\namy,\r\n"
    assert [p.name for p in tmp_path.iterdir()] == ["gb.csv"]


def test_each_preparation_step_runs_alone(course):
    manifest = json.loads((course / "course/solutions/manifest.json").read_text())
    entry = manifest["notebooks"]["10_sample"]
    prep = prepare.Preparation(entry, {"seed": 1})
    source = entry["check_cells"]["check-ex1"]["source"]
    pasted = prepare.Cell.read(3, {"cell_type": "code", "id": "mine", "source": source})
    assert not prepare.restore_check(pasted, prep)  # not a check cell's id
    assert prepare.restore_check_by_checksum(pasted, prep)
    assert prep.flags == ["copy of check cell dropped: mine (copy of check-ex1)"]
    assert prep.cells == []
    prepare.reinsert_missing(prep)
    placed = [i for i in entry["cells"] if i in entry["check_cells"] or i == "cell-1"]
    assert [c["id"] for c in prep.cells] == placed  # the build's order
    prepare.inject_parameters(prep)
    assert prep.cells[1]["metadata"]["tags"] == ["injected-parameters"]
    assert prep.cells[1]["source"].endswith("seed = 1\n")
