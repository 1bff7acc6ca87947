"""The study: conditions, summaries and the report, on synthetic results; and the negative
control on real runs (slow)."""

import json
import math

import pytest
import vestige
from vestige.conditions import CONDITION_NAMES
from vestige.config import SelectivityPenalty, Suppress, SuppressHeads
from vestige.report import json_safe, load, write_report
from vestige.study import run_study, summarize
from vestige.summary import verdict


def test_conditions_build_the_interventions_they_name():
    def base(transition=400.0, target=True, control=3, head=True):
        return {
            "target": {"layer": 0, "neuron": 7} if target else None,
            "control_neuron": control,
            "crutch_head": {"layer": 1, "head": 2} if head else None,
            "base": {"transition": transition},
        }

    at_half = CONDITION_NAMES["neuron-0.5T"].interventions(base(), total=1500)
    assert at_half == (Suppress(0, (7,), mode="mean", start=0, end=200),)
    whole = CONDITION_NAMES["control-whole"].interventions(base(), 1500)
    assert whole == (Suppress(0, (3,), mode="mean", start=0, end=None),)
    head = CONDITION_NAMES["head-1T"].interventions(base(), 1500)
    assert head == (SuppressHeads(1, (2,), mode="mean", start=0, end=400),)
    alpha = CONDITION_NAMES["alpha-1"].interventions(base(math.nan, False, None, False), 1500)
    assert alpha == (SelectivityPenalty(alpha=-1.0),)
    assert CONDITION_NAMES["neuron-whole"].interventions(base(target=False), 1500) is None
    assert CONDITION_NAMES["control-1T"].interventions(base(control=None), 1500) is None
    assert CONDITION_NAMES["head-whole"].interventions(base(head=False), 1500) is None
    # no transition: windows end at a quarter of training
    assert CONDITION_NAMES["neuron-1T"].interventions(base(math.nan), 1500)[0].end == 375


@pytest.mark.parametrize(
    "mean, p, word",
    [(-0.2, 0.01, "better"), (0.2, 0.01, "worse"), (0.05, 0.2, "no clear difference")],
)
def test_verdict_reads_the_holm_adjusted_p(mean, p, word):
    assert verdict({"n": 10, "mean": mean}, p) == word
    assert verdict({"n": 1, "mean": 0.1}, math.nan) == "too few seeds"


def fake_result(seed, caught, delta):
    base = {
        "final_loss": 0.9,
        "final_accuracy": 0.8,
        "focus_loss": 0.05,
        "copy_loss": 0.1,
        "budget_loss": 1.2,
        "transition": 450.0,
        "mean_selectivity": 0.5,
    }
    evidence = {
        "unit": "L0N7",
        "positions": "trigger",
        "init_floor": 0.05,
        "peak_effect": 0.4,
        "peak_low": 0.35,
        "peak_high": 0.45,
        "peak_step": 73,
        "settle_step": 140,
        "final_effect": 0.01,
        "final_low": 0.0,
        "final_high": 0.02,
        "final_margin": 0.1,
        "margin_fraction": 0.1,
        "final_selectivity": 0.9,
        "selectivity_baseline": 0.65,
        "final_matched_selectivity": 0.8,
        "matched_baseline": 0.25,
        "failed": [] if caught else ["selective"],
    }
    mechanism = {
        "transitions": {"copy": 412.0, "P(C | lone B)": 140.0},
        "settle_step": 140,
        "coincides_with": ["P(C | lone B)"],
        "end_status": "unused",
        "backup_at_end": False,
        "effect_later_attn_ablated": [[73, 0.5], [1500, 0.02]],
        "effect_joint": [[1500, 0.1]],
        "effect_all_others": [[1500, 1.2]],
        "joint_neurons": [7, 2, 3],
        "heads_that_grew": [
            {
                "head": "L1H2",
                "growth": 0.8,
                "effect_at_settle": 1.0,
                "attn_previous": 0.6,
                "attn_induction": 0.1,
            }
        ],
        "stages": [],
        "neuron_margin": [],
    }
    return {
        "seed": seed,
        "preset": "reference",
        "base": base,
        "summary": "",
        "init_floor": 0.05,
        "caught": caught,
        "neuron": evidence if caught else None,
        "best_candidate": evidence,
        "target": {"unit": "L0N7", "layer": 0, "neuron": 7, "caught": caught},
        "control_neuron": 3,
        "crutch_head": {"unit": "L1H2", "layer": 1, "head": 2},
        "steps": [0, 73, 140, 412, 1500],
        "sweep": {"min_peak=0.1": True, "min_peak=0.2": caught},
        "faders": [140, 412],
        "first_copy": {
            "scored_peak": 0.4,
            "unscored_peak": 0.9,
            "scored_final": 0.0,
            "unscored_final": 0.6,
        },
        "contrast": None,
        "timeline": [
            {
                "step": 73,
                "effect": 0.4,
                "effect_low": 0.35,
                "effect_high": 0.45,
                "margin_effect": 1.0,
                "selectivity": 0.9,
                "matched_selectivity": 0.8,
            }
        ],
        "mechanism": mechanism,
        "conditions": {"neuron-whole": {**base, "final_loss": 0.9 + delta}} if caught else {},
    }


