"""build_sequences on real MovieLens events (the demo tables) and on hand-made events with ties,
through the embedded engine and real Delta tables, checked against a brute-force pandas computation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from sidlib import schemas
from sidlib.config import SidlibConfig, TablesConfig
from sidlib.errors import TableError
from sidlib.histories import HistoryIndex
from sidlib.jobs import build_sequences
from sidlib.spark import pointer
from sidlib.spark.sequences import chunked_input, with_sids
from sidlib.spark.tables import Tables

N = 8  # history length used on the demo data (users there have up to 73 events)
CARD = 256
KEY = ["user_id", "item_id", "ts", "click", "conv"]


# ------------------------------------------------------------------------------------ helpers
def synthetic_codes(item_ids: np.ndarray, version: int) -> np.ndarray:
    """Deterministic codes (3 positions of cardinality 256) from the item id, different per version."""
    ids = np.asarray(item_ids, dtype=np.int64)
    return np.stack([(ids * (3 + version)) % CARD, (ids * 7 + version) % CARD, (ids // 3 + 11 * version) % CARD],
                    axis=1).astype(np.int32)


def synthetic_item_sids(item_ids: np.ndarray, version: int, signal: str = "text") -> pd.DataFrame:
    """item_sids rows: sid = c0 + 256 c1 + 65536 c2, ngrams = the prefix packs [c0, c0 + 256 c1, sid]."""
    codes = synthetic_codes(item_ids, version)
    c = codes.astype(np.int64)
    sid = c[:, 0] + CARD * c[:, 1] + CARD * CARD * c[:, 2]
    ngrams = np.stack([c[:, 0], c[:, 0] + CARD * c[:, 1], sid], axis=1)
    return pd.DataFrame({"item_id": np.asarray(item_ids, np.int64), "signal": signal, "sid_version": np.int64(version),
                         "codes": list(codes), "sid": sid, "ngrams": list(ngrams)})


def write_item_sids(tables: Tables, frames: list[pd.DataFrame]) -> None:
    pdf = pd.concat(frames, ignore_index=True)
    df = tables.spark.createDataFrame(pdf, schema=schemas.ddl(schemas.ITEM_SIDS))
    tables.write(df, "item_sids", expected=schemas.ITEM_SIDS, partition_by=["sid_version"])


def random_events(seed: int, n: int, *, users: int, items: int, max_ts: int) -> pd.DataFrame:
    """``n`` events of user ids ``1..users-1`` and item ids ``1..items-1`` at seconds ``0..max_ts-1``
    (so many tie), random clicks, no conversions."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"user_id": rng.integers(1, users, n), "item_id": rng.integers(1, items, n),
                         "ts": rng.integers(0, max_ts, n), "click": rng.integers(0, 2, n).astype(np.int32),
                         "conv": np.zeros(n, np.int32)})


def has_sid(item_ids: np.ndarray) -> np.ndarray:
    """Every 10th item has no SID (not encoded), to exercise the missing-SID convention."""
    return np.asarray(item_ids) % 10 != 0


def sequences_env(spark, demo_tables, root: Path):  # type: ignore[no-untyped-def]
    """A fresh tables root with the demo events and synthetic item_sids: text v1 and v2 (pointer at
    v2) and credits v2, each without every 10th item."""
    _, demo, _ = demo_tables
    cfg = SidlibConfig(tables=TablesConfig(root=str(root)))
    cfg.sequences.layout = "materialized"
    tables = Tables(spark, cfg.tables)
    tables.write(demo.read("events").frame, "events")
    items = demo.read("items").frame.select("item_id").toPandas()["item_id"].to_numpy(np.int64)
    encoded = items[has_sid(items)]
    credits = synthetic_item_sids(encoded, 2, signal="credits")
    credits["codes"] = [c[::-1].copy() for c in credits["codes"]]
    write_item_sids(tables, [synthetic_item_sids(encoded, 1), synthetic_item_sids(encoded, 2), credits])
    pointer.switch(tables, "text", 2, "test-model", expected=None)
    tables.reads.clear()
    events = tables.read_unpinned("events").toPandas()
    return cfg, tables, events


