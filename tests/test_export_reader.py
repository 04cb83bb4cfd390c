"""export_training_data (time-based splits into ``ranker_training``) and the Petastorm reader that
streams a Delta snapshot (or a Parquet directory) into torch batches, on the demo MovieLens events."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from deltalake import DeltaTable

from sidlib import schemas
from sidlib.config import ExportConfig, EngineConfig, SidlibConfig, TablesConfig
from sidlib.errors import ConfigError, TableError
from sidlib.jobs import build_sequences, export_training_data, train_preview
from sidlib.ranker.train import load_split
from sidlib.reader import dataloader_from_config, files_by_bucket, make_dataloader, snapshot_files
from sidlib.spark.tables import Tables

from test_sequences import has_sid, random_events, sequences_env, synthetic_item_sids, write_item_sids

N = 10
ROWS_PER_FILE = 10_000  # the demo data has ~38k events: several files per table


@pytest.fixture(scope="module")
def exported(spark, demo_tables, tmp_path_factory):  # type: ignore[no-untyped-def]
    cfg, tables, events = sequences_env(spark, demo_tables, tmp_path_factory.mktemp("export"))
    cfg.sequences.history_length = N
    cfg.sequences.rows_per_file = cfg.export.rows_per_file = ROWS_PER_FILE
    build_sequences.run(cfg, tables)
    summary = export_training_data.run(cfg, tables)
    table = tables.read_unpinned("ranker_training").toPandas()
    return cfg, tables, summary, table


def location(tables: Tables) -> str:
    return tables.location("ranker_training")


def test_split_is_time_ordered_and_complete(exported) -> None:  # type: ignore[no-untyped-def]
    _, tables, summary, table = exported
    tables.check_schema("ranker_training", schemas.RANKER_TRAINING)
    assert DeltaTable(location(tables)).metadata().partition_columns == ["split"]
    for name in ("sequences", "ranker_training"):  # files (= Petastorm's read units) of bounded size
        rows = [pq.ParquetFile(f.removeprefix("file://")).metadata.num_rows
                for f in snapshot_files(tables.location(name))[0]]
        assert len(rows) >= 3 and max(rows) <= 1.5 * ROWS_PER_FILE, (name, rows)
    counts = table["split"].value_counts().to_dict()
    assert set(counts) == set(schemas.SPLITS)
    assert {s: summary["splits"][s]["rows"] for s in schemas.SPLITS} == counts
    assert summary["written"]["ranker_training"]["rows"] == len(table) == summary["inputs"]["sequences"]["rows"]
    ts = {s: table.loc[table["split"] == s, "ts"] for s in schemas.SPLITS}
    assert ts["train"].max() < ts["valid"].min() <= ts["valid"].max() < ts["test"].min()
    assert (ts["train"] < summary["boundaries"]["valid"]).all()
    assert (ts["valid"] >= summary["boundaries"]["valid"]).all()
    assert (ts["test"] >= summary["boundaries"]["test"]).all()
    fractions = {s: counts[s] / len(table) for s in schemas.SPLITS}
    assert abs(fractions["train"] - 0.8) < 0.02 and abs(fractions["valid"] - 0.1) < 0.02, fractions
    assert abs(fractions["test"] - 0.1) < 0.02, fractions
    # same rows and content as sequences, plus the split column
    seq = tables.read_unpinned("sequences").toPandas().sort_values(["user_id", "item_id", "ts"]).reset_index(drop=True)
    out = table.sort_values(["user_id", "item_id", "ts"]).reset_index(drop=True)
    for col in ("user_id", "item_id", "ts", "click", "conv", "target_sid", "hist_len"):
        assert (seq[col].to_numpy() == out[col].to_numpy()).all(), col
    for col in ("hist_item_ids", "hist_sids", "hist_mask", "target_ngrams"):
        np.testing.assert_array_equal(np.stack(seq[col].to_numpy()), np.stack(out[col].to_numpy()))


def test_train_preview_fits_a_few_batches_from_the_export(exported) -> None:  # type: ignore[no-untyped-def]
    """The demo's last step: Petastorm batches of the train split through a small torch model. Its
    loss falls, a second run gives the same losses, and it raises no UserWarning (they are errors here)."""
    import warnings

    cfg, tables, summary, _ = exported
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        report = train_preview.run(cfg, tables)
    assert report["ranker_training_version"] == tables.version("ranker_training")
    assert 0 < report["rows"] <= summary["splits"]["train"]["rows"]
    assert np.isfinite([report["first_loss"], report["last_loss"]]).all()
    assert report["last_loss"] < report["first_loss"]
    again = train_preview.run(cfg, tables)
    assert (again.first_loss, again.last_loss) == (report.first_loss, report.last_loss)


def test_reader_yields_typed_batches_and_every_row_once(exported) -> None:  # type: ignore[no-untyped-def]
    _, tables, summary, table = exported
    batch_size = 512
    loader = make_dataloader(location(tables), split="train", batch_size=batch_size)
    assert isinstance(loader, torch.utils.data.DataLoader)
    assert loader.dataset.version == tables.version("ranker_training")
    seen, keys = 0, []
    for i, batch in enumerate(loader):
        b = batch["user_id"].shape[0]
        if i < 3:
            assert b == batch_size
            assert batch["hist_item_ids"].shape == (b, N) and batch["hist_item_ids"].dtype == torch.int64
            assert batch["hist_sids"].shape == (b, N) and batch["hist_sids"].dtype == torch.int64
            assert batch["hist_ts"].shape == (b, N) and batch["hist_clicks"].shape == (b, N)
            assert batch["hist_mask"].shape == (b, N) and batch["hist_mask"].dtype == torch.bool
            assert batch["target_codes"].shape == (b, 3) and batch["target_ngrams"].shape == (b, 3)
            assert batch["click"].shape == (b,) and batch["click"].dtype == torch.int64
            assert batch["hist_len"].dtype == torch.int64
            assert "split" not in batch and "signal" not in batch
            # mask and padding agree; history strictly before the impression
            assert (batch["hist_mask"].sum(1) == batch["hist_len"]).all()
            assert (batch["hist_item_ids"][~batch["hist_mask"]] == 0).all()
            assert (batch["hist_sids"][~batch["hist_mask"]] == -1).all()
            assert (batch["hist_ts"] < batch["ts"][:, None])[batch["hist_mask"]].all()
        assert b <= batch_size
        seen += b
        keys.append(torch.stack([batch["user_id"], batch["item_id"], batch["ts"]], 1))
    train = table[table["split"] == "train"]
    assert seen == len(train) == summary["splits"]["train"]["rows"] == loader.dataset.rows_read
    got = {tuple(k) for k in torch.cat(keys).tolist()}
    assert got == set(zip(train["user_id"], train["item_id"], train["ts"]))


def test_reader_counts_per_split_and_all(exported) -> None:  # type: ignore[no-untyped-def]
    cfg, tables, summary, table = exported
    for split in ("valid", "test"):
        loader = make_dataloader(location(tables), split=split, batch_size=300, drop_last=False,
                                 columns=["ts", "hist_sids", "hist_mask"])
        rows, ts_min = 0, None
        for batch in loader:
            assert set(batch) == {"ts", "hist_sids", "hist_mask"}
            assert batch["hist_sids"].shape[1:] == (N,)
            rows += batch["ts"].shape[0]
            ts_min = batch["ts"].min().item() if ts_min is None else min(ts_min, batch["ts"].min().item())
        assert rows == (table["split"] == split).sum() == summary["splits"][split]["rows"]
        assert ts_min >= summary["boundaries"][split]
    full = dataloader_from_config(cfg, split=None, batch_size=4096, drop_last=True, columns=["item_id"])
    sizes = [b["item_id"].shape[0] for b in full]
    assert set(sizes) == {4096} and len(sizes) == len(table) // 4096


def test_reader_shuffles_rows_without_losing_any(exported) -> None:  # type: ignore[no-untyped-def]
    _, tables, summary, _ = exported

    def keys(**kwargs) -> list[tuple[int, int, int]]:  # type: ignore[no-untyped-def]
        loader = make_dataloader(location(tables), split="train", batch_size=1000, workers_count=1,
                                 columns=["user_id", "item_id", "ts"], **kwargs)
        return [tuple(k) for b in loader for k in torch.stack([b["user_id"], b["item_id"], b["ts"]], 1).tolist()]

    plain = keys()
    shuffled = keys(shuffle_rows=20_000, shuffle_row_groups=True, seed=3)
    assert len(shuffled) == len(plain) == summary["splits"]["train"]["rows"]
    assert sorted(shuffled) == sorted(plain) and shuffled != plain
    assert shuffled == keys(shuffle_rows=20_000, shuffle_row_groups=True, seed=3)  # reproducible
    # stored order keeps a user's rows together; a shuffled batch mixes many users
    first_plain = len({k[0] for k in plain[:1000]})
    first_shuffled = len({k[0] for k in shuffled[:1000]})
    assert first_shuffled > 1.5 * first_plain
    with pytest.raises(ConfigError, match="partition column"):
        make_dataloader(location(tables), columns=["split"])


def test_reader_is_pinned_to_a_snapshot(exported, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg, tables, summary, table = exported
    old = tables.version("ranker_training")
    old_files, pinned = snapshot_files(location(tables), split="test")
    assert pinned == old and old_files and all(f.startswith("file://") for f in old_files)
    cfg.export.test_fraction = 0.3
    try:
        again = export_training_data.run(cfg, tables)
    finally:
        cfg.export.test_fraction = 0.1
    assert again["written"]["ranker_training"]["version"] == old + 1
    assert again["splits"]["test"]["rows"] > summary["splits"]["test"]["rows"]

    def count(version: int | None) -> int:
        return sum(b["ts"].shape[0] for b in make_dataloader(location(tables), split="test", version=version,
                                                             batch_size=1000, columns=["ts"]))

    assert count(old) == summary["splits"]["test"]["rows"]  # time travel: the old snapshot's files
    assert count(None) == again["splits"]["test"]["rows"]
    assert export_training_data.run(cfg, tables)["splits"] == summary["splits"]  # back to the fixture's split, same result


@pytest.mark.parametrize("layout", ["materialized", "compact"])
def test_parquet_tables_are_read_from_the_directory(spark, tmp_path: Path, layout: str) -> None:  # type: ignore[no-untyped-def]
    """tables.format=parquet (what classic-Spark CI uses): both jobs and the reader, no Delta log."""
    n = 3000
    events = random_events(0, n, users=60, items=40, max_ts=5000)
    cfg = SidlibConfig(tables=TablesConfig(root=str(tmp_path), format="parquet"))
    cfg.sequences.history_length, cfg.sequences.layout, cfg.sequences.events_per_bucket = 4, layout, 1000
    tables = Tables(spark, cfg.tables)
    tables.write(spark.createDataFrame(events, schemas.ddl(schemas.EVENTS)), "events", expected=schemas.EVENTS)
    ids = np.arange(1, 40)
    write_item_sids(tables, [synthetic_item_sids(ids[has_sid(ids)], 3)])
    built = build_sequences.run(cfg, tables)
    assert {w["version"] for w in built["written"].values()} == {None}
    summary = export_training_data.run(cfg, tables)
    assert summary["written"][cfg.sequences.training_table]["version"] is None
    assert sum(s["rows"] for s in summary["splits"].values()) == n
    files, version = snapshot_files(tables.location(cfg.sequences.training_table), fmt="parquet", split="valid")
    assert version is None and files and all("/split=valid/" in f for f in files)
    for split in schemas.SPLITS:
        loader = dataloader_from_config(cfg, split=split, batch_size=128)
        rows = 0
        for batch in loader:
            assert batch["hist_sids"].shape[1:] == (4,) and batch["hist_mask"].dtype == torch.bool
            rows += batch["item_id"].shape[0]
        assert rows == summary["splits"][split]["rows"] > 0


def test_bad_split_config_is_a_clear_error(exported) -> None:  # type: ignore[no-untyped-def]
    _, tables, _, _ = exported
    with pytest.raises(ConfigError, match="non-empty train fraction"):  # checked where the section is built
        ExportConfig(valid_fraction=0.95)
    with pytest.raises(ConfigError, match="split must be one of"):
        make_dataloader(location(tables), split="dev")


@pytest.mark.classic_spark
def test_sequences_export_and_reader_on_classic_spark(tmp_path: Path) -> None:
    """Same job code on classic Spark (JVM, Parquet tables): chunked == unchunked, splits, reader.
    Runs only in the classic-Spark pytest process (``-m classic_spark``)."""
    from sidlib.cli import run_with_session

    n = 2000
    events = random_events(1, n, users=40, items=30, max_ts=300)  # ~50 events per user, many equal timestamps
    cfg = SidlibConfig(engine=EngineConfig(name="spark"), tables=TablesConfig(root=str(tmp_path), format="parquet"))
    cfg.sequences.history_length, cfg.sequences.layout, cfg.sequences.events_per_bucket = 4, "materialized", 500

    def jobs(c: SidlibConfig, tables: Tables) -> dict:
        frame = tables.spark.createDataFrame(events, schemas.ddl(schemas.EVENTS))
        tables.write(frame, "events", expected=schemas.EVENTS)
        ids = np.arange(1, 30)
        write_item_sids(tables, [synthetic_item_sids(ids[has_sid(ids)], 1)])
        out = {}
        for m in (100_000, 3):
            c.sequences.max_events_per_task = m
            assert build_sequences.run(c, tables)["written"]["sequences"]["rows"] == n
            out[m] = tables.read_unpinned("sequences").toPandas().sort_values(
                ["user_id", "ts", "item_id", "click"]).reset_index(drop=True)
        out["export"] = export_training_data.run(c, tables)
        c.sequences.layout = "compact"  # heavy users in chunks of 3 events (the last max_events_per_task)
        out["compact"] = build_sequences.run(c, tables)
        out["compact_export"] = export_training_data.run(c, tables)
        return out

    got = run_with_session(jobs, cfg)
    unchunked, chunked = got[100_000], got[3]
    for col in schemas.SEQUENCES:
        a, b = unchunked[col].to_numpy(), chunked[col].to_numpy()
        if isinstance(a[0], np.ndarray):
            a, b = np.stack(a), np.stack(b)
        assert (a == b).all(), col
    mask = np.stack(unchunked["hist_mask"].to_numpy()).astype(bool)
    hist_ts = np.stack(unchunked["hist_ts"].to_numpy())
    assert (hist_ts < unchunked["ts"].to_numpy()[:, None])[mask].all()
    splits = got["export"]["splits"]
    assert splits["train"]["max_ts"] < splits["valid"]["min_ts"] <= splits["valid"]["max_ts"] < splits["test"]["min_ts"]
    assert got["compact"]["user_buckets"] == 4 and got["compact_export"]["splits"] == splits
    for split in schemas.SPLITS:
        materialized = rows_of(make_dataloader(str(tmp_path / "ranker_training"), fmt="parquet", split=split))
        assert len(materialized) == splits[split]["rows"] > 0
        compact = make_dataloader(str(tmp_path / "ranker_impressions"), fmt="parquet", split=split, batch_size=256,
                                  histories=str(tmp_path / "user_histories"), history_length=4)
        assert rows_of(compact) == materialized


# ------------------------------------------------------------------------------ compact layout
@pytest.fixture(scope="module")
def compact(exported):  # type: ignore[no-untyped-def]
    """The same events through the compact layout (4 user buckets, heavy users in chunks of 7 events),
    exported next to the materialized tables of ``exported``."""
    cfg, tables, _, _ = exported
    ccfg = dataclasses.replace(cfg, sequences=dataclasses.replace(cfg.sequences, layout="compact", max_events_per_task=7,
                                                                   events_per_bucket=10_000))
    built = build_sequences.run(ccfg, tables)
    return ccfg, tables, built, export_training_data.run(ccfg, tables)


def rows_of(loader) -> list[tuple]:  # type: ignore[no-untyped-def]
    """Every row the loader yields, one tuple of plain values per row, sorted."""
    out = []
    for batch in loader:
        columns = sorted(batch)
        values = [batch[c].tolist() for c in columns]
        out += [tuple((c, tuple(v) if isinstance(v, list) else v) for c, v in zip(columns, row)) for row in zip(*values)]
    return sorted(out)


def compact_loader(tables: Tables, n: int, **kwargs):  # type: ignore[no-untyped-def]
    return make_dataloader(tables.location("ranker_impressions"), histories=tables.location("user_histories"),
                           history_length=n, **kwargs)


@pytest.mark.parametrize("split", schemas.SPLITS)
def test_compact_reader_yields_the_materialized_rows(exported, compact, split: str) -> None:  # type: ignore[no-untyped-def]
    _, tables, _, _ = exported
    _, _, built, summary = compact
    assert built["user_buckets"] == 4 and summary["splits"][split]["rows"] > 0
    assert sorted(files_by_bucket(snapshot_files(tables.location("ranker_impressions"), split=split)[0])) == [0, 1, 2, 3]
    want = rows_of(make_dataloader(location(tables), split=split, batch_size=700))
    loader = compact_loader(tables, N, split=split, batch_size=700)
    got = rows_of(loader)
    assert len(got) == len(want) == summary["splits"][split]["rows"] == loader.dataset.rows_read
    assert got == want
    assert loader.dataset.histories.version == built["written"]["user_histories"]["version"]


def test_compact_batches_have_the_requested_length_and_size(compact) -> None:  # type: ignore[no-untyped-def]
    _, tables, _, summary = compact
    sizes, seen = [], 0
    for batch in compact_loader(tables, 1000, split="train", batch_size=512):
        b = batch["user_id"].shape[0]
        sizes.append(b)
        seen += b
        assert batch["hist_item_ids"].shape == (b, 1000) and batch["hist_mask"].dtype == torch.bool
        assert (batch["hist_mask"].sum(1) == batch["hist_len"]).all() and batch["hist_len"].max() < 1000
        assert (batch["hist_sids"][~batch["hist_mask"]] == -1).all()
        assert (batch["hist_ts"] < batch["ts"][:, None])[batch["hist_mask"]].all()
    assert seen == summary["splits"]["train"]["rows"] and set(sizes[:-1]) == {512}
    # a shorter history is the tail of a longer one
    def histories(n: int) -> list[tuple]:
        batches = compact_loader(tables, n, split="valid", columns=["user_id", "item_id", "ts", "hist_item_ids"])
        return sorted((*key, tuple(h[-3:])) for b in batches for key, h in
                      zip(torch.stack([b["user_id"], b["item_id"], b["ts"]], 1).tolist(), b["hist_item_ids"].tolist()))

    assert histories(3) == histories(N)


def test_compact_reader_shuffles_across_buckets_without_losing_rows(compact) -> None:  # type: ignore[no-untyped-def]
    _, tables, _, _ = compact

    def keys(**kwargs) -> list[tuple[int, int, int]]:  # type: ignore[no-untyped-def]
        loader = compact_loader(tables, 5, split="train", batch_size=1000, workers_count=1,
                                columns=["user_id", "item_id", "ts", "hist_sids"], **kwargs)
        return [tuple(k) for b in loader for k in torch.stack([b["user_id"], b["item_id"], b["ts"]], 1).tolist()]

    plain = keys()
    shuffled = keys(shuffle_rows=5_000, shuffle_row_groups=True, seed=3)
    assert sorted(shuffled) == sorted(plain) and shuffled != plain
    assert shuffled == keys(shuffle_rows=5_000, shuffle_row_groups=True, seed=3)


def test_compact_reader_refuses_what_it_cannot_assemble(compact) -> None:  # type: ignore[no-untyped-def]
    _, tables, _, _ = compact
    with pytest.raises(ConfigError, match="needs both histories="):
        make_dataloader(tables.location("ranker_impressions"), history_length=5)
    with pytest.raises(ConfigError, match="history_length must be in 1..100000"):
        compact_loader(tables, 0)
    with pytest.raises(ConfigError, match="unknown compact reader columns"):
        compact_loader(tables, 5, columns=["hist_codes"])
    with pytest.raises(TableError, match="not under a user_bucket"):  # a materialized table is not compact
        next(iter(make_dataloader(location(tables), histories=tables.location("user_histories"), history_length=5)))


def test_train_preview_reads_the_compact_layout(compact) -> None:  # type: ignore[no-untyped-def]
    cfg, tables, _, summary = compact
    report = train_preview.run(cfg, tables)
    assert report["ranker_training_version"] == tables.version("ranker_impressions")
    assert 0 < report["rows"] <= summary["splits"]["train"]["rows"] and report["last_loss"] < report["first_loss"]


def test_the_rankers_in_memory_split_is_the_same_in_both_layouts(exported, compact) -> None:  # type: ignore[no-untyped-def]
    _, tables, _, _ = exported
    materialized = load_split(location(tables), "valid")
    assembled = load_split(tables.location("ranker_impressions"), "valid", histories=tables.location("user_histories"),
                           history_length=N)
    assert assembled.histories is not None and "hist_item_ids" not in assembled.columns  # assembled per batch
    rows = torch.arange(0, len(materialized["item_id"]), 7)
    want, got = materialized.take(rows), assembled.take(rows)
    assert set(got) == set(want)
    for name in want:
        assert torch.equal(got[name], want[name].to(got[name].dtype)), name


def test_the_item_cold_split_keeps_held_out_items_out_of_train_and_valid(compact) -> None:  # type: ignore[no-untyped-def]
    """export.cold_item_fraction: a hash-picked 20% of items leave train and valid entirely and keep
    their test impressions, every one of them cold; the other items' rows are as without it."""
    from sidlib.spark.sampling import cold_item_predicate

    ccfg, tables, _, plain = compact
    cold_cfg = dataclasses.replace(
        ccfg, tables=dataclasses.replace(ccfg.tables, ranker_impressions="ranker_impressions_cold"),
        export=dataclasses.replace(ccfg.export, cold_item_fraction=0.2, cold_item_seed=1))
    cold_tables = Tables(tables.spark, cold_cfg.tables)
    summary = export_training_data.run(cold_cfg, cold_tables)

    items = tables.read_unpinned("impressions").select("item_id").distinct()
    held = {r.item_id for r in items.where(cold_item_predicate(1, 0.2)).collect()}
    assert 0.15 < len(held) / items.count() < 0.25
    table = cold_tables.read_unpinned("ranker_impressions").select("item_id", "split").toPandas()
    is_held = table["item_id"].isin(held)
    assert not (is_held & (table["split"] != "test")).any(), "a held-out item in train or valid"
    assert is_held.sum() == summary.cold_items["test"] > 0
    assert summary.cold_items["fraction"] == 0.2 and summary.cold_items["dropped"] > 0
    before = tables.read_unpinned("ranker_impressions").select("item_id", "split").toPandas()
    assert len(table) == len(before) - summary.cold_items["dropped"]
    kept = before[~before["item_id"].isin(held)].groupby("split").size()
    pd_kept = table[~is_held].groupby("split").size()
    assert kept.to_dict() == pd_kept.to_dict()  # the other items' rows are untouched
    assert plain.cold_items is None
    with pytest.raises(ConfigError, match="cold_item_fraction must be in"):
        ExportConfig(cold_item_fraction=1.0)