def test_summary_and_report_say_what_was_measured(tmp_path):
    results = [fake_result(s, caught=s != 3, delta=0.01 * s) for s in range(4)]
    summary = summarize(vestige.preset("reference"), results, ("neuron-whole",), 12.0)
    assert (summary["caught"], summary["n_seeds"]) == (3, 4)
    assert summary["failed_clauses_when_not_caught"] == {"selective": 1}
    assert summary["coincides_with"] == {"P(C | lone B)": 3}
    comparison = summary["conditions"]["neuron-whole"]
    assert comparison["seeds"] == [0, 1, 2]
    assert comparison["delta_final_loss"]["mean"] == pytest.approx(0.01)
    assert comparison["verdict"] == "no clear difference"
    assert summary["rates"]["reference"]["k"] == 3
    assert summary["one_clause_short"] == {"selective": [3]}
    sweep = {(r["parameter"], r["value"]): r["k"] for r in summary["threshold_sweep"]}
    assert sweep[("min_peak", 0.1)] == 4 and sweep[("min_peak", 0.2)] == 3
    null = summary["coincidence_null"]
    assert null["n_faders"] == 8 and null["transitions"]["P(C | lone B)"]["observed"] == 3
    assert summary["first_copy"]["unscored_final"]["mean"] == pytest.approx(0.6)
    write_report(summary, results, tmp_path)
    saved, per_seed = load(tmp_path)
    assert saved["caught"] == 3 and len(per_seed) == 4
    json.loads((tmp_path / "summary.json").read_text())  # strict JSON (no NaN)
    report = (tmp_path / "report.md").read_text()
    assert "caught a vestigial neuron in 3/4 (75%, 95% 19%-99%) seeds" in report
    assert "+0.010 [" in report  # the interval of the condition
    assert "L1H2 (+0.80" in report
    png = (tmp_path / "vestigial_timelines.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_the_literature_section_cites_the_suppression_reports_beside_the_study(tmp_path):
    """A condition the study did not run is cited from the suppression report in its folder
    that did (named, with its Holm p, family and seed count); where the study ran it, its own
    result is the one cited; a malformed report is a clear error that writes nothing; without
    them it reads 'not run'."""
    results = [fake_result(s, caught=True, delta=0.01 * s) for s in range(3)]
    summary = summarize(vestige.preset("reference"), results, ("neuron-whole",), 12.0)
    half = summarize(vestige.preset("reference"), results, ("neuron-whole",), 12.0)
    half["conditions"]["head-0.5T"] = half["conditions"].pop("neuron-whole")
    half["conditions"]["neuron-whole"] = {**half["conditions"]["head-0.5T"], "verdict": "worse"}
    (tmp_path / "suppression_half").mkdir()
    (tmp_path / "suppression_half" / "summary.json").write_text(json.dumps(json_safe(half)))
    write_report(summary, results, tmp_path)
    report = (tmp_path / "report.md").read_text()
    ours = summary["conditions"]["neuron-whole"]["delta_final_loss"]
    assert (
        f"holding the crutch's head until T/2: no clear difference (+{ours['mean']:.3f} [" in report
    )
    p_holm = f"{half['conditions']['head-0.5T']['p_holm']:.2g}"
    assert (
        f"nats, Holm p {p_holm} over 1 test; `suppression_half/`, 3 paired seeds); until T: "
        "not run in this study" in report
    )
    assert "the whole run: no clear difference (+0.010 [" in report  # the study's own
    assert "worse" not in report.split("## Against the literature")[1]
    assert set(load(tmp_path)[0]["suppression_reports"]) == {"suppression_half"}
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    head = half["conditions"]["head-0.5T"]
    for broken in (
        {"conditions": 1},
        {**half, "conditions": {}},  # holds nothing
        {**half, "conditions": None},
        {**half, "pool": [1]},
        {**half, "seeds": ["3000"]},
        {**half, "conditions": {"x": {**head, "p_holm": "0.5"}}},
        {**half, "conditions": {"x": {**head, "delta_final_loss": {**ours, "mean": [1]}}}},
        {**half, "conditions": {"x": {**head, "delta_final_loss": {**ours, "high": None}}}},
    ):
        (tmp_path / "suppression_half" / "summary.json").write_text(json.dumps(json_safe(broken)))
        with pytest.raises(ValueError, match="make suppression-half"):
            write_report(summary, results, tmp_path)
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    (tmp_path / "suppression_half" / "summary.json").unlink()
    write_report(summary, results, tmp_path)
    assert "until T/2: not run in this study" in (tmp_path / "report.md").read_text()
    assert "suppression_reports" not in load(tmp_path)[0]
    bare = summarize(vestige.preset("reference"), results, (), 12.0)  # no table of nothing
    write_report(bare, results, tmp_path)
    assert (
        "This study trains no seed again under a condition (`vestige study --conditions`"
        in (tmp_path / "report.md").read_text()
    )
    (tmp_path / "suppression_half" / "summary.json").write_text(json.dumps(json_safe(half)))
    write_report(bare, results, tmp_path)
    assert (
        "under a condition; the suppression reports beside it do (`suppression_half/`)"
        in (tmp_path / "report.md").read_text()
    )


@pytest.mark.slow
def test_the_control_preset_catches_nothing(tmp_path):
    summary = run_study(
        "control",
        [0, 1],
        tmp_path / "runs",
        tmp_path / "report",
        workers=2,
        progress=False,
        conditions=(),
    )
    assert summary["n_seeds"] == 2
    assert summary["caught"] == 0, (tmp_path / "report" / "report.md").read_text()


def test_the_committed_study_renders_from_its_own_files(tmp_path):
    """course/study/report.md is what `write_report` makes of the committed summary.json and
    results.json (so every number in the report is one of theirs), and the figures it names
    are there. Skipped while course/study holds a study in an older format."""
    import shutil
    from pathlib import Path

    from vestige.report import NUMERICS_BATCHES, SUPPRESSION_REPORTS, VERIFIED

    study = Path(__file__).resolve().parents[1] / "course" / "study"
    summary, results = load(study)
    if "rates" not in summary:
        pytest.skip("course/study predates the current summary format: run `make study`")
    # the files beside the study that write_report reads
    for name in (VERIFIED, *(file for file, _, _ in NUMERICS_BATCHES.values())):
        if (study / name).exists():
            shutil.copy(study / name, tmp_path / name)
    for name in SUPPRESSION_REPORTS:
        if (study / name / "summary.json").exists():
            (tmp_path / name).mkdir()
            shutil.copy(study / name / "summary.json", tmp_path / name / "summary.json")
    write_report(summary, results, tmp_path, study / "search.jsonl")
    assert (tmp_path / "report.md").read_text() == (study / "report.md").read_text()
    for line in (study / "report.md").read_text().splitlines():
        if line.startswith("!["):
            assert (study / line[line.index("(") + 1 : -1]).is_file(), line
    assert summary["preset"] == "reference" and summary["n_seeds"] >= 20
    assert summary["control"]["seeds"] and len(summary["control"]["seeds"]) >= 20
    assert set(summary["map"]) == {"reference", "control"}


def test_the_committed_suppression_report_renders_and_rests_on_the_studys_runs(tmp_path):
    """course/study/suppression/ (`make suppression`) is `write_report`'s rendering of its own
    summary and results, and judges the same report seeds as the study with the same
    verdicts and final losses (the same runs, reopened), with every condition on each seed."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "course" / "study"
    summary, results = load(folder / "suppression")
    write_report(summary, results, tmp_path, None)
    assert (tmp_path / "report.md").read_text() == (
        folder / "suppression" / "report.md"
    ).read_text()
    study, study_results = load(folder)
    assert summary["seeds"] == study["seeds"] and summary["caught_seeds"] == study["caught_seeds"]
    finals = {r["seed"]: r["base"]["final_loss"] for r in study_results}
    assert {r["seed"]: r["base"]["final_loss"] for r in results} == finals
    assert set(summary["conditions"]) == {"head-1T", "head-whole", "neuron-1T", "control-1T"}
    for name, entry in summary["conditions"].items():
        assert entry["seeds"] == summary["seeds"], name
        assert entry["delta_final_loss"]["n"] == len(summary["seeds"])
    pool = summary["pool"]  # the finite training set, as pre-registered: 3000-3009, 2000
    assert pool["size"] == 2000 and pool["seeds"] == list(range(3000, 3010))
    assert set(pool["conditions"]) == {"alpha-1", "alpha-0.3", "alpha+0.3"}
    for name, entry in pool["conditions"].items():
        assert entry["seeds"] == pool["seeds"], name
        assert entry["delta_final_loss"]["n"] == len(pool["seeds"])
    assert pool["gap"]["n"] == len(pool["seeds"])


@pytest.mark.parametrize(
    ("name", "conditions", "contrasts"),
    [
        ("suppression_whole", {"neuron-whole", "control-whole"}, ["neuron-whole - control-whole"]),
        ("suppression_half", {"head-0.5T", "neuron-0.5T"}, []),  # no control neuron: none
    ],
)
def test_a_committed_suppression_report_on_the_report_seeds_renders_and_pairs_every_seed(
    tmp_path, name, conditions, contrasts
):
    """course/study/suppression_whole/ and suppression_half/ (`make suppression-whole`, `make
    suppression-half`) are `write_report`'s renderings of their own files: the pre-registered
    seeds 3004-3019, every condition paired on each of them, with the pre-registered contrasts in
    one Holm family, against the unchanged runs numerics-report trained on one machine."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "course" / "study" / name
    summary, results = load(folder)
    write_report(summary, results, tmp_path, None)
    assert (tmp_path / "report.md").read_text() == (folder / "report.md").read_text()
    assert summary["seeds"] == list(range(3004, 3020))
    assert set(summary["conditions"]) == conditions
    for condition, entry in summary["conditions"].items():
        assert entry["seeds"] == summary["seeds"], condition
        assert entry["delta_final_loss"]["n"] == len(summary["seeds"]), condition
    assert list(summary["contrasts"]) == contrasts
    assert sorted(summary["holm_family"]) == sorted(conditions | set(contrasts))
    numerics = json.loads((folder.parent / "numerics_report.json").read_text())
    assert numerics["seeds"] == summary["seeds"]  # the same unchanged runs, on one machine


def test_the_report_carries_the_fresh_seeds_check_while_its_file_is_there(tmp_path, capsys):
    """A verify.json beside the study (verify.py --json) adds the independent check to
    summary.json and a section to report.md; without it both go (never a stale check); a
    malformed one is a clear error that writes nothing."""
    import shutil
    from pathlib import Path

    from vestige.cli import main

    study = Path(__file__).resolve().parents[1] / "course" / "study"
    if "rates" not in load(study)[0]:
        pytest.skip("course/study predates the current summary format: run `make study`")
    copy = tmp_path / "study"
    shutil.copytree(study, copy, ignore=shutil.ignore_patterns("suppression", "verify.json"))
    preset = load(copy)[0]["preset"]
    results = [{"seed": 9000, "claimed": "L0N1", "holds": True}]
    results += [{"seed": 9001, "claimed": None, "missed": ["L1N2"], "holds": False}]
    (copy / "verify.json").write_text(json.dumps({preset: {"folder": "f", "results": results}}))
    assert main(["report", str(copy)]) == 0
    fresh = load(copy)[0]["fresh"][preset]
    assert (fresh["rate"]["k"], fresh["rate"]["n"], fresh["caught"]) == (1, 2, [9000])
    report = (copy / "report.md").read_text()
    assert "## The independent check on fresh seeds" in report
    assert f"- `{preset}` (seeds 9000-9001): a catch that holds up in 1/2 (50%" in report
    assert "neurons the detector missed: 9001: L1N2." in report
    before = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()}
    for broken in ("{not json", json.dumps({preset: {"folder": "f"}}), "[1, 2]"):
        (copy / "verify.json").write_text(broken)
        assert main(["report", str(copy)]) == 2
        assert "is not what course/study/verify.py --json writes" in capsys.readouterr().err
        assert {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()} == {
            **before,
            "verify.json": broken.encode(),
        }
    (copy / "verify.json").unlink()
    assert main(["report", str(copy)]) == 0
    assert "fresh" not in load(copy)[0]
    assert "independent check on fresh seeds" not in (copy / "report.md").read_text()


