"""Point-in-time user histories: for every impression, the user's last N events strictly before it.

Definitions (the contract of the ``sequences`` table, see :data:`sidlib.schemas.SEQUENCES`):

* A user's events are totally ordered by ``(ts, item_id, click, conv)``; ``r`` is an event's 0-based
  position in that order (``row_number``), ``k`` the number of the user's events with a *strictly*
  smaller ``ts`` (``rank`` on ``ts``).
* The history of impression ``i`` is the events at positions ``[k_i - N, k_i)``: the last N events with
  ``ts < ts_i`` (events at the same second as the impression, itself included, are never history, so
  no label can leak), and among equal timestamps the tie-break is ``item_id`` (then click, conv, so two
  runs always pick the same events).
* Histories are right-aligned: slot ``N-1`` is the most recent event, padding is on the left.
  Padded slots: ``hist_mask`` 0, item id 0, ts 0, click 0, sid -1. An item without a SID (history
  or target): sid -1, codes -1, ngrams -1 (with mask 1 in history). History slots carry packed SIDs
  only: their codes are the SID unpacked (``sidlib.sid.unpack``), so storing them would add
  ``N * n_codes`` values per row for nothing.

Bounded per-task work: a user's events are split into chunks ``chunk = r // M``
(``M = max_events_per_task``) and each chunk also receives, as context rows, the earlier events its
histories need: positions ``[cM - N, cM)`` and, when the chunk's first event ties on ``ts`` with
events before it, ``[k_first - N, k_first)``. So a ``(user_id, chunk)`` group holds at most ``M + 2N``
rows, whatever the user's size, and the chunked result equals the unchunked one exactly. Groups are
hashed into buckets of at most about ``max(M, MIN_BUCKET_ROWS)`` rows (smaller when the output needs
more partitions: ``rows_per_file``), one ``applyInPandas`` call per bucket (many light users per call;
a heavy user's chunks spread over buckets); the work in a call is numpy (``searchsorted`` + gather
over all its groups at once), no Python loop over rows or users.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

from sidlib import schemas
from sidlib.errors import TableError
from sidlib.spark.arrow_lists import list_series

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

#: Output of the per-group function (``signal``/``sid_version`` are added as literals afterwards).
GROUP_OUTPUT = {k: v for k, v in schemas.SEQUENCES.items() if k not in ("signal", "sid_version")}

MISSING = -1  # sid / code / ngram of an item without a SID, and of padded slots
#: Groups are packed into buckets (one pandas call each) of about max(M, this) rows: many light users
#: per call instead of one call per user, whose fixed cost would dominate.
MIN_BUCKET_ROWS = 8192
BUCKETS_PER_PARTITION = 4


def code_columns(n: int) -> list[str]:
    return [f"_code{j}" for j in range(n)]


def ngram_columns(n: int) -> list[str]:
    return [f"_ngram{j}" for j in range(n)]


def history_fn(history_length: int, n_codes: int, n_ngrams: int) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The pandas function applied to one bucket of ``(user_id, chunk)`` groups.

    Input columns: ``user_id, chunk, item_id, ts, click, conv, sid, _code*, _ngram*, r, k,
    is_context``; ``sid``/codes/ngrams already carry -1 for items without a SID. Output: one row per
    non-context row (impression), with the columns of :data:`GROUP_OUTPUT`. All groups of the bucket
    are handled at once: rows sorted by ``(user_id, chunk, r)``, and a history position is looked up
    with ``searchsorted`` on the composite key ``group * stride + r``.
    """
    n = int(history_length)
    codes_cols, ngram_cols = code_columns(n_codes), ngram_columns(n_ngrams)
    slots = np.arange(n, dtype=np.int64) - n  # -N .. -1

    def run(pdf: pd.DataFrame) -> pd.DataFrame:
        impression = ~pdf["is_context"].to_numpy(bool)
        if not impression.any():  # context rows only (past a user's last chunk): nothing to emit
            return _empty_output()
        user = pdf["user_id"].to_numpy(np.int64)
        chunk = pdf["chunk"].to_numpy(np.int64)
        r = pdf["r"].to_numpy(np.int64)
        order = np.lexsort((r, chunk, user))
        user, chunk, r, impression = user[order], chunk[order], r[order], impression[order]
        item = pdf["item_id"].to_numpy(np.int64)[order]
        ts = pdf["ts"].to_numpy(np.int64)[order]
        click = pdf["click"].to_numpy(np.int32)[order]
        sid = pdf["sid"].to_numpy(np.int64)[order]
        k = pdf["k"].to_numpy(np.int64)[order]
        codes = pdf[codes_cols].to_numpy(np.int32)[order]

        new_group = np.ones(len(r), dtype=bool)
        new_group[1:] = (user[1:] != user[:-1]) | (chunk[1:] != chunk[:-1])
        group = np.cumsum(new_group) - 1
        stride = int(r.max()) + 1
        key = group * stride + r  # strictly increasing unless a row came twice
        if len(key) > 1 and not (np.diff(key) > 0).all():
            raise RuntimeError("sequences: duplicate event positions in one group (context rows overlap)")

        # history positions (global ranks within the user) [k - N, k), right-aligned
        wanted = k[impression][:, None] + slots[None, :]  # [m, N]
        mask = wanted >= 0
        wanted_key = group[impression][:, None] * stride + np.where(mask, wanted, 0)
        pos = np.minimum(np.searchsorted(key, wanted_key), len(key) - 1)
        if not np.array_equal(key[pos][mask], wanted_key[mask]):
            raise RuntimeError("sequences: a history event is missing from its chunk's context rows")
        pos = np.where(mask, pos, 0)

        m = int(impression.sum())
        hist_item = np.where(mask, item[pos], 0)
        hist_ts = np.where(mask, ts[pos], 0)
        hist_click = np.where(mask, click[pos], 0).astype(np.int32)
        hist_sid = np.where(mask, sid[pos], MISSING)
        target_ngrams = (pdf[ngram_cols].to_numpy(np.int64)[order][impression] if n_ngrams
                         else np.zeros((m, 0), np.int64))
        return pd.DataFrame({
            "user_id": user[impression],
            "item_id": item[impression],
            "ts": ts[impression],
            "click": click[impression],
            "conv": pdf["conv"].to_numpy(np.int32)[order][impression],
            "target_sid": sid[impression],
            "target_codes": list_series(codes[impression]),
            "target_ngrams": list_series(target_ngrams),
            "hist_len": mask.sum(axis=1).astype(np.int32),
            "hist_item_ids": list_series(hist_item),
            "hist_ts": list_series(hist_ts),
            "hist_clicks": list_series(hist_click),
            "hist_sids": list_series(hist_sid),
            "hist_mask": list_series(mask.astype(np.int32)),
        })

    return run


