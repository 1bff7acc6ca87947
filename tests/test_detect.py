"""The strict definition of a vestigial neuron: every clause can fail on its own."""

import pandas as pd
import pytest
from vestige.detect import Criteria, detect, judge

STEPS = [0, 10, 20, 40, 80, 160]
PASSING = {
    "effect": [0.05, 0.30, 0.40, 0.25, 0.02, 0.01],
    "half_width": 0.02,
    "selectivity": 0.90,
    "matched": 0.60,
    "preferred": "trigger",
}


def line(
    effect=None, half_width=None, selectivity=None, matched=None, preferred=None, final_high=None
) -> pd.DataFrame:
    """A neuron's timeline like `detect.timelines` makes: PASSING unless told otherwise."""
    effect = PASSING["effect"] if effect is None else effect
    hw = PASSING["half_width"] if half_width is None else half_width
    hw = hw if isinstance(hw, list) else [hw] * len(STEPS)
    table = pd.DataFrame(
        {
            "step": STEPS,
            "unit": "L0N1",
            "positions": "trigger",
            "preferred_class": ["trigger"] * 5 + [preferred or PASSING["preferred"]],
            "selectivity": [0.5] * 5 + [selectivity or PASSING["selectivity"]],
            "matched_selectivity": [0.1] * 5 + [matched or PASSING["matched"]],
            "effect": effect,
            "effect_low": [e - h for e, h in zip(effect, hw)],
            "effect_high": [e + h for e, h in zip(effect, hw)],
            "margin_effect": [2 * e for e in effect],
            "margin_effect_low": [2 * e - 0.1 for e in effect],
            "margin_effect_high": [2 * e + 0.1 for e in effect],
            "effect_own": effect,
            "untrained_p99": 0.65,
            "untrained_matched_p99": 0.30,
        }
    )
    if final_high is not None:
        table.loc[len(table) - 1, "effect_high"] = final_high
    return table


def verdict(floor=0.1, **changes) -> dict:
    return judge(line(**changes), Criteria(), init_floor=floor, focus="trigger")


def test_a_neuron_passing_every_clause_is_vestigial():
    v = verdict()
    assert v["vestigial"] and v["failed"] == []
    assert (v["peak_step"], v["settle_step"], v["needed_checkpoints"]) == (20, 80, 3)
    assert v["final_fraction"] == pytest.approx(0.01 / 0.40)
    assert v["margin_fraction"] == pytest.approx(0.02 / 0.80)
    assert "peak 0.400" in v["reason"]


@pytest.mark.parametrize(
    "clause, changes",
    [
        # the peak's interval reaches below 0.15, though two later checkpoints are clearly needed
        (
            "needed",
            {
                "effect": [0.05, 0.10, 0.40, 0.30, 0.25, 0.01],
                "half_width": [0.02, 0.02, 0.30, 0.02, 0.02, 0.02],
            },
        ),
        ("above_init", {"floor": 0.25}),  # 0.40 < 2 x 0.25
        ("sustained", {"effect": [0.05, 0.10, 0.40, 0.12, 0.02, 0.01]}),  # one checkpoint only
        ("faded", {"final_high": 0.045}),  # upper bound 11% of the peak
        ("selective", {"selectivity": 0.60}),  # below the untrained p99 (0.65)
        ("prefers_focus", {"preferred": "decoy"}),
        ("token_selective", {"matched": 0.25}),  # below the untrained same-token p99 (0.30)
    ],
)
def test_each_clause_fails_alone(clause, changes):
    v = verdict(**changes)
    assert v["failed"] == [clause] and not v["vestigial"]
    assert v[clause] is False
    assert all(v[other] for other in Criteria().clauses() if other != clause)


def test_step_zero_is_never_the_peak():
    v = verdict(effect=[0.90, 0.30, 0.40, 0.25, 0.02, 0.01])
    assert v["peak_step"] == 20