def test_replicate_compares_retrained_runs_with_the_committed_study(course_runs, tmp_path, capsys):
    """course/study/replicate.py: the verdicts and final losses of retrained seeds against a
    study's results.json, and control seeds' verdicts against its control.caught_seeds; a
    seed the study never judged is left out; --json writes the rows and counts."""
    import importlib.util
    from pathlib import Path

    from vestige.detect import detect
    from vestige.study import outcome

    script = Path(__file__).resolve().parents[1] / "course/study/replicate.py"
    spec = importlib.util.spec_from_file_location("replicate", script)
    replicate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(replicate)
    runs = {s: vestige.Run.open(course_runs / "tiny" / f"seed-{s}") for s in (0, 1, 2, 3)}
    caught = {s: detect(run).vestigial is not None for s, run in runs.items()}
    results = [
        {"seed": s, "caught": caught[s], "base": {"final_loss": outcome(runs[s])["final_loss"]}}
        for s in (0, 1)
    ]
    results[1]["caught"] = not results[1]["caught"]  # another machine's verdict
    results[0]["base"]["final_loss"] += 1e-6  # and its rounding
    control = {"preset": "c", "seeds": [2], "caught_seeds": [] if caught[2] else [2]}
    study = tmp_path / "study"
    study.mkdir()
    (study / "summary.json").write_text(json.dumps({"preset": "r", "control": control}))
    (study / "results.json").write_text(json.dumps(results))
    out_json = tmp_path / "rerun.json"
    folder = str(course_runs / "tiny")
    assert replicate.main([folder, "--study", str(study), "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "seed 3:" not in out  # tiny seed 3 is there, but the study never judged it
    assert "seed 2: study" in out and "final loss not recorded" in out
    assert "verdict agrees in 1 of 3 seeds; final loss bit-identical in 1 of 2" in out
    record = json.loads(out_json.read_text())
    assert record["counts"] == {
        "seeds": 3,
        "verdict_agrees": 1,
        "with_final_loss": 2,
        "final_loss_identical": 1,
    }
    assert [(r["seed"], r["preset"]) for r in record["rows"]] == [(0, "r"), (1, "r"), (2, "c")]
    assert replicate.main([str(tmp_path / "nothing"), "--study", str(study)]) == 2


def test_vestige_report_writes_the_report_again_from_a_studys_files(tmp_path, capsys):
    """`vestige report FOLDER` (make study-report) rewrites report.md from the folder's own
    summary.json and results.json: the committed study comes out as committed, and a folder
    without a summary is a clear error that writes nothing."""
    import shutil
    from pathlib import Path

    from vestige.cli import main

    study = Path(__file__).resolve().parents[1] / "course" / "study"
    if "rates" not in load(study)[0]:
        pytest.skip("course/study predates the current summary format: run `make study`")
    copy = tmp_path / "study"
    shutil.copytree(study, copy)
    (copy / "report.md").write_text("stale")
    assert main(["report", str(copy), "--search", str(study / "search.jsonl")]) == 0
    assert (copy / "report.md").read_text() == (study / "report.md").read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty)]) == 2
    assert "summary.json not found" in capsys.readouterr().err
    assert list(empty.iterdir()) == []


