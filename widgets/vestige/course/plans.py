"""The workshop's plans: a full day and a three-hour cut, every exercise listed with its pace
(`vestige.course.checks.Pace`, from the checks modules) and the sums worked out here, so the
syllabus's tables cannot disagree with the notebooks. `vestige course build` writes them
into ``course/syllabus.md`` between ``<!-- plans:start -->`` and ``<!-- plans:end -->``.

Every minute here is an estimate of a learner's time, not a measurement; the measured
execution times are `make binder-check`'s table."""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import checks

# Minutes to read a notebook and run its cells, exercises aside (estimates).
READING = {
    "00_welcome": 5,
    "05_training": 10,
    "10_vestigial": 15,
    "20_explorer": 10,
    "30_counterfactual": 10,
    "40_many_seeds": 10,
    "50_real_models": 15,
}
START, END = "<!-- plans:start -->", "<!-- plans:end -->"


@dataclass(frozen=True)
class Plan:
    """A plan: its notebooks in order, the exercises kept (importance at least
    `min_importance`), the sessions that are not notebooks, and the time it must fit."""

    name: str
    notebooks: tuple[str, ...]
    min_importance: int
    sessions: tuple[tuple[str, int], ...]
    budget: int  # minutes

    def rows(self) -> list[dict]:
        """One row per notebook and per session: what is done, skipped, and its minutes."""
        rows = []
        for notebook in self.notebooks:
            module = checks.load(notebook)
            exercises = module.exercises if module else {}
            unpaced = [e.id for e in exercises.values() if e.pace is None]
            if unpaced:
                raise ValueError(f"{notebook}: exercises without a Pace: {', '.join(unpaced)}")
            kept = [e for e in exercises.values() if e.pace.importance >= self.min_importance]
            skipped = [e.id for e in exercises.values() if e not in kept]
            rows.append(
                {
                    "part": f"`{notebook}`",
                    "exercises": ", ".join(f"{e.id} ({e.pace.minutes})" for e in kept) or "-",
                    "skipped": ", ".join(skipped) or "-",
                    "minutes": READING[notebook] + sum(e.pace.minutes for e in kept),
                }
            )
        rows += [
            {"part": name, "exercises": "-", "skipped": "-", "minutes": minutes}
            for name, minutes in self.sessions
        ]
        return rows

    def minutes(self) -> int:
        return sum(row["minutes"] for row in self.rows())


PLANS = (
    Plan(
        "Full day",
        tuple(READING),
        min_importance=1,
        sessions=(("talk", 30), ("breaks and lunch", 75), ("discussion of the study", 30)),
        budget=7 * 60,
    ),
    Plan(
        "Three hours",
        ("00_welcome", "10_vestigial", "20_explorer", "30_counterfactual", "40_many_seeds"),
        min_importance=4,
        sessions=(("talk", 15), ("break", 10), ("discussion of the study", 10)),
        budget=3 * 60,
    ),
)


def render() -> str:
    """The plans as Markdown tables, with their sums."""
    parts = []
    for plan in PLANS:
        rule = (
            "every exercise"
            if plan.min_importance <= 1
            else f"the exercises of importance {plan.min_importance} or more"
        )
        parts += [
            f"**{plan.name}** ({rule}; {plan.minutes()} of {plan.budget} minutes):",
            "",
            "| part | exercises kept (minutes) | skipped | minutes, reading included |",
            "|---|---|---|---|",
            *(
                f"| {r['part']} | {r['exercises']} | {r['skipped']} | {r['minutes']} |"
                for r in plan.rows()
            ),
            f"| **total** | | | **{plan.minutes()}** |",
            "",
        ]
    return "\n".join(parts).rstrip() + "\n"


def with_plans(text: str) -> str:
    """`text` (the syllabus) with its plans block replaced by `render()`'s."""
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"the syllabus has no {START} ... {END} block for the plans")
    return pattern.sub(lambda _: f"{START}\n{render()}{END}", text)