def test_without_the_same_token_clause_token_identity_is_enough():
    criteria = Criteria(same_token=False)
    assert "token_selective" not in criteria.clauses()
    v = judge(line(matched=0.05), criteria, init_floor=0.1, focus="trigger")
    assert v["vestigial"]


def test_detect_on_a_run_judges_every_neuron_with_reasons(tiny_run):
    found = detect(tiny_run)
    assert len(found.neurons) == 8 and found.neurons["reason"].str.len().gt(10).all()
    at_init = found.timelines.query("step == 0")
    assert found.init_floor == at_init.effect.max()
    assert (found.timelines.effect_low <= found.timelines.effect).all()
    assert (found.timelines.effect <= found.timelines.effect_high).all()
    assert found.summary().startswith("seed 0:")


def test_each_neuron_is_judged_on_its_own_crutch_against_its_floor():
    from vestige.detect import judge_all

    def crutch_line(neuron, positions, effect):
        table = line(effect=effect).assign(neuron=neuron, layer=0, positions=positions)
        table["unit"] = f"L0N{neuron}"
        table["preferred_class"] = positions
        return table

    lines = pd.concat(
        [
            crutch_line(1, "trigger_0", PASSING["effect"]),  # peak 0.40
            crutch_line(2, "trigger_1", PASSING["effect"]),
        ]
    )
    floors = {"trigger_0": 0.1, "trigger_1": 0.25}  # 0.40 < 2 x 0.25: crutch 1 is noisier
    focus = ("trigger_0", "trigger_1")
    judged = judge_all(lines, Criteria(), floors, focus).set_index("unit")
    assert judged.loc["L0N1", "vestigial"] and judged.loc["L0N1", "init_floor"] == 0.1
    assert judged.loc["L0N2", "failed"] == ["above_init"]
    # the stricter floor over every crutch: both fail
    strict = judge_all(lines, Criteria(floor="all"), floors, focus).set_index("unit")
    assert not strict["vestigial"].any() and (strict["init_floor"] == 0.25).all()
    # a neuron preferring another crutch's positions at the end fails prefers_focus
    odd = crutch_line(3, "trigger_0", PASSING["effect"])
    odd.loc[odd.index[-1], "preferred_class"] = "trigger_1"
    assert judge_all(odd, Criteria(), floors, focus).iloc[0]["failed"] == ["prefers_focus"]


def test_the_floor_a_neuron_is_judged_against_is_what_its_verdict_used(tiny_run):
    """`Detection.floor_for` (what a learner's own loop over the timelines uses) gives every
    neuron the floor the detector judged it against, and follows `Criteria.floor`."""
    from vestige.detect import own_floor

    found = detect(tiny_run)
    for unit, line in found.timelines.groupby("unit"):
        used = found.neurons.set_index("unit").loc[unit, "init_floor"]
        assert found.floor_for(line["positions"].iloc[-1]) == used
    floors = {"trigger_0": 0.1, "trigger_1": 0.25}
    assert own_floor(Criteria(), floors, "trigger_0") == 0.1
    assert own_floor(Criteria(), floors, "all") == 0.25  # no floor of its own: the largest
    assert own_floor(Criteria(floor="all"), floors, "trigger_0") == 0.25


def test_the_bar_quantile_is_a_criteria_setting():
    table = line(selectivity=0.70).assign(untrained_p95=0.60, untrained_matched_p95=0.2)
    table["untrained_p999"], table["untrained_matched_p999"] = 0.80, 0.4
    assert judge(table, Criteria(bar="p95"), 0.1, "trigger")["vestigial"]
    assert judge(table, Criteria(), 0.1, "trigger")["vestigial"]  # 0.70 > p99 0.65
    assert judge(table, Criteria(bar="p999"), 0.1, "trigger")["failed"] == ["selective"]
    with pytest.raises(ValueError, match="bar"):
        Criteria(bar="p50")
