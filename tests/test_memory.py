"""vestige.memory gives the C heap's free pages back to the operating system."""

from __future__ import annotations

import sys

import pytest
from vestige import memory


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_heap_memory_goes_back_to_the_system_only_when_released():
    blocks = [bytearray(64 * 1024) for _ in range(3000)]  # ~190 MB on the heap, not mmap'd
    pin = bytearray(64 * 1024)  # allocated last: the heap's top stays in use
    del blocks
    before = resident_mb()
    assert memory.release_free_memory()
    after = resident_mb()
    assert before - after > 100, (before, after)
    del pin


def test_without_malloc_trim_it_does_nothing(monkeypatch):
    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    assert memory.release_free_memory() is False


def test_a_run_trims_the_heap_before_loading_a_checkpoint_not_on_a_cached_one(
    course_runs, monkeypatch
):
    import vestige.runs

    calls = []
    monkeypatch.setattr(vestige.runs, "release_free_memory", lambda: calls.append(1))
    run = vestige.runs.Run.open(course_runs / "tiny/seed-0")
    first, last = run.steps[0], run.steps[-1]
    run.model_at(first)
    run.model_at(first)  # cached: nothing was freed since
    run.model_at(last)
    assert len(calls) == 2
