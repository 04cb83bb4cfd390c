"""The quality gate on refresh's pointer switch: each check on its own, then a real refresh that the
gate holds (pointer kept, candidate kept for inspection, exit status 3) and one it is told to pass."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from sidlib.artifacts import ArtifactStore
from sidlib.config import RefreshConfig
from sidlib.jobs import refresh
from sidlib.spark import pointer
from sidlib.spark.tables import sid_version_is
from sidlib.steps.quality_gate import failed, gate_checks

from conftest import REPO_ROOT

CURRENT = {"cosine_loss": 0.20, "utilization_min": 0.98, "unique_sid_rate": 0.995}
UNCHANGED = {"compared": 1000, "prefix_changed": 0, "sid_changed": 0}


def failing(candidate: dict[str, float], changes: dict[str, int] = UNCHANGED, *, same_model: bool = True) -> list[str]:
    checks = gate_checks(CURRENT, candidate, changes, same_model=same_model, limits=RefreshConfig())
    return [c.name for c in failed(checks)]


def test_an_equal_candidate_passes_every_check() -> None:
    checks = gate_checks(CURRENT, CURRENT, UNCHANGED, same_model=True, limits=RefreshConfig())
    assert [c.name for c in checks] == ["cosine_loss", "utilization_min", "unique_sid_rate", "churn"]
    assert failed(checks) == []


@pytest.mark.parametrize(("candidate", "changes", "expected"), [
    ({**CURRENT, "cosine_loss": 0.2041}, UNCHANGED, ["cosine_loss"]),     # +2.05% > max_loss_regression 2%
    ({**CURRENT, "cosine_loss": 0.2039}, UNCHANGED, []),                  # +1.95%: within it
    ({**CURRENT, "utilization_min": 0.969}, UNCHANGED, ["utilization_min"]),
    ({**CURRENT, "unique_sid_rate": 0.984}, UNCHANGED, ["unique_sid_rate"]),
    (CURRENT, {"compared": 1000, "prefix_changed": 3, "sid_changed": 51}, ["churn"]),  # 5.1% > max_churn 5%
    (CURRENT, {"compared": 1000, "prefix_changed": 3, "sid_changed": 50}, []),
])
def test_each_check_fails_on_its_own(candidate: dict[str, float], changes: dict[str, int], expected: list[str]) -> None:
    assert failing(candidate, changes) == expected


def test_churn_counts_only_on_an_unchanged_model_and_missing_figures_are_skipped() -> None:
    everything_changed = {"compared": 1000, "prefix_changed": 1000, "sid_changed": 1000}
    assert failing(CURRENT, everything_changed, same_model=False) == []  # a new model's codes mean other things
    checks = gate_checks({"cosine_loss": 0.2}, CURRENT, None, same_model=True, limits=RefreshConfig())
    assert [c.name for c in checks] == ["cosine_loss"]  # an old manifest without utilization figures


def test_a_refit_failing_the_gate_keeps_the_pointer_and_exits_3(pipeline) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    assert refresh.run(cfg, tables)["signals"][0]["action"] == "refit"  # v1, the first version: no gate
    # An explicit refit on the unchanged model from scratch with another seed: other codes for most items.
    strict = dataclasses.replace(cfg, fit=dataclasses.replace(cfg.fit, seed=1),
                                 refresh=dataclasses.replace(cfg.refresh, refit=True, warm_start=False, max_churn=0.0))
    summary = refresh.run(strict, tables)
    (held,) = summary.signals
    assert held.action == "gated" and held.sid_version == 1 and held.candidate_version == 2
    assert summary.exit_status == 3
    churn = next(c for c in held.gate if c.name == "churn")
    assert not churn.passed and churn.candidate == held.changes["sid_changed"] / held.changes["compared"] > 0
    assert pointer.current(tables, "text").sid_version == 1
    assert tables.read_unpinned("item_sids").where(sid_version_is(2)).count() == 120  # kept for inspection
    assert ArtifactStore(cfg.artifacts.root).get(2).signal == "text"

    # The same through the command line: the summary says why, the status is 3 for the scheduler.
    argv = [f"tables.root={cfg.tables.root}", f"artifacts.root={cfg.artifacts.root}", "fit.bits=12", "fit.seed=1",
            "refresh.refit=true", "refresh.warm_start=false", "refresh.max_churn=0"]
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "jobs" / "refresh.py"), *argv],
                          capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 3, proc.stderr[-2000:]
    printed = json.loads(proc.stdout)
    assert printed["exit_status"] == 3 and printed["signals"][0]["action"] == "gated"
    assert pointer.current(tables, "text").sid_version == 1

    forced = dataclasses.replace(strict, refresh=dataclasses.replace(strict.refresh, force_switch=True))
    (switched,) = refresh.run(forced, tables).signals
    assert switched.action == "refit" and "churn" in [c.name for c in failed(switched.gate)]  # still reported
    assert pointer.current(tables, "text").sid_version == switched.sid_version == 4


def test_an_unchanged_refit_with_the_same_seed_passes_the_gate(pipeline) -> None:  # type: ignore[no-untyped-def]
    """The fit is deterministic: refitting the same rows with the same seed gives the same codes, so a
    scheduled refit of an unchanged model passes even a zero churn limit."""
    cfg, tables = pipeline
    refresh.run(cfg, tables)
    again = dataclasses.replace(cfg, refresh=dataclasses.replace(cfg.refresh, refit=True, max_churn=0.0))
    (result,) = refresh.run(again, tables).signals
    assert result.action == "refit" and result.changes["sid_changed"] == 0 and failed(result.gate) == []
    assert pointer.current(tables, "text").sid_version == 2


def test_a_warm_refit_with_another_seed_keeps_every_sid(pipeline) -> None:  # type: ignore[no-untyped-def]
    """refresh.warm_start (the default) starts a same-model refit from the current version's codebooks:
    the seed that moved every SID above no longer matters, and the gate lets the version through. (No
    hold-out, whose items the seed picks too: the seed changes only the initialisation here.)"""
    cfg, tables = pipeline
    cfg = dataclasses.replace(cfg, fit=dataclasses.replace(cfg.fit, holdout_fraction=0.0))
    refresh.run(cfg, tables)
    same_rows = dataclasses.replace(cfg, fit=dataclasses.replace(cfg.fit, seed=1),
                                    refresh=dataclasses.replace(cfg.refresh, refit=True, max_churn=0.0))
    (warm,) = refresh.run(same_rows, tables).signals
    assert warm.action == "refit" and warm.changes["sid_changed"] == 0 and failed(warm.gate) == []
    assert ArtifactStore(cfg.artifacts.root).get(2).manifest["warm_start_from"] == 1
    cold = dataclasses.replace(same_rows, refresh=dataclasses.replace(same_rows.refresh, warm_start=False))
    (from_scratch,) = refresh.run(cold, tables).signals
    assert from_scratch.action == "gated" and from_scratch.changes["sid_changed"] > 0
    assert ArtifactStore(cfg.artifacts.root).get(3).manifest["warm_start_from"] is None


def test_after_a_warm_start_items_keep_their_codes_unless_clearly_beaten(pipeline) -> None:  # type: ignore[no-untyped-def]
    """Another seed holds out other items, so the warm refit trains on other rows and moves codewords.
    With no margin the encode takes every item's new codes; with refresh.stability_margin an item keeps
    its current codes unless the new ones reconstruct it that much better: far fewer SIDs change."""
    cfg, tables = pipeline
    refresh.run(cfg, tables)

    def refit(margin: float):  # type: ignore[no-untyped-def]
        policy = dataclasses.replace(cfg.refresh, refit=True, max_churn=0.0, stability_margin=margin)
        (result,) = refresh.run(dataclasses.replace(cfg, fit=dataclasses.replace(cfg.fit, seed=1), refresh=policy),
                                tables).signals
        return result

    fresh, stable = refit(0.0), refit(1.0)  # both held by the churn check: each compared with v1
    assert fresh.action == stable.action == "gated"
    assert stable.candidate_encode.stable_from == fresh.candidate_encode.stable_from == 1
    assert 0 < fresh.changes["sid_changed"] and stable.changes["sid_changed"] <= fresh.changes["sid_changed"] / 2


def test_enough_new_items_trigger_a_warm_refit_of_an_unchanged_model(pipeline) -> None:  # type: ignore[no-untyped-def]
    """refresh.refit_new_items: once items the current version's fit never saw reach that share of the
    items it encodes, a scheduled refresh refits (warm) although the upstream model did not change."""
    from pyspark.sql import functions as F

    cfg, tables = pipeline
    cfg = dataclasses.replace(cfg, refresh=dataclasses.replace(cfg.refresh, refit_new_items=0.1, max_churn=1.0))
    (first,) = refresh.run(cfg, tables).signals
    assert first.action == "refit" and first.new_items is None  # no current version yet: a first fit
    fitted_on = ArtifactStore(cfg.artifacts.root).get(1).manifest["source"]["valid_rows"]
    content = tables.read_unpinned("content_embeddings")
    new = content.where("signal = 'text' AND item_id <= 20").withColumn("item_id", F.col("item_id") + 100_000)
    tables.write(new.select(*content.columns), "content_embeddings", mode="append")
    (seen,) = refresh.run(cfg, tables).signals  # counted before this run's incremental encode
    assert seen.action == "incremental" and seen.new_items == {"encoded": fitted_on, "fitted_on": fitted_on,
                                                               "new": 0, "share": 0.0}
    assert seen.encode.items_encoded == 20
    (due,) = refresh.run(cfg, tables).signals
    assert due.action == "refit" and due.new_items["new"] == 20 and due.new_items["share"] == 20 / (fitted_on + 20)
    assert ArtifactStore(cfg.artifacts.root).get(due.sid_version).manifest["warm_start_from"] == 1
    lenient = dataclasses.replace(cfg, refresh=dataclasses.replace(cfg.refresh, refit_new_items=0.5))
    (after,) = refresh.run(lenient, tables).signals  # the new version was fitted on every item
    assert after.action == "incremental" and after.new_items["new"] == 0