def read_sorted(tables: Tables, table: str = "sequences") -> pd.DataFrame:
    return tables.read_unpinned(table).toPandas().sort_values(KEY).reset_index(drop=True)


def assembled_sorted(tables: Tables, n: int) -> pd.DataFrame:
    """The compact layout's tables turned into ``sequences`` rows of history length ``n`` (the
    reader's assembly, without the reader), sorted like :func:`read_sorted`."""
    impressions = read_sorted(tables, "impressions")
    histories = tables.read_unpinned("user_histories").toPandas()
    index = HistoryIndex.from_table(pa.Table.from_pandas(histories[["user_id", "chunk", *HistoryIndex.SOURCES]],
                                                         preserve_index=False), n)
    out = impressions.drop(columns=["hist_end", "user_bucket", "histories_version"])
    for column, values in index.assemble(impressions["user_id"], impressions["hist_end"]).items():
        out[column] = list(values.astype(np.int32 if column in ("hist_clicks", "hist_mask") else np.int64)) \
            if values.ndim == 2 else values.astype(np.int32)
    return out[list(schemas.SEQUENCES)]


def assert_frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for col in a.columns:
        if a[col].dtype == object and len(a) and isinstance(a[col].iloc[0], np.ndarray):
            np.testing.assert_array_equal(np.stack(a[col].to_numpy()), np.stack(b[col].to_numpy()), err_msg=col)
        else:
            assert (a[col].to_numpy() == b[col].to_numpy()).all(), col


def brute_force(events: pd.DataFrame, user: int, n: int, version: int) -> dict[tuple, dict[str, list]]:
    """Histories of one user's impressions by the definition, in plain Python."""
    rows = events[events["user_id"] == user].sort_values(["ts", "item_id", "click", "conv"])
    evs = list(rows[["item_id", "ts", "click", "conv"]].itertuples(index=False, name=None))
    out = {}
    for item, ts, click, conv in evs:
        hist = [e for e in evs if e[1] < ts][-n:]
        ids = np.array([e[0] for e in hist], np.int64)
        codes = synthetic_codes(ids, version).astype(np.int64)
        sids = codes[:, 0] + CARD * codes[:, 1] + CARD * CARD * codes[:, 2]
        sids[~has_sid(ids)] = -1
        out[(user, item, ts)] = {"items": ids.tolist(), "ts": [e[1] for e in hist], "clicks": [e[2] for e in hist],
                                 "sids": sids.tolist()}
    return out


# ----------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def env(spark, demo_tables, tmp_path_factory):  # type: ignore[no-untyped-def]
    return sequences_env(spark, demo_tables, tmp_path_factory.mktemp("sequences"))


@pytest.fixture(scope="module")
def unchunked(env):  # type: ignore[no-untyped-def]
    cfg, tables, _ = env
    cfg.sequences.history_length = N
    summary = build_sequences.run(cfg, tables)
    return summary, read_sorted(tables)


# -------------------------------------------------------------------------------------- tests
def test_summary_schema_and_sid_version_from_pointer(env, unchunked) -> None:  # type: ignore[no-untyped-def]
    _, tables, events = env
    summary, seq = unchunked
    tables.check_schema("sequences", schemas.SEQUENCES)
    assert summary["sid_version"] == 2 and summary["sid_version_source"] == "sid_pointer"
    assert summary["inputs"]["events"] == {"version": 0, "rows": len(events)}
    assert summary["inputs"]["item_sids"]["rows"] == has_sid(np.arange(1, 121)).sum()
    assert summary["written"]["sequences"]["rows"] == len(seq) == len(events)
    assert summary["written"]["sequences"]["version"] == tables.version("sequences")
    assert (summary["n_codes"], summary["n_ngrams"]) == (3, 3)
    assert (seq["signal"] == "text").all() and (seq["sid_version"] == 2).all()
    assert not seq.duplicated(["user_id", "item_id", "ts"]).any()


