"""Collision-free IDs of one SID version and the SID -> item lookup: the ``sid_items`` table.

Items whose embeddings quantize alike share codes (the demo's unique-SID rate is 0.996), which
generative retrieval and SID -> item lookups cannot accept. ``sid_items`` gives each item one more
code position, ``dedup``: the items of one SID are numbered 0, 1, ... The numbering is deterministic
and stable:

* an item whose SID is unchanged since the last write keeps its ``dedup``;
* items new to the SID (new items, or items whose codes changed) take the next free numbers after the
  largest kept one, in item-id order (numbers of items that left are not reused);
* a SID holding more than ``cap`` items is an error naming it.

``item_sids`` and everything read from it (``sid``, n-grams, histories, SIDE) skip the extra position;
``sid_items`` holds it (``codes`` + ``dedup``, cardinalities ``cardinalities + [cap]``), packed in
``unique_sid = sid + dedup * prod(cardinalities)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from sidlib import schemas
from sidlib.errors import InvalidInputError
from sidlib.sid import hash_size
from sidlib.spark.tables import Tables, sid_version_is

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

#: Buckets named in the error when SIDs hold more than the cap.
SHOWN_BUCKETS = 5


def unique_cardinalities(cardinalities: Sequence[int], cap: int) -> list[int]:
    """The layout of ``sid_items``' codes: the version's, then ``cap`` (checked to pack into int64)."""
    layout = [int(c) for c in cardinalities] + [int(cap)]
    hash_size(layout)
    return layout


def sid_item_rows(tables: Tables, version: int, cardinalities: Sequence[int], cap: int) -> "DataFrame":
    """The ``sid_items`` rows of ``version``: its ``item_sids`` rows numbered within each SID,
    keeping the numbers of the version's current ``sid_items`` rows whose SID is unchanged."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    size = hash_size(cardinalities)
    unique_cardinalities(cardinalities, cap)
    current = tables.read("item_sids").frame.where(sid_version_is(version)).select("item_id", "sid", "codes")
    if tables.exists("sid_items"):  # pinned: the write that replaces these rows reads them as they were
        previous = (tables.read("sid_items").frame.where(sid_version_is(version))
                    .select("item_id", F.col("sid").alias("previous_sid"), F.col("dedup").alias("previous_dedup")))
        joined = current.join(previous, "item_id", "left")
        kept = F.when(F.col("previous_sid") == F.col("sid"), F.col("previous_dedup"))
    else:
        joined, kept = current, F.lit(None).cast("int")
    joined = joined.withColumn("kept", kept)
    by_sid = Window.partitionBy("sid")
    newcomers = Window.partitionBy("sid", F.col("kept").isNull()).orderBy("item_id")
    numbered = joined.withColumn(
        "dedup", F.coalesce(F.col("kept"), F.coalesce(F.max("kept").over(by_sid), F.lit(-1)) + F.row_number().over(newcomers))
    ).select(F.lit(int(version)).cast("bigint").alias("sid_version"), "codes", F.col("dedup").cast("int").alias("dedup"),
             (F.col("sid") + F.col("dedup").cast("bigint") * F.lit(size)).alias("unique_sid"), "sid", "item_id")
    return numbered


def check_cap(rows: "DataFrame", cap: int) -> dict[str, Any]:
    """Raise :class:`InvalidInputError` naming the fullest SIDs when any holds ``cap`` or more numbers;
    else the largest ``dedup`` and the number of SIDs shared by several items."""
    from pyspark.sql import functions as F

    buckets = rows.groupBy("sid", "codes").agg(F.max("dedup").alias("top"), F.count("*").alias("items"))
    over = buckets.where(F.col("top") >= cap).orderBy(F.col("top").desc()).limit(SHOWN_BUCKETS).collect()
    if over:
        named = "; ".join(f"codes {list(r.codes)} (sid {r.sid}): {r.items} items, dedup up to {r.top}" for r in over)
        raise InvalidInputError(f"encode.unique_cap={cap} is too small for {named}: raise encode.unique_cap "
                                f"or give the quantizer more bits")
    summary = buckets.agg(F.max("top").alias("top"), F.sum(F.when(F.col("items") > 1, 1).otherwise(0)).alias("shared"),
                          F.sum("items").alias("items")).collect()[0]
    return {"items": int(summary.items or 0), "max_dedup": int(summary.top if summary.top is not None else -1),
            "shared_sids": int(summary.shared or 0)}


def write_sid_items(tables: Tables, version: int, cardinalities: Sequence[int], cap: int,
                    partition_by: Sequence[str]) -> dict[str, Any]:
    """Replace ``version``'s rows of ``sid_items`` (:func:`sid_item_rows`, checked against ``cap``),
    sorted by ``(codes, dedup)``; returns the layout and counts for the encode's summary."""
    rows = sid_item_rows(tables, version, cardinalities, cap)
    counts = check_cap(rows, cap)
    table_version = tables.overwrite_partition(rows.orderBy("codes", "dedup"), "sid_items",
                                               {"sid_version": int(version)}, partition_by=partition_by,
                                               expected=schemas.SID_ITEMS)
    return {"cardinalities": unique_cardinalities(cardinalities, cap), "sid_items_version": table_version, **counts}
