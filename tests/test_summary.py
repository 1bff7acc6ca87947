"""The study's statistics against hand computations (vestige.summary, vestige.stats)."""

import math

import pytest
from vestige.stats import fisher, holm, paired_test, rate
from vestige.summary import (
    OUTCOMES,
    SWEEP,
    catch_rates,
    coincidence_null,
    comparisons,
    first_copy,
    fresh_check,
    numerics,
    one_clause_short,
    sweep_key,
    threshold_sweep,
)


def test_exact_interval_on_a_rate():
    # k = 0: the upper bound solves (1 - p)^n = 0.025
    zero = rate(0, 20)
    assert zero["low"] == 0 and zero["high"] == pytest.approx(1 - 0.025 ** (1 / 20))
    # k = n: the lower bound solves p^n = 0.025
    assert rate(20, 20)["low"] == pytest.approx(0.025 ** (1 / 20))
    three = rate(3, 20)
    assert three["rate"] == 0.15 and 0.03 < three["low"] < 0.033 and 0.378 < three["high"] < 0.38


def test_fisher_one_sided_p_is_the_hypergeometric_tail():
    # 3/20 against 0/5: P(all 3 catches fall in the first group) = C(20,3) / C(25,3)
    assert fisher(3, 20, 0, 5)["p_greater"] == pytest.approx(1140 / 2300)
    # 16/20 against 0/20: the tail is C(20,16) C(20,0) / C(40,16)
    assert fisher(16, 20, 0, 20)["p_greater"] == pytest.approx(
        math.comb(20, 16) / math.comb(40, 16)
    )


def test_holm_multiplies_the_sorted_p_values_and_keeps_them_monotone():
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": math.nan})
    assert adjusted["a"] == pytest.approx(0.03)  # 3 x 0.01
    assert adjusted["c"] == pytest.approx(0.06)  # 2 x 0.03
    assert adjusted["b"] == pytest.approx(0.06)  # max(0.06, 1 x 0.04)
    assert math.isnan(adjusted["d"])


def test_paired_test_is_a_one_sample_t_test():
    out = paired_test([0.1, 0.2, 0.15, 0.05])
    mean, sd = 0.125, math.sqrt(sum((x - 0.125) ** 2 for x in [0.1, 0.2, 0.15, 0.05]) / 3)
    assert out["mean"] == pytest.approx(mean)
    t = mean / (sd / 2)
    from scipy import stats

    assert out["p"] == pytest.approx(2 * stats.t.sf(t, 3))


def seed(s, caught, sweep=None, failed=(), settle=140, conditions=None, faders=()):
    best = {"unit": "L0N1", "peak_step": 73, "settle_step": settle, "failed": list(failed)}
    return {
        "seed": s,
        "caught": caught,
        "neuron": best if caught else None,
        "best_candidate": best,
        "sweep": sweep or {},
        "steps": [0, 25, 48, 73, 91, 113, 140, 174, 216, 268, 332, 412, 511, 633, 786, 1500],
        "faders": list(faders),
        "target": {"caught": caught},
        "base": {"final_loss": 1.0, **{m: 0.0 for m in ("final_accuracy", "focus_loss")}},
        "conditions": conditions or {},
        "mechanism": {"settle_step": settle, "transitions": {"stage": 140.0}},
        "first_copy": {
            "scored_peak": 0.4,
            "unscored_peak": 0.8,
            "scored_final": 0.0,
            "unscored_final": 0.5,
        },
    }


def test_catch_rates_and_the_control():
    main = [seed(s, caught=s < 16) for s in range(20)]
    control = [seed(s, caught=False) for s in range(20)]
    rates = catch_rates(main, control)
    assert rates["reference"]["k"] == 16 and rates["control"]["k"] == 0
    assert rates["fisher"]["p_greater"] == pytest.approx(math.comb(20, 16) / math.comb(40, 16))
    assert rates["target"] == {"rate": 0.8, "met": True, "excluded": False, "control_clean": True}


def test_the_pre_registered_target_is_met_missed_or_excluded():
    def target(k, n=20, control_caught=0):
        main = [seed(s, caught=s < k) for s in range(n)]
        control = [seed(s, caught=s < control_caught) for s in range(20)]
        return catch_rates(main, control)["target"]

    assert target(16)["met"] and not target(15)["met"]
    assert not target(12)["excluded"]  # 12/20: upper bound 0.81
    assert target(11)["excluded"]  # 11/20: upper bound 0.77
    assert target(3)["excluded"] and not target(3)["met"]
    assert not target(16, control_caught=1)["control_clean"]


def test_threshold_sweep_counts_each_setting():
    key = sweep_key("min_peak", 0.1)
    results = [seed(s, caught=True, sweep={key: s < 3}) for s in range(4)]
    rows = {(r["parameter"], r["value"]): r for r in threshold_sweep(results)}
    assert rows[("min_peak", 0.1)]["k"] == 3 and rows[("min_peak", 0.1)]["n"] == 4
    assert rows[("min_peak", 0.2)]["n"] == 0  # no seed recorded it
    assert len(rows) == sum(len(v) for v in SWEEP.values())