def test_point_in_time_padding_and_mask(unchunked) -> None:  # type: ignore[no-untyped-def]
    _, seq = unchunked
    mask = np.stack(seq["hist_mask"].to_numpy()).astype(bool)
    hist_ts = np.stack(seq["hist_ts"].to_numpy())
    ts = seq["ts"].to_numpy()[:, None]
    assert mask.shape == (len(seq), N)
    assert (hist_ts[mask] < np.broadcast_to(ts, mask.shape)[mask]).all()  # no leakage, on every row
    # right-aligned: the last hist_len slots are real, padding on the left
    hist_len = seq["hist_len"].to_numpy()
    assert (mask == (np.arange(N)[None, :] >= N - hist_len[:, None])).all()
    assert (np.diff(np.where(mask, hist_ts, 0), axis=1)[mask[:, 1:] & mask[:, :-1]] >= 0).all()  # oldest first
    pad = ~mask
    items = np.stack(seq["hist_item_ids"].to_numpy())
    sids = np.stack(seq["hist_sids"].to_numpy())
    clicks = np.stack(seq["hist_clicks"].to_numpy())
    assert (items[pad] == 0).all() and (sids[pad] == -1).all()
    assert (clicks[pad] == 0).all() and (hist_ts[pad] == 0).all()
    assert (items[mask] > 0).all()
    assert (hist_len == 0).any() and (hist_len == N).any()
    # real history items without a SID: sid -1, but mask 1
    no_sid = mask & ~has_sid(items)
    assert no_sid.any() and (sids[no_sid] == -1).all()


def test_targets_carry_their_sids(unchunked) -> None:  # type: ignore[no-untyped-def]
    _, seq = unchunked
    items = seq["item_id"].to_numpy()
    codes = np.stack(seq["target_codes"].to_numpy())
    ngrams = np.stack(seq["target_ngrams"].to_numpy())
    ok = has_sid(items)
    expected = synthetic_codes(items, 2)
    np.testing.assert_array_equal(codes[ok], expected[ok])
    sid = expected[:, 0] + CARD * expected[:, 1].astype(np.int64) + CARD * CARD * expected[:, 2].astype(np.int64)
    np.testing.assert_array_equal(seq["target_sid"].to_numpy()[ok], sid[ok])
    np.testing.assert_array_equal(ngrams[ok, 2], sid[ok])
    assert (codes[~ok] == -1).all() and (ngrams[~ok] == -1).all() and (seq["target_sid"].to_numpy()[~ok] == -1).all()


def test_histories_equal_brute_force_for_sampled_users(env, unchunked) -> None:  # type: ignore[no-untyped-def]
    _, _, events = env
    _, seq = unchunked
    counts = events.groupby("user_id").size().sort_values(kind="stable")
    users = list(counts.index[-5:]) + list(counts.sample(20, random_state=0).index)  # heaviest + random
    by_key = seq.set_index(["user_id", "item_id", "ts"])
    checked = 0
    for user in users:
        for key, want in brute_force(events, int(user), N, 2).items():
            row = by_key.loc[key]
            m = np.asarray(row["hist_mask"]).astype(bool)
            assert np.asarray(row["hist_item_ids"])[m].tolist() == want["items"], key
            assert np.asarray(row["hist_ts"])[m].tolist() == want["ts"], key
            assert np.asarray(row["hist_clicks"])[m].tolist() == want["clicks"], key
            assert np.asarray(row["hist_sids"])[m].tolist() == want["sids"], key
            checked += 1
    assert checked > 500


