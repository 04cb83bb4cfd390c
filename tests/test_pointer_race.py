"""The pointer's compare-and-swap under real concurrency: two processes switch at the same instant.

Path pointers are Delta tables written with delta-rs, whatever ``tables.format`` is, so these need no
engine; each round starts both children at one shared wall-clock time."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from sidlib.config import TablesConfig
from sidlib.spark import pointer
from sidlib.spark.tables import Tables

CHILD = Path(__file__).parent / "helpers" / "pointer_race.py"
ROUNDS = 5


def race(root: Path, *attempts: tuple[str, int, int | None]) -> list[str]:
    """Start one child per ``(signal, version, expected)`` at the same moment; their outcomes."""
    start_at = time.time() + 1.0  # after every child has imported sidlib
    procs = [subprocess.Popen([sys.executable, str(CHILD), str(root), signal, str(version),
                               "none" if expected is None else str(expected), str(start_at)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for signal, version, expected in attempts]
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-2000:]
        outcomes.append(out.strip())
    return outcomes


def tables_at(root: Path) -> Tables:
    return Tables(spark=None, cfg=TablesConfig(root=str(root)))  # type: ignore[arg-type]


def test_two_concurrent_switches_of_one_signal_one_wins_one_lost_race(tmp_path: Path) -> None:
    tables = tables_at(tmp_path)
    pointer.switch(tables, "text", 1, "m", expected=None)
    for r in range(ROUNDS):
        held = pointer.current(tables, "text").sid_version
        a, b = 100 + 2 * r, 101 + 2 * r
        outcomes = race(tmp_path, ("text", a, held), ("text", b, held))
        assert sorted(outcomes) == ["lost_race", "won"], outcomes
        now = pointer.current(tables, "text")
        assert now.sid_version == (a if outcomes[0] == "won" else b) and now.previous_version == held


def test_first_creation_race_of_two_signals_keeps_both_pointers(tmp_path: Path) -> None:
    for r in range(ROUNDS):
        root = tmp_path / f"round{r}"
        assert race(root, ("text", 1, None), ("credits", 2, None)) == ["won", "won"]
        tables = tables_at(root)
        assert pointer.current(tables, "text").sid_version == 1
        assert pointer.current(tables, "credits").sid_version == 2


def test_two_first_switches_of_one_signal_one_wins(tmp_path: Path) -> None:
    for r in range(ROUNDS):
        root = tmp_path / f"round{r}"
        outcomes = race(root, ("text", 1, None), ("text", 2, None))
        assert sorted(outcomes) == ["lost_race", "won"], outcomes
        assert pointer.current(tables_at(root), "text").sid_version == (1 if outcomes[0] == "won" else 2)