def test_one_clause_short_lists_seeds_failing_a_single_clause():
    results = [
        seed(1, False, failed=["faded"]),
        seed(2, False, failed=["faded", "selective"]),
        seed(3, True),
        seed(4, False, failed=["faded"]),
    ]
    assert one_clause_short(results) == {"faded": [1, 4]}


def test_the_coincidence_null_counts_what_early_faders_would_hit():
    # every early fader settles at the stage's date: chance explains every coincidence
    everyone = [seed(s, True, settle=140, faders=[140, 140]) for s in range(5)]
    out = coincidence_null(everyone, n_draws=200)["transitions"]["stage"]
    assert out == {"observed": 5, "expected": 5.0, "p": 1.0, "p_holm": 1.0}
    # faders settle far from it (step 1500; 140 is not within one checkpoint): none by chance
    apart = [seed(s, True, settle=140, faders=[1500]) for s in range(5)]
    out = coincidence_null(apart, n_draws=200)["transitions"]["stage"]
    assert out == {"observed": 5, "expected": 0.0, "p": 0.0, "p_holm": 0.0}
    # half the faders at the date: expected count n/2, and 5 of 5 is then unlikely
    half = [seed(s, True, settle=140, faders=[140, 1500]) for s in range(5)]
    out = coincidence_null(half, n_draws=20000, seed=1)["transitions"]["stage"]
    assert out["expected"] == pytest.approx(2.5, abs=0.05)
    assert out["p"] == pytest.approx(0.5**5, abs=0.005)


def test_the_coincidence_null_is_holm_corrected_over_the_transitions():
    """Two transitions, one far from every settle step (p = 1): Holm doubles the smaller p."""
    half = [seed(s, True, settle=140, faders=[140, 1500]) for s in range(5)]
    for r in half:
        r["mechanism"]["transitions"]["late"] = 1500
    out = coincidence_null(half, n_draws=20000, seed=1)["transitions"]
    assert out["late"]["observed"] == 0 and out["late"]["p_holm"] == 1.0
    assert out["stage"]["p_holm"] == pytest.approx(2 * out["stage"]["p"])


def outcomes(final_loss: float) -> dict:
    return {m: 0.0 for m in OUTCOMES} | {"final_loss": final_loss}


def test_comparisons_split_by_target_and_contrast_with_the_control():
    results = []
    for s in range(6):
        caught = s < 3
        r = seed(s, caught)
        r["base"] = outcomes(1.0)
        r["conditions"] = {
            "neuron-1T": outcomes(1.02 if caught else 1.0 + 0.001 * s),
            "control-1T": outcomes(1.01 + 0.001 * s),
        }
        results.append(r)
    out = comparisons(results, ("neuron-1T", "control-1T"), {"neuron-1T": "a", "control-1T": "b"})
    target = out["conditions"]["neuron-1T"]
    assert target["delta_final_loss_caught"]["mean"] == pytest.approx(0.02)
    assert target["delta_final_loss_not_caught"]["mean"] == pytest.approx(0.004)
    assert target["delta_final_loss"]["mean"] == pytest.approx(0.012)
    contrast = out["contrasts"]["neuron-1T - control-1T"]
    # per seed: (0.02, 0.02, 0.02, 0.003, 0.004, 0.005) - (0.01 ... 0.015)
    expected = [
        0.02 - 0.010,
        0.02 - 0.011,
        0.02 - 0.012,
        0.003 - 0.013,
        0.004 - 0.014,
        0.005 - 0.015,
    ]
    assert contrast["mean"] == pytest.approx(sum(expected) / 6) and contrast["n"] == 6
    assert set(out["holm_family"]) == {"neuron-1T", "control-1T", "neuron-1T - control-1T"}
    ps = {k: v["delta_final_loss"]["p"] for k, v in out["conditions"].items()}
    ps["neuron-1T - control-1T"] = contrast["p"]
    assert target["p_holm"] == pytest.approx(holm(ps)["neuron-1T"])
    # control-1T: +0.01 to +0.015 in every seed, a tiny spread: clearly worse even after Holm
    assert out["conditions"]["control-1T"]["verdict"] == "worse"


def test_first_copy_means_over_caught_seeds():
    out = first_copy([seed(1, True), seed(2, False), seed(3, True)])
    assert out["n"] == 2 and out["unscored_final"]["mean"] == pytest.approx(0.5)


def test_numerics_counts_verdicts_and_steps_kept():
    main = [seed(1, True), seed(2, False), seed(3, True)]
    copies = [seed(1, True), seed(2, True), seed(3, True, settle=174)]
    out = numerics(main, {"threads-2": copies})["threads-2"]
    assert out["verdict"]["k"] == 2 and out["verdict"]["n"] == 3
    assert out["changed"] == [2]
    assert out["peak_step"]["k"] == 3 and out["settle_step"]["k"] == 2


