"""The report written per SID version: its figures on hand-made codes, then the files a real refresh writes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from sidlib.jobs import refresh
from sidlib.spark.local_values import version_codes
from sidlib.version_report import version_figures

# 6 items, 2 positions of 4 codes: items 10, 11, 12 share SID (0, 1); 13 and 14 share (2, 3).
CODES = np.array([[0, 1], [0, 1], [0, 1], [2, 3], [2, 3], [1, 0]])
IDS = np.array([10, 11, 12, 13, 14, 15])
TITLES = {10: "Alien", 11: "Aliens", 12: "Alien 3", 13: "Heat"}


def test_figures_of_hand_made_codes() -> None:
    asked = []

    def titles(ids):  # type: ignore[no-untyped-def]
        asked.extend(ids)
        return {i: TITLES[i] for i in ids if i in TITLES}

    figures = version_figures(CODES, [4, 4], IDS, titles, {"compared": 4, "prefix_changed": 1, "sid_changed": 2})
    assert sorted(asked) == [10, 11, 12, 13, 14]  # only the examples' titles are looked up
    assert [p["dead_codes"] for p in figures["positions"]] == [1, 1]  # codes 3 and 2 unused
    assert [p["utilization"] for p in figures["positions"]] == [0.75, 0.75]
    assert figures["unique_sid_rate"] == pytest.approx(3 / 6)
    # bucket sizes 1, 2, 3: Gini = sum((2i - n - 1) x_i) / (n sum x) = (-2*1 + 0*2 + 2*3) / (3*6)
    assert figures["bucket_gini"] == pytest.approx(4 / 18)
    assert figures["largest_buckets"] == [
        {"codes": [0, 1], "items": 3, "examples": ["Alien", "Aliens", "Alien 3"]},
        {"codes": [2, 3], "items": 2, "examples": ["Heat", "14"]},  # no title: the item id
    ]
    assert figures["churn"] == {"compared": 4, "first_code_changed": 0.25, "sid_changed": 0.5}


def test_every_refit_writes_a_report_next_to_its_artifact(pipeline) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    (first,) = refresh.run(cfg, tables).signals
    report = Path(first.report["markdown"])
    assert report.parent == Path(cfg.artifacts.root).resolve() / "reports" / "v000001"
    text = report.read_text()
    assert text.startswith("# SID version 1 (text)") and "No previous version." in text and "Over 120 items" in text
    assert all(Path(p).stat().st_size > 0 for p in first.report["plots"])
    assert first.report["items"] == 120 and first.report["churn"] is None
    ids, codes, total = version_codes(tables, 1, max_items=60)  # beyond the cap: a hash-picked sample
    assert total == 120 and 30 <= len(ids) <= 90 and codes.shape == (len(ids), 3)
    assert np.array_equal(ids, np.sort(ids))

    refit = dataclasses.replace(cfg, fit=dataclasses.replace(cfg.fit, seed=1),
                                refresh=dataclasses.replace(cfg.refresh, refit=True, force_switch=True))
    (second,) = refresh.run(refit, tables).signals
    churn = second.report["churn"]
    assert churn["compared"] == 120 and churn["sid_changed"] == second.changes["sid_changed"] / 120
    assert "Of the 120 items v1 and v2 both encode" in Path(second.report["markdown"]).read_text()