def test_the_search_appendix_gives_each_familys_ceiling_with_exact_intervals(tmp_path):
    """The ceiling row names the variant count and the most catches (ranked as the
    pre-registration ranks variants), with the Clopper-Pearson interval computed by hand."""
    from vestige.report import _search_appendix

    best = {"failed": [], "peak_effect": 0.3, "final_selectivity": 0.8, "selectivity_baseline": 0.7}
    caught = {("fam+a", "fam"): 3, ("fam+b", "fam"): 1, ("other", "other"): 0}
    lines = [
        {"family": family, "variant": name, "seed": seed, "caught": seed < k, "best": best}
        for (name, family), k in caught.items()
        for seed in range(8)
    ]
    path = tmp_path / "search.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    text = _search_appendix(path)
    # 3 of 8: exact 95% interval [0.0852, 0.7551]; 0 of 8: [0, 0.3694]
    assert "| fam | 2 | 3/8 (38%, 95% 9%-76%) | `fam+a` |" in text
    assert "| other | 1 | 0/8 (0%, 95% 0%-37%) | `other` |" in text


def test_the_report_counts_the_batches_of_perturbations_while_their_files_are_there(
    tmp_path, capsys
):
    """numerics_report.json and numerics_fresh.json beside the study (make numerics-report,
    make numerics-fresh) add rows for their seeds, for every report seed and for every seed,
    with exact intervals computed anew; without them the rows go; a malformed one is a clear
    error that writes nothing."""
    import shutil
    from pathlib import Path

    from vestige.cli import main
    from vestige.stats import rate
    from vestige.summary import numerics

    study = Path(__file__).resolve().parents[1] / "course" / "study"
    if "rates" not in load(study)[0]:
        pytest.skip("course/study predates the current summary format: run `make study`")
    copy = tmp_path / "study"
    ignore = shutil.ignore_patterns(
        "suppression", "verify.json", "numerics_fresh.json", "numerics_report.json"
    )
    shutil.copytree(study, copy, ignore=ignore)
    own = load(copy)[0]["numerics"]["threads-2"]

    def record(seed, caught, peak):
        best = {"unit": "L0N1", "peak_step": peak, "settle_step": 91}
        return {"seed": seed, "caught": caught, "neuron": best, "best_candidate": best}

    def batch(seeds, kept):
        base = [record(s, False, 140) for s in seeds]
        copies = [record(s, i >= kept, 140) for i, s in enumerate(seeds)]
        return {"seeds": seeds, "numerics": numerics(base, {"threads-2": copies})}

    fresh = batch([9000, 9001, 9002], 2)
    assert fresh["numerics"]["threads-2"]["verdict"] == rate(2, 3)
    assert fresh["numerics"]["threads-2"]["changed"] == [9002]
    (copy / "numerics_fresh.json").write_text(json.dumps(fresh))
    assert main(["report", str(copy)]) == 0
    assert load(copy)[0]["numerics_fresh"]["seeds"] == [9000, 9001, 9002]
    report = (copy / "report.md").read_text()
    assert "| threads-2 (fresh seeds) | 9000-9002 | 1 | 2/3 (67%, 95% 9%-99%) |" in report
    assert "(report seeds)" not in report  # no batch of report seeds yet

    def pooled_row(name, seeds, k, n):
        interval = f"{k}/{n} ({k / n:.0%}, 95% {rate(k, n)['low']:.0%}-{rate(k, n)['high']:.0%})"
        return f"| threads-2 ({name}) | {_seed_text(own['seeds'] + seeds)} | ", interval

    k, n = own["verdict"]["k"], own["verdict"]["n"]
    for part in pooled_row("all perturbed seeds", [9000, 9001, 9002], k + 2, n + 3):
        assert part in report
    (copy / "numerics_report.json").write_text(json.dumps(batch([9100, 9101], 2)))
    assert main(["report", str(copy)]) == 0
    report = (copy / "report.md").read_text()
    assert "| threads-2 (other report seeds) | 9100-9101 | 0 | 2/2 (100%" in report
    for part in (
        *pooled_row("report seeds", [9100, 9101], k + 2, n + 2),
        *pooled_row("all perturbed seeds", [9000, 9001, 9002, 9100, 9101], k + 4, n + 5),
    ):
        assert part in report
    assert "noise-1e-6 (fresh seeds)" not in report  # only the perturbations the file holds
    before = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()}
    entry = fresh["numerics"]["threads-2"]
    for name, target, broken in (
        ("numerics_fresh.json", "numerics-fresh", "{not json"),
        ("numerics_fresh.json", "numerics-fresh", json.dumps({"seeds": [1]})),
        ("numerics_fresh.json", "numerics-fresh", json.dumps({**fresh, "numerics": {"x": {}}})),
        (  # counts without k and n
            "numerics_report.json",
            "numerics-report",
            json.dumps({**fresh, "numerics": {"threads-2": {**entry, "verdict": 0.5}}}),
        ),
        (  # the study's own perturbed seeds again: pooled, they would count twice
            "numerics_report.json",
            "numerics-report",
            json.dumps(batch(own["seeds"][:2], 2)),
        ),
    ):
        kept = (copy / name).read_bytes()
        (copy / name).write_text(broken)
        assert main(["report", str(copy)]) == 2
        err = capsys.readouterr().err
        assert "does not hold the seeds and numerics of a study summary" in err, err
        assert f"make {target}" in err
        after = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()}
        assert after == {**before, name: broken.encode()}
        (copy / name).write_bytes(kept)
    for name in ("numerics_fresh.json", "numerics_report.json"):
        (copy / name).unlink()
    assert main(["report", str(copy)]) == 0
    summary = load(copy)[0]
    assert not {"numerics_fresh", "numerics_report", "numerics_pooled"} & set(summary)
    assert "(fresh seeds)" not in (copy / "report.md").read_text()


def _seed_text(seeds):
    from vestige.report import _seeds

    return _seeds(sorted(seeds))


def test_seed_lists_are_written_in_order_with_runs_as_first_last():
    import pandas as pd
    from vestige.report import _seeds

    assert _seeds([5000, 3001, 3000, 3002, 5002]) == "3000-3002, 5000, 5002"
    assert _seeds(pd.Series([7, 8])) == "7-8" and _seeds([4]) == "4"
    assert _seeds([]) == "none" and _seeds(pd.Series([], dtype=int)) == "none"
