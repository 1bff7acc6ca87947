"""Which file counts when a student handed a notebook in more than once.

For each (student, notebook), the file with the latest modification time counts (ties: the
higher ``(N)`` resubmission number, then the name); the others are listed in its flags and
not run. Files without a student name are never merged.
"""

from __future__ import annotations

from collections import defaultdict

from .survey import Survey


def choose(surveyed: list[Survey]) -> tuple[list[Survey], list[Survey]]:
    """(the counted submissions, one per student and notebook; the unreadable ones)."""
    unreadable = [s for s in surveyed if s.reason]
    groups: dict[tuple, list[Survey]] = defaultdict(list)
    for item in surveyed:
        if not item.reason:
            who = item.sub.student or f"\0{item.sub.path}"
            groups[(who, item.notebook)].append(item)
    counted = []
    for _, items in sorted(groups.items()):
        items.sort(key=lambda s: (s.sub.mtime, s.sub.resubmission, str(s.sub.path)))
        latest = items[-1]
        if len(items) > 1:
            others = ", ".join(s.sub.path.name for s in items[:-1])
            latest.flags.append(f"{len(items) - 1} earlier submission(s) not graded: {others}")
        counted.append(latest)
    return counted, unreadable