def test_heavy_user_chunks_give_identical_output(spark, env, unchunked) -> None:  # type: ignore[no-untyped-def]
    cfg, tables, events = env
    _, expected = unchunked
    m = 5  # < N, so a chunk's context spans earlier chunks; users have up to 73 events
    # the demo data has chunk starts tied (same ts) with the event before them: the hard case
    ordered = events.sort_values(["user_id", "ts", "item_id", "click", "conv"])
    r = ordered.groupby("user_id").cumcount().to_numpy()
    tied = ordered["ts"].to_numpy()[1:] == ordered["ts"].to_numpy()[:-1]
    same_user = ordered["user_id"].to_numpy()[1:] == ordered["user_id"].to_numpy()[:-1]
    assert ((r[1:] % m == 0) & tied & same_user).sum() > 10

    cfg.sequences.max_events_per_task = m
    try:
        summary = build_sequences.run(cfg, tables)
        chunked = read_sorted(tables)
        # bounded work: no (user, chunk) group holds more than M + 2N rows
        sids = tables.read_unpinned("item_sids").where("signal = 'text' AND sid_version = 2")
        groups = chunked_input(with_sids(tables.read_unpinned("events"), sids, 3, 3), N, m)
        largest = groups.groupBy("user_id", "chunk").count().agg({"count": "max"}).collect()[0][0]
    finally:
        cfg.sequences.max_events_per_task = SidlibConfig().sequences.max_events_per_task
    assert summary["written"]["sequences"]["rows"] == len(events)
    assert largest <= m + 2 * N
    assert_frames_equal(chunked, expected)


