"""The compact layout of user histories: every event stored once, impressions pointing into them.

``user_histories`` (:data:`sidlib.schemas.USER_HISTORIES`): per user and chunk of at most
``max_events_per_task`` events, the arrays of item id, ts, click and packed SID in the tie order of
:mod:`sidlib.spark.sequences` (``(ts, item_id, click, conv)``). ``impressions``
(:data:`sidlib.schemas.IMPRESSIONS`): one row per event with its target SID and ``hist_end``, the
number of the user's events with a strictly smaller ``ts``. The history of an impression for any
length N is the user's events ``[hist_end - N, hist_end)``, assembled by the reader
(:mod:`sidlib.histories`); that is exactly the window the materialized table stores.

Both tables carry ``user_bucket = pmod(xxhash64(user_id), buckets)`` and are partitioned by it, so a
reader that takes one bucket's impressions needs only that bucket's histories in memory. The work is
one sort of the events per user (two ranking windows) and, for the histories, one aggregation per
chunk: O(events), whatever N is.

The embedded engine holds a sort's and an aggregation's whole input in memory (the aggregation of
arrays cannot spill), so its peak would grow with the events. The tables are therefore written in
passes (:func:`plan_passes`): each pass takes the users of a group of buckets and is its own query,
so the engine holds about ``sequences.events_per_pass`` events at a time. Every pass reads the events
again; that costs less than holding them (measured in ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from sidlib import schemas
from sidlib.spark.sequences import code_columns, ngram_columns, with_sids

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


def num_user_buckets(events: int, events_per_bucket: int) -> int:
    """How many user buckets ``events`` events are spread over: about ``events_per_bucket`` each."""
    return max(1, -(-int(events) // max(1, int(events_per_bucket))))


def user_bucket(buckets: int) -> "Column":
    from pyspark.sql import functions as F

    return F.pmod(F.xxhash64("user_id"), F.lit(int(buckets))).cast("int")


def bucket_sizes(events: "DataFrame", buckets: int) -> dict[int, int]:
    """Events per user bucket (buckets without events are left out)."""
    from pyspark.sql import functions as F

    rows = events.groupBy(user_bucket(buckets).alias("b")).agg(F.count(F.lit(1)).alias("n")).collect()
    return {int(r["b"]): int(r["n"]) for r in rows}


def plan_passes(sizes: Mapping[int, int], events_per_pass: int | None) -> list[list[int]]:
    """Buckets grouped into passes of about ``events_per_pass`` events (``None``: one pass): as many
    passes as the events need, largest bucket first into the lightest pass, so the heaviest pass (the
    engine's peak memory) stays close to the average whatever the skew of users."""
    order = sorted(sizes, key=lambda b: (-sizes[b], b))
    if events_per_pass is None or not order:
        return [sorted(order)]
    passes = max(1, min(len(order), -(-sum(sizes.values()) // max(1, int(events_per_pass)))))
    groups: list[list[int]] = [[] for _ in range(passes)]
    loads = [0] * passes
    for bucket in order:
        lightest = loads.index(min(loads))
        groups[lightest].append(bucket)
        loads[lightest] += sizes[bucket]
    return [sorted(g) for g in groups]


def events_of_pass(events: "DataFrame", buckets: int, chosen: list[int]) -> "DataFrame":
    """The events of the users of the ``chosen`` buckets."""
    return events.where(user_bucket(buckets).isin([int(b) for b in chosen]))


def ranked_events(events: "DataFrame", sids: "DataFrame", n_codes: int, n_ngrams: int, buckets: int) -> "DataFrame":
    """Events with their item's SID columns (:func:`sidlib.spark.sequences.with_sids`), ``r`` (the
    event's position in the user's tie order), ``hist_end`` and ``user_bucket``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    by_user = Window.partitionBy("user_id")
    return (with_sids(events, sids, n_codes, n_ngrams)
            .withColumn("r", (F.row_number().over(by_user.orderBy("ts", "item_id", "click", "conv")) - 1)
                        .cast("bigint"))
            .withColumn("hist_end", (F.rank().over(by_user.orderBy("ts")) - 1).cast("bigint"))
            .withColumn("user_bucket", user_bucket(buckets)))


def user_history_rows(ranked: "DataFrame", *, signal: str, sid_version: int, max_events_per_task: int) -> "DataFrame":
    """The ``user_histories`` rows of :func:`ranked_events`' output: chunk ``r // max_events_per_task``
    of each user, its arrays sorted by ``r``."""
    from pyspark.sql import functions as F

    events = F.sort_array(F.collect_list(F.struct("r", "item_id", "ts", "click", "sid")))
    chunks = (ranked.withColumn("chunk", F.floor(F.col("r") / int(max_events_per_task)).cast("bigint"))
              .groupBy("user_bucket", "user_id", "chunk").agg(events.alias("_events")))
    return chunks.select(
        "user_id", "chunk", "user_bucket", F.lit(signal).alias("signal"),
        F.lit(int(sid_version)).cast("bigint").alias("sid_version"),
        F.col("_events.item_id").alias("item_ids"), F.col("_events.ts").alias("ts"),
        F.col("_events.click").alias("clicks"), F.col("_events.sid").alias("sids"),
    ).select(*schemas.USER_HISTORIES)


def impression_rows(ranked: "DataFrame", *, signal: str, sid_version: int, n_codes: int, n_ngrams: int,
                    histories_version: int | None) -> "DataFrame":
    """The ``impressions`` rows of :func:`ranked_events`' output; ``histories_version`` is the
    ``user_histories`` version their ``hist_end`` points into (``None`` on Parquet: the current one)."""
    from pyspark.sql import functions as F

    def array_of(columns: list[str], kind: str) -> "Column":
        return F.array(*[F.col(c) for c in columns]).cast(f"array<{kind}>")

    return ranked.select(
        "user_id", "item_id", "ts", "click", "conv", F.lit(signal).alias("signal"),
        F.lit(int(sid_version)).cast("bigint").alias("sid_version"), F.col("sid").alias("target_sid"),
        array_of(code_columns(n_codes), "int").alias("target_codes"),
        array_of(ngram_columns(n_ngrams), "bigint").alias("target_ngrams"),
        "hist_end", "user_bucket",
        F.lit(None if histories_version is None else int(histories_version)).cast("bigint").alias("histories_version"),
    ).select(*schemas.IMPRESSIONS)




def impression_layout(impressions: "DataFrame") -> dict[str, list[int | None]]:
    """The distinct ``user_histories`` versions that ``impressions`` rows point into, their SID
    versions and their user buckets."""
    from pyspark.sql import functions as F

    row = impressions.agg(F.collect_set(F.coalesce("histories_version", F.lit(-1))).alias("histories_version"),
                          *[F.collect_set(c).alias(c) for c in ("sid_version", "user_bucket")]).collect()[0]
    out = {c: sorted(row[c]) for c in ("histories_version", "sid_version", "user_bucket")}
    out["histories_version"] = [None if v == -1 else v for v in out["histories_version"]]  # null on Parquet
    return out


def history_layout(histories: "DataFrame") -> dict[str, Any]:
    """How many rows and events ``user_histories`` holds, and their SID versions, in one pass."""
    from pyspark.sql import functions as F

    row = histories.agg(F.count(F.lit(1)).alias("rows"), F.sum(F.size("item_ids")).alias("events"),
                        F.collect_set("sid_version").alias("sid_version")).collect()[0]
    return {"rows": int(row["rows"]), "events": int(row["events"] or 0), "sid_version": sorted(row["sid_version"])}