def test_fresh_check_counts_only_claims_that_hold_and_tests_against_the_study():
    """verify.py's records: a rejected claim is no catch, a missed neuron is listed, the
    fresh reference seeds are tested against the study's 11/20 and pooled with them, and
    the control's pooled with the study's 0/20."""

    def seed(n, claimed=None, holds=True, missed=()):
        return {"seed": n, "claimed": claimed, "holds": holds, "missed": list(missed)}

    reference = [seed(5000, "L0N44"), seed(5001, "L0N2", holds=False)]
    reference += [seed(5002, missed=["L1N3"])] + [seed(n) for n in range(5003, 5010)]
    records = {
        "reference": {"folder": "runs/verify/reference", "results": reference},
        "control": {
            "folder": "runs/verify/control",
            "results": [seed(n) for n in range(6000, 6010)],
        },
    }
    summary = {
        "preset": "reference",
        "control": {"preset": "control"},
        "rates": {"reference": rate(11, 20), "control": rate(0, 20)},
    }
    fresh = fresh_check(records, summary)
    assert list(fresh) == ["reference", "control"]  # the study's own preset first
    ref, ctl = fresh["reference"], fresh["control"]
    assert (ref["rate"]["k"], ref["rate"]["n"], ref["caught"]) == (1, 10, [5000])
    assert ref["rejected"] == [5001] and ref["missed"] == {"5002": ["L1N3"]}
    # 1/10 against 11/20, two-sided: the tables at least as unlikely as [[1, 9], [11, 9]]
    tables = {k: math.comb(10, k) * math.comb(20, 12 - k) / math.comb(30, 12) for k in range(11)}
    p = sum(v for v in tables.values() if v <= tables[1] * (1 + 1e-7))
    assert ref["against_study"]["p_two_sided"] == pytest.approx(p)
    assert (ref["pooled"]["k"], ref["pooled"]["n"]) == (12, 30)
    assert ctl["rate"]["k"] == 0 and ctl["rate"]["high"] == pytest.approx(1 - 0.025 ** (1 / 10))
    assert "against_study" not in ctl and ctl["missed"] == {} and ctl["rejected"] == []
    assert ctl["pooled"]["high"] == pytest.approx(1 - 0.025 ** (1 / 30))  # 0 of 30


def test_pooled_numerics_adds_counts_and_recomputes_exact_intervals():
    from vestige.summary import pooled_numerics

    def entry(seeds, kept, caught, changed):
        return {
            "seeds": seeds,
            "caught": caught,
            "verdict": rate(kept, len(seeds)),
            "peak_step": rate(1, len(seeds)),
            "settle_step": rate(0, len(seeds)),
            "changed": changed,
        }

    a = {"threads-2": entry([1, 2, 3, 4], 3, 2, [1]), "noise-1e-6": entry([1, 2, 3, 4], 4, 2, [])}
    b = {"threads-2": entry(list(range(10, 20)), 5, 5, [11, 12, 13, 14, 15])}
    pooled = pooled_numerics(a, b)
    assert list(pooled) == ["threads-2"]  # only what both hold
    p = pooled["threads-2"]
    assert p["verdict"] == rate(8, 14) and p["peak_step"] == rate(2, 14)
    assert p["seeds"] == [1, 2, 3, 4, *range(10, 20)] and p["caught"] == 7
    assert p["changed"] == [1, 11, 12, 13, 14, 15]
    # 8 of 14: exact 95% interval [0.289, 0.823], not an average of the two intervals
    assert p["verdict"]["low"] == pytest.approx(0.2886, abs=1e-3)
    assert p["verdict"]["high"] == pytest.approx(0.8234, abs=1e-3)


def test_numerics_pools_every_report_seed_and_every_seed():
    from vestige.summary import numerics_pools

    def entry(seeds, kept):
        return {
            "seeds": seeds,
            "caught": 1,
            "verdict": rate(kept, len(seeds)),
            "peak_step": rate(0, len(seeds)),
            "settle_step": rate(0, len(seeds)),
            "changed": [],
        }

    own = {"threads-2": entry([1, 2], 2)}
    report = {"threads-2": entry([3, 4, 5], 1)}
    fresh = {"threads-2": entry([9, 10], 0)}
    both = numerics_pools(own, {"numerics_report": report, "numerics_fresh": fresh})
    assert list(both) == ["report seeds", "all perturbed seeds"]
    assert both["report seeds"]["threads-2"]["verdict"] == rate(3, 5)
    assert both["all perturbed seeds"]["threads-2"]["verdict"] == rate(3, 7)
    assert both["all perturbed seeds"]["threads-2"]["seeds"] == [1, 2, 3, 4, 5, 9, 10]
    only_fresh = numerics_pools(own, {"numerics_fresh": fresh})
    assert list(only_fresh) == ["all perturbed seeds"]  # no batch of report seeds: no such row
    assert only_fresh["all perturbed seeds"]["threads-2"]["verdict"] == rate(2, 4)
    only_report = numerics_pools(own, {"numerics_report": report})
    assert list(only_report) == ["report seeds"]  # not twice the same pool