@pytest.mark.parametrize(("max_events_per_task", "events_per_pass", "passes"), [(20_000, None, 1), (5, 12_000, 4)])
def test_compact_layout_assembles_the_materialized_rows(env, unchunked, max_events_per_task: int,  # type: ignore[no-untyped-def]
                                                        events_per_pass: int | None, passes: int) -> None:
    """The compact tables, assembled at the materialized table's history length, give its rows exactly,
    also with heavy users cut into chunks of 5 events and the tables written in passes over the user
    buckets; one build serves any other length too."""
    cfg, tables, events = env
    _, expected = unchunked
    defaults = SidlibConfig().sequences
    cfg.sequences.layout, cfg.sequences.max_events_per_task, cfg.sequences.events_per_bucket = "compact", max_events_per_task, 10_000
    cfg.sequences.events_per_pass = events_per_pass
    try:
        summary = build_sequences.run(cfg, tables)
    finally:
        cfg.sequences.layout, cfg.sequences.max_events_per_task = "materialized", defaults.max_events_per_task
        cfg.sequences.events_per_bucket, cfg.sequences.events_per_pass = defaults.events_per_bucket, defaults.events_per_pass
    assert summary["passes"] == passes
    tables.check_schema("user_histories", schemas.USER_HISTORIES)
    tables.check_schema("impressions", schemas.IMPRESSIONS)
    written = summary["written"]
    assert summary["layout"] == "compact" and summary["user_buckets"] == -(-len(events) // 10_000) > 1
    assert written["impressions"]["rows"] == len(events)
    users = events["user_id"].nunique()
    assert written["user_histories"]["rows"] == (users if max_events_per_task > 100 else
                                                  int((-(-events.groupby("user_id").size() // 5)).sum()))
    impressions = tables.read_unpinned("impressions").toPandas()
    assert (impressions["histories_version"] == written["user_histories"]["version"]).all()
    assert_frames_equal(assembled_sorted(tables, N), expected)
    longest = assembled_sorted(tables, 100)  # longer than any demo user's history: every earlier event
    ordered = events.sort_values(KEY).reset_index(drop=True)
    earlier = ordered.groupby("user_id")["ts"].rank(method="min").astype(int) - 1
    assert events.groupby("user_id").size().max() < 100
    np.testing.assert_array_equal(longest["hist_len"].to_numpy(), earlier.to_numpy())


def test_rerun_is_idempotent(env, unchunked) -> None:  # type: ignore[no-untyped-def]
    cfg, tables, _ = env
    first_summary, expected = unchunked
    before = tables.version("sequences")
    summary = build_sequences.run(cfg, tables)
    assert tables.version("sequences") == before + 1  # a new commit ...
    assert summary["written"]["sequences"]["rows"] == first_summary["written"]["sequences"]["rows"]
    assert_frames_equal(read_sorted(tables), expected)  # ... with the same content


def test_explicit_version_and_missing_version(env) -> None:  # type: ignore[no-untyped-def]
    cfg, tables, _ = env
    cfg.sequences.sid_version = 99
    try:
        with pytest.raises(TableError, match="sid_version 99.*no rows"):
            build_sequences.run(cfg, tables)
    finally:
        cfg.sequences.sid_version = None


@pytest.mark.parametrize("layout", ["materialized", "compact"])
def test_ties_on_timestamp_are_excluded_and_ordered_by_item(spark, tmp_path: Path, layout: str) -> None:  # type: ignore
    """Hand-made events with equal timestamps: events at the impression's second are never history,
    ties inside the history are ordered by item_id, and input order/partitioning does not matter."""
    events = pd.DataFrame([
        # user 1: three events at ts 10, two at 20, two at 30
        (1, 5, 10, 1, 0), (1, 3, 10, 0, 0), (1, 4, 10, 1, 1),
        (1, 2, 20, 0, 0), (1, 1, 20, 1, 0),
        (1, 9, 30, 1, 0), (1, 7, 30, 0, 0),
        # user 2: one event only; user 3: all at one second
        (2, 3, 5, 1, 0),
        (3, 8, 7, 0, 0), (3, 6, 7, 1, 0),
    ], columns=KEY).astype({"user_id": "int64", "item_id": "int64", "ts": "int64", "click": "int32", "conv": "int32"})
    cfg = SidlibConfig(tables=TablesConfig(root=str(tmp_path)))
    cfg.sequences.history_length = 3
    cfg.sequences.layout = layout
    tables = Tables(spark, cfg.tables)
    shuffled = events.sample(frac=1.0, random_state=1)
    tables.write(spark.createDataFrame(shuffled, schemas.ddl(schemas.EVENTS)).repartition(3), "events",
                 expected=schemas.EVENTS)
    write_item_sids(tables, [synthetic_item_sids(np.arange(1, 10), 1)])  # item 10+ absent; all here have SIDs
    expected = {  # (user, item) -> history item ids (oldest first) and their clicks
        (1, 5): ([], []), (1, 3): ([], []), (1, 4): ([], []),
        (1, 1): ([3, 4, 5], [0, 1, 1]), (1, 2): ([3, 4, 5], [0, 1, 1]),
        (1, 7): ([5, 1, 2], [1, 1, 0]), (1, 9): ([5, 1, 2], [1, 1, 0]),
        (2, 3): ([], []), (3, 6): ([], []), (3, 8): ([], []),
    }
    results = []
    for m in (1_000, 2, 1):  # unchunked, and chunk boundaries inside the tie groups
        cfg.sequences.max_events_per_task = m
        summary = build_sequences.run(cfg, tables)
        assert summary["sid_version_source"] == "newest"  # no pointer in this root
        seq = read_sorted(tables) if layout == "materialized" else assembled_sorted(tables, 3)
        got = {}
        for row in seq.itertuples(index=False):
            mask = np.asarray(row.hist_mask).astype(bool)
            got[(row.user_id, row.item_id)] = (np.asarray(row.hist_item_ids)[mask].tolist(),
                                               np.asarray(row.hist_clicks)[mask].tolist())
            assert (np.asarray(row.hist_ts)[mask] < row.ts).all()
            assert np.asarray(row.hist_item_ids).tolist()[: 3 - mask.sum()] == [0] * (3 - mask.sum())
        assert got == expected, m
        results.append(seq)
    for other in results[1:]:
        assert_frames_equal(other, results[0])


def test_events_with_null_keys_are_refused(spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = SidlibConfig(tables=TablesConfig(root=str(tmp_path)))
    tables = Tables(spark, cfg.tables)
    rows = [(1, 2, 10, 1, 0), (1, 3, None, 0, 0)]
    tables.write(spark.createDataFrame(rows, schemas.ddl(schemas.EVENTS)), "events", expected=schemas.EVENTS)
    write_item_sids(tables, [synthetic_item_sids(np.arange(1, 5), 1)])
    with pytest.raises(TableError, match="1 rows with a null"):
        build_sequences.run(cfg, tables)
    assert not tables.exists("sequences")


def expected_chunk_rows(events: pd.DataFrame, n: int, m: int) -> set[tuple[int, int, int, bool]]:
    """``(user_id, chunk, r, is_context)`` straight from the module docstring's definition, per chunk:
    its own events, then positions ``[cM - N, cM)`` and ``[k_first - N, min(k_first, cM - N))``. The
    last N events also go to the chunks after a user's last one (past its end: ignored downstream)."""
    rows = set()
    for user, group in events.sort_values(["user_id", "ts", "item_id", "click", "conv"]).groupby("user_id"):
        ts = group["ts"].to_numpy()
        k = np.searchsorted(ts, ts, side="left")  # events with a strictly smaller ts
        for r in range(len(ts)):
            rows.add((user, r // m, r, False))
        for c in range(1, (len(ts) - 1 + n) // m + 1):
            first = c * m
            context = set(range(max(first - n, 0), min(first, len(ts))))
            if first < len(ts):
                context |= set(range(max(k[first] - n, 0), min(k[first], first - n)))
            rows |= {(user, c, r, True) for r in context}
    return rows


@pytest.mark.parametrize("n, m", [(8, 5), (3, 1), (20, 7), (8, 1000)])
def test_chunks_carry_exactly_the_context_the_definition_asks_for(spark, n, m) -> None:  # type: ignore[no-untyped-def]
    """Users whose events pile up on a few timestamps, so that chunks start inside runs of equal ts
    (runs longer than N and M included): the one-pass chunking must give exactly the defined rows."""
    rng = np.random.default_rng(0)
    parts = []
    for user, (count, distinct_ts) in enumerate([(300, 300), (300, 100), (300, 15), (200, 2), (50, 1), (1, 1)]):
        parts.append(pd.DataFrame({"user_id": user, "item_id": rng.permutation(count) + 1,
                                   "ts": rng.integers(0, distinct_ts, count), "click": rng.integers(0, 2, count),
                                   "conv": 0}))
    events = pd.concat(parts, ignore_index=True).astype(
        {"user_id": "int64", "item_id": "int64", "ts": "int64", "click": "int32", "conv": "int32"})
    frame = spark.createDataFrame(events, schemas.ddl(schemas.EVENTS))  # type: ignore[attr-defined]
    got = chunked_input(frame, n, m).select("user_id", "chunk", "r", "is_context").toPandas()
    assert len(got) == len(got.drop_duplicates())
    assert set(got.itertuples(index=False, name=None)) == expected_chunk_rows(events, n, m)


@pytest.mark.parametrize("fmt", ["delta", "parquet"])
def test_export_refuses_the_impressions_of_an_unfinished_compact_build(spark, tmp_path: Path, fmt: str) -> None:  # type: ignore[no-untyped-def]
    from sidlib.jobs import export_training_data

    n = 800
    events = random_events(4, n, users=50, items=20, max_ts=400)
    cfg = SidlibConfig(tables=TablesConfig(root=str(tmp_path), format=fmt))  # type: ignore[arg-type]
    cfg.sequences.events_per_bucket, cfg.sequences.events_per_pass = 100, 200  # 8 buckets in 4 passes
    tables = Tables(spark, cfg.tables)
    tables.write(spark.createDataFrame(events, schemas.ddl(schemas.EVENTS)), "events", expected=schemas.EVENTS)
    write_item_sids(tables, [synthetic_item_sids(np.arange(1, 20), 1)])
    built = build_sequences.run(cfg, tables)
    assert (built["user_buckets"], built["passes"]) == (8, 4)
    assert export_training_data.run(cfg, tables)["inputs"]["user_histories"]["events"] == n
    # a run that stopped after some passes: its impressions miss users that user_histories has
    partial = tables.read_unpinned("impressions").where("user_bucket <> 0").select(*schemas.IMPRESSIONS).toPandas()
    tables.write(spark.createDataFrame(partial, schemas.ddl(schemas.IMPRESSIONS)), "impressions",
                 partition_by=["user_bucket"])
    with pytest.raises(TableError, match=r"user_histories version (\d+|None) holds 800 events of SID version \[1\]: "
                                         r"build_sequences did not finish"):
        export_training_data.run(cfg, tables)
