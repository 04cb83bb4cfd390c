"""The ranker (sidlib.ranker) and the evaluation job: every item representation trains on a real
slice, NE/gain/warm-cold arithmetic against hand-computed cases, SIDE needs no table."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from sidlib.errors import ConfigError
from sidlib.jobs import build_sequences, evaluate_ranker, export_training_data, refresh
from sidlib.ranker import ItemEncoder, Ranker, Variant
from sidlib.ranker.features import RawEmbeddings
from sidlib.ranker.offline import cold_mask, ne_gain, roi, slice_masks, slice_ne, t_interval
from sidlib.variants import parse_variants

VARIANTS = ["id", "sid:2", "sid:3", "side", "raw"]


def test_every_variant_trains_on_real_slice(pipeline, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    cfg.fit.signals = ["text"]
    cfg.sequences.history_length = 8
    refresh.run(cfg, tables)
    build_sequences.run(cfg, tables)
    export_training_data.run(cfg, tables)
    cfg.evaluate.variants, cfg.evaluate.seeds = VARIANTS, [0, 1]
    cfg.evaluate.epochs, cfg.evaluate.max_steps, cfg.evaluate.eval_every, cfg.evaluate.batch_size = 1, 3, 2, 256
    cfg.evaluate.max_rows, cfg.evaluate.recall_queries = {}, 50
    cfg.evaluate.report_dir = str(tmp_path / "report")
    threads = torch.get_num_threads()
    summary = evaluate_ranker.run(cfg, tables)
    assert torch.get_num_threads() == threads  # the job's evaluate.threads=1 does not leak

    assert list(summary["variants"]) == VARIANTS
    for name, row in summary["variants"].items():
        for task in ("click", "conv"):
            assert math.isfinite(row["ne"][task]["all"]) and math.isfinite(row["ne"][task]["warm"]), (name, task)
        assert all(r["steps"] >= 1 for r in row["runs"]) and len(row["runs"]) == 2
    assert summary["variants"]["id"]["gain"]["click"]["all"]["mean"] == 0.0
    assert summary["variants"]["id"]["roi"] is None and summary["variants"]["sid:3"]["cost_bytes"] == 24

    # warm/cold as the job counts it = target items of test never a train target, from the table itself
    assert summary["inputs"]["ranker_impressions"]["history_length"] == 8  # the default, compact layout
    table = tables.read_unpinned("ranker_impressions").select("item_id", "split").toPandas()
    train_items = table.loc[table["split"] == "train", "item_id"]
    test_items = table.loc[table["split"] == "test", "item_id"]
    assert summary["rows"]["test"] == len(test_items)
    assert summary["test_cold"]["impressions"] == int((~test_items.isin(set(train_items))).sum())

    quality = summary["sid_quality"]
    assert set(quality["recall"]) == {20, 50, 100} and all(0 <= v <= 1 for v in quality["recall"].values())
    assert quality["neighbours"] and len(quality["neighbours"][0]["side"]) == cfg.evaluate.neighbours
    assert all(Path(p).is_file() for p in summary["report"]["plots"])
    assert "| sid:3 |" in Path(summary["report"]["markdown"]).read_text()


def test_slice_ne_matches_hand_computation() -> None:
    labels = np.array([1, 0, 1, 0, 1])
    probs = np.array([0.8, 0.3, 0.6, 0.1, 0.5])
    masks = slice_masks(train_item_ids=[1, 2], item_ids=[1, 2, 3, 3, 1])
    ne = slice_ne(labels, probs, masks)
    # cold = item 3: labels (1, 0), base rate 1/2 -> base entropy log 2
    assert ne["cold"] == pytest.approx((-math.log(0.6) - math.log(0.9)) / 2 / math.log(2))
    # warm = items 1, 2, 1: labels (1, 0, 1), base rate 2/3
    base = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert ne["warm"] == pytest.approx((-math.log(0.8) - math.log(0.7) - math.log(0.5)) / 3 / base)
    # a slice with one label value has no NE
    assert slice_ne(labels, probs, {"ones": labels == 1})["ones"] is None


def test_gain_interval_and_roi_by_hand() -> None:
    assert ne_gain(0.80, 0.78) == pytest.approx(2.5)
    mean, half = t_interval([1.0, 2.0, 3.0], 0.95)
    assert mean == 2.0 and half == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-5)  # t_{0.975, 2}
    assert math.isnan(t_interval([1.5])[1])
    assert roi(2.0, 4.0, 8) == pytest.approx(0.375)
    # the job pairs each seed with the baseline of the same seed
    ne = {"id": [{"click": {"all": 0.8, "warm": 0.8, "cold": None}, "conv": {"all": 0.9, "warm": 0.9, "cold": None}}] * 2,
          "side": [{"click": {"all": 0.76, "warm": 0.8, "cold": None}, "conv": {"all": 0.9, "warm": 0.9, "cold": None}},
                   {"click": {"all": 0.72, "warm": 0.8, "cold": None}, "conv": {"all": 0.9, "warm": 0.9, "cold": None}}]}
    table = evaluate_ranker.summarise([Variant("id"), Variant("side")], ne, 0.95, raw_dim=384)
    gain = table["side"]["gain"]["click"]["all"]
    assert gain["per_seed"] == pytest.approx([5.0, 10.0]) and gain["mean"] == pytest.approx(7.5)
    assert math.isnan(table["side"]["gain"]["click"]["cold"]["mean"])
    assert table["side"]["roi"] == pytest.approx(7.5 / 16)


def test_cold_mask_on_constructed_example() -> None:
    assert cold_mask([10, 11, 11, 12], [11, 13, 10, 14, 13]).tolist() == [False, True, False, True, True]
    masks = slice_masks([10], [10, 20])
    assert masks["all"].tolist() == [True, True] and masks["warm"].tolist() == [True, False]


def ranker(variant: str, cardinalities: list[int], raw: RawEmbeddings | None = None) -> Ranker:
    items = ItemEncoder(Variant.parse(variant), 8, item_buckets=64, cardinalities=cardinalities, raw=raw)
    return Ranker(items, dim=8, heads=2, hidden=16, user_buckets=32)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_side_needs_no_table_sid_grows_with_hash_size() -> None:
    small, large = [16, 16, 16], [256, 256, 256]
    assert n_params(ranker("side", small)) == n_params(ranker("side", large))
    assert n_params(ranker("sid:3", large)) > n_params(ranker("sid:3", small))
    # raw embeddings are buffers, not parameters: only the projection is learned
    raw = RawEmbeddings(np.arange(1, 6), np.ones((5, 4), dtype=np.float32))
    assert n_params(ranker("raw", small, raw)) == n_params(ranker("id", small)) + 4 * 8


@pytest.mark.parametrize("variant", VARIANTS)
def test_missing_sid_and_empty_history_give_finite_scores(variant: str) -> None:
    raw = RawEmbeddings(np.arange(1, 6), np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32))
    model = ranker(variant, [4, 4, 4], raw)
    ids, no_sid = torch.tensor([1, 2] if variant != "raw" else [7, 8]), torch.tensor([-1, -1])
    # a missing SID (or raw embedding) contributes nothing beyond the item-id embedding
    torch.testing.assert_close(model.items(ids, no_sid), model.items.item_table(ids))
    batch = {"user_id": torch.tensor([3, 4]), "item_id": ids, "target_sid": torch.tensor([-1, 63]),
             "hist_len": torch.tensor([0, 2]), "hist_item_ids": torch.tensor([[0, 0, 0], [0, 5, 9]]),
             "hist_sids": torch.tensor([[-1, -1, -1], [-1, 7, -1]]), "hist_clicks": torch.tensor([[0, 0, 0], [0, 1, 0]]),
             "hist_mask": torch.tensor([[False, False, False], [False, True, True]])}
    assert torch.isfinite(model(batch)).all()


def test_variant_parsing() -> None:
    assert Variant.parse("sid:4") == Variant("sid", 4) and Variant.parse("sid").n == 3
    assert Variant.parse("raw").cost_bytes(384) == 1536 and Variant.parse("id").cost_bytes(384) == 8
    for bad in ("sid:0", "sid:x", "side:2", "emb"):
        with pytest.raises(ConfigError):
            Variant.parse(bad)
    with pytest.raises(ConfigError, match="code positions"):
        ranker("sid:4", [4, 4, 4])
    with pytest.raises(ConfigError, match="baseline"):
        parse_variants(["side"])