def _empty_output() -> pd.DataFrame:
    """Zero rows with Arrow-convertible dtypes (object for arrays: an empty float column is refused)."""
    scalar = {"bigint": np.int64, "int": np.int32}
    return pd.DataFrame({c: pd.Series([], dtype=scalar.get(t, object)) for c, t in GROUP_OUTPUT.items()})


def with_sids(events: "DataFrame", sids: "DataFrame", n_codes: int, n_ngrams: int) -> "DataFrame":
    """Events with their item's ``sid`` and flattened codes/ngrams (-1 where the item has no SID).

    ``sids``: ``item_id, sid, codes, ngrams`` of one signal and version, one row per item."""
    from pyspark.sql import functions as F

    lookup = sids.select(
        "item_id", "sid",
        *[F.col("codes")[j].cast("int").alias(c) for j, c in enumerate(code_columns(n_codes))],
        *[F.col("ngrams")[j].cast("bigint").alias(c) for j, c in enumerate(ngram_columns(n_ngrams))],
    )
    joined = events.select("user_id", "item_id", "ts", "click", "conv").join(lookup, "item_id", "left")
    fill = ["sid", *code_columns(n_codes), *ngram_columns(n_ngrams)]
    return joined.select("user_id", "item_id", "ts", "click", "conv",
                         *[F.coalesce(F.col(c), F.lit(MISSING)).alias(c) for c in fill])


