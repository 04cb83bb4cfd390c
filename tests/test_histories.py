"""Histories assembled at read time (sidlib.histories) against the definition, written out per impression."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from sidlib.errors import TableError
from sidlib.histories import HistoryIndex


def events_with_ties(seed: int = 0, users: int = 12, heavy: int = 400) -> pd.DataFrame:
    """Users of 1 .. ~40 events and one heavy user, on few timestamps so many events tie."""
    rng = np.random.default_rng(seed)
    sizes = np.append(rng.integers(1, 40, users - 1), heavy)
    user = np.repeat(np.arange(1, users + 1) * 7, sizes)
    n = len(user)
    return pd.DataFrame({"user_id": user, "item_id": rng.integers(1, 30, n), "ts": rng.integers(0, 25, n),
                         "click": rng.integers(0, 2, n), "conv": rng.integers(0, 2, n),
                         "sid": np.where(rng.random(n) < 0.1, -1, rng.integers(0, 1000, n))})


def compact(events: pd.DataFrame, chunk_size: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(user_histories rows, impressions with hist_end) as build_sequences defines them."""
    ordered = events.sort_values(["user_id", "ts", "item_id", "click", "conv"], kind="stable").reset_index(drop=True)
    ordered["r"] = ordered.groupby("user_id").cumcount()
    ordered["hist_end"] = ordered.groupby(["user_id", "ts"])["r"].transform("min")
    ordered["chunk"] = ordered["r"] // chunk_size
    rows = ordered.groupby(["user_id", "chunk"]).agg(
        item_ids=("item_id", list), ts=("ts", list), clicks=("click", list), sids=("sid", list)).reset_index()
    return rows.sample(frac=1.0, random_state=1), ordered  # the rows in any order


def index_of(rows: pd.DataFrame, n: int) -> HistoryIndex:
    return HistoryIndex.from_table(pa.Table.from_pandas(rows, preserve_index=False), n)


def definition(ordered: pd.DataFrame, n: int) -> dict[str, np.ndarray]:
    """Impression by impression: the last n events with a strictly smaller ts, right-aligned."""
    out: dict[str, list[list[int]]] = {c: [] for c in ("hist_item_ids", "hist_ts", "hist_clicks", "hist_sids", "hist_mask")}
    lens = []
    for _, row in ordered.iterrows():
        user = ordered[ordered["user_id"] == row["user_id"]]
        before = user[user["ts"] < row["ts"]].tail(n)  # ``ordered`` is already in the tie order
        pad = n - len(before)
        lens.append(len(before))
        for col, src, value in (("hist_item_ids", "item_id", 0), ("hist_ts", "ts", 0), ("hist_clicks", "click", 0),
                                ("hist_sids", "sid", -1)):
            out[col].append([value] * pad + before[src].tolist())
        out["hist_mask"].append([False] * pad + [True] * len(before))
    return {"hist_len": np.array(lens), **{c: np.array(v) for c, v in out.items()}}


@pytest.mark.parametrize(("n", "chunk_size"), [(1, 5), (4, 3), (16, 1000), (64, 7)])
def test_assembled_histories_equal_the_definition_with_ties_and_a_heavy_user(n: int, chunk_size: int) -> None:
    rows, ordered = compact(events_with_ties(), chunk_size)
    got = index_of(rows, n).assemble(ordered["user_id"].to_numpy(), ordered["hist_end"].to_numpy())
    want = definition(ordered, n)
    assert set(got) == set(want)
    for column, values in want.items():
        assert np.array_equal(got[column], values), column
    assert got["hist_mask"].dtype == np.bool_ and got["hist_item_ids"].dtype == np.int64


def test_the_heavy_user_spans_many_chunks_and_every_impression_is_assembled() -> None:
    rows, ordered = compact(events_with_ties(heavy=3000), 100)
    index = index_of(rows, 1000)
    assert (rows["user_id"] == 84).sum() == 30 and index.events == len(ordered)
    got = index.assemble(ordered["user_id"].to_numpy(), ordered["hist_end"].to_numpy())
    assert got["hist_len"].max() == 1000 and got["hist_mask"].sum() == got["hist_len"].sum()


def test_a_missing_chunk_is_refused() -> None:
    rows, _ = compact(events_with_ties(), 10)
    heavy = rows[(rows["user_id"] == 84) & (rows["chunk"] == 3)].index
    with pytest.raises(TableError, match="user 84's chunks are not numbered"):
        index_of(rows.drop(heavy), 8)


def test_an_impression_past_its_users_events_is_refused() -> None:
    rows, ordered = compact(events_with_ties(), 10)
    index = index_of(rows, 8)
    with pytest.raises(TableError, match="points at history position 999"):
        index.assemble(np.array([84]), np.array([999]))
    with pytest.raises(TableError, match="no events of user 5"):
        index.assemble(np.array([5]), np.array([1]))


def test_passes_balance_skewed_buckets_and_cover_each_once() -> None:
    from sidlib.spark.histories import plan_passes

    sizes = {0: 900, 1: 100, 2: 100, 3: 500, 4: 400, 5: 50, 7: 950}  # bucket 6 has no events
    groups = plan_passes(sizes, 1000)
    assert len(groups) == 3 and sorted(b for g in groups for b in g) == sorted(sizes)
    assert max(sum(sizes[b] for b in g) for g in groups) == 1000  # the heaviest bucket bounds it: 950 + 50
    assert plan_passes(sizes, None) == [sorted(sizes)]
    assert sorted(plan_passes(sizes, 10)) == [[b] for b in sorted(sizes)]  # at most one pass per bucket


def test_an_index_without_events_serves_impressions_without_history() -> None:
    index = HistoryIndex.from_table(None, 3)
    got = index.assemble(np.array([5, 6]), np.array([0, 0]))
    assert got["hist_len"].tolist() == [0, 0] and not got["hist_mask"].any()
    assert (got["hist_sids"] == -1).all() and (got["hist_item_ids"] == 0).all()
    with pytest.raises(TableError, match="no events of user 5"):
        index.assemble(np.array([5]), np.array([2]))