def chunked_input(events: "DataFrame", history_length: int, max_events_per_task: int) -> "DataFrame":
    """Rows for the ``(user_id, chunk)`` groups: every event once as an impression of its own chunk,
    plus the context rows later chunks need (see the module docstring).

    One sort of the events serves every window here, and each event is read once: it is exploded over
    the consecutive chunks that want it, its own first (as the impression). An earlier version built
    the tail and the tie context as separate branches over the ranked events, and the engine sorted
    and ranked the events once per branch, four times in all: the job took 1.5-1.8x as long and twice
    the memory at 10^7 events (``benchmarks/RESULTS.md``, build_sequences), for the same rows."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    n, m = int(history_length), int(max_events_per_task)
    by_user = Window.partitionBy("user_id")
    by_event = by_user.orderBy("ts", "item_id", "click", "conv")
    by_ts = by_user.orderBy("ts")  # the default frame takes in every event of the same ts (its peers)
    ranked = (events
              .withColumn("r", (F.row_number().over(by_event) - 1).cast("bigint"))
              .withColumn("k", (F.rank().over(by_ts) - 1).cast("bigint"))  # events with a strictly smaller ts
              .withColumn("_tie_end", (F.count(F.lit(1)).over(by_ts) - 1).cast("bigint")))  # last position at this ts
    r = F.col("r")
    own = F.floor(r / m).cast("bigint")
    # [cM - N, cM): event r serves chunks r//M + 1 .. (r+N)//M
    tail_end = F.floor((r + n) / m).cast("bigint")
    # [k_c - N, min(k_c, cM - N)): when chunk c starts inside a run of equal ts that began at k_c, its
    # impressions there need the N events before the run. Beyond its tail, event r serves such chunks only
    # if position r + N + 1 sits in a run that began in (r, r + N]; then it serves every chunk that starts
    # inside that run (up to the run's last position)
    run_start = F.lead("k", n + 1).over(by_event)
    run_end = F.lead("_tie_end", n + 1).over(by_event)
    in_run = run_start.isNotNull() & (run_start > r) & (run_start <= r + n)
    last = F.when(in_run, F.greatest(tail_end, F.floor(run_end / m).cast("bigint"))).otherwise(tail_end)
    chunks = ranked.withColumn("_own", own).withColumn("_last", last)
    return (chunks.withColumn("chunk", F.explode(F.sequence(F.col("_own"), F.col("_last"))))
            .withColumn("is_context", F.col("chunk") != F.col("_own"))
            .drop("_own", "_last", "_tie_end"))


def num_buckets(total_rows: int, max_events_per_task: int) -> int:
    """How many pandas calls the groups are spread over: about ``max(M, MIN_BUCKET_ROWS)`` rows each."""
    return max(1, -(-int(total_rows) // max(int(max_events_per_task), MIN_BUCKET_ROWS)))


def sequence_rows(events: "DataFrame", sids: "DataFrame", *, signal: str, sid_version: int, n_codes: int,
                  n_ngrams: int, history_length: int, max_events_per_task: int, total_rows: int,
                  rows_per_file: int = 50_000) -> "DataFrame":
    """The ``sequences`` rows (schema :data:`sidlib.schemas.SEQUENCES`) as a lazy DataFrame;
    ``total_rows`` (the events' row count) sizes the buckets and output partitions."""
    from pyspark.sql import functions as F

    rows = chunked_input(with_sids(events, sids, n_codes, n_ngrams), history_length, max_events_per_task)
    # the output is ~N times wider than the input: spread it over enough partitions that each written
    # file, and so each Parquet row group (what Petastorm reads at once), stays small; several
    # buckets per partition even out the hash partitioning
    partitions = max(1, -(-int(total_rows) // max(1, int(rows_per_file))))
    buckets = max(num_buckets(total_rows, max_events_per_task), BUCKETS_PER_PARTITION * partitions)
    rows = rows.withColumn("bucket", F.pmod(F.xxhash64("user_id", "chunk"), F.lit(buckets)))
    rows = rows.repartition(partitions, "bucket")
    out = rows.groupBy("bucket").applyInPandas(
        history_fn(history_length, n_codes, n_ngrams), schemas.ddl(GROUP_OUTPUT))
    out = out.withColumn("signal", F.lit(signal)).withColumn("sid_version", F.lit(int(sid_version)).cast("bigint"))
    return out.select(*schemas.SEQUENCES)


def signal_sids(sids: "DataFrame", signal: str, version: int | None = None) -> "DataFrame":
    """The ``item_sids`` rows of ``signal`` (of SID version ``version`` only, when given)."""
    from sidlib.spark.tables import equality_predicate

    values = {"signal": signal} if version is None else {"signal": signal, "sid_version": int(version)}
    return sids.where(equality_predicate(values))


def newest_sid_version(sids: "DataFrame") -> int | None:
    """The highest ``sid_version`` in ``sids`` (``None``: no rows)."""
    row = sids.agg({"sid_version": "max"}).collect()[0]
    return None if row[0] is None else int(row[0])


def count_rows(events: "DataFrame") -> tuple[int, int]:
    """``(rows, rows with a null in any events column)`` in one pass."""
    from pyspark.sql import functions as F

    any_null = F.greatest(*[F.col(c).isNull().cast("int") for c in schemas.EVENTS])
    row = events.agg(F.count(F.lit(1)).alias("rows"), F.sum(any_null).alias("nulls")).collect()[0]
    return int(row["rows"]), int(row["nulls"] or 0)


def item_sid_layout(sids: "DataFrame", signal: str, version: int) -> dict[str, int]:
    """Row count, codes and n-gram widths of one version; refuses ragged or duplicated rows."""
    from pyspark.sql import functions as F

    row = sids.agg(
        F.count(F.lit(1)).alias("rows"), F.countDistinct("item_id").alias("items"),
        F.min(F.size("codes")).alias("codes_min"), F.max(F.size("codes")).alias("codes_max"),
        F.min(F.size("ngrams")).alias("ngrams_min"), F.max(F.size("ngrams")).alias("ngrams_max"),
    ).collect()[0]
    where = f"item_sids (signal {signal!r}, sid_version {version})"
    if not row["rows"]:
        raise TableError(f"{where} has no rows: encode that version first or pick another sequences.sid_version")
    if row["rows"] != row["items"]:
        raise TableError(f"{where} has {row['rows']} rows for {row['items']} items: duplicate item_id")
    if row["codes_min"] != row["codes_max"] or row["codes_min"] < 1:
        raise TableError(f"{where}: codes must all have the same length >= 1, "
                         f"got {row['codes_min']}..{row['codes_max']}")
    if row["ngrams_min"] != row["ngrams_max"]:
        raise TableError(f"{where}: ngrams must all have the same length, got {row['ngrams_min']}..{row['ngrams_max']}")
    return {"items": int(row["items"]), "n_codes": int(row["codes_min"]), "n_ngrams": int(max(row["ngrams_min"], 0))}
