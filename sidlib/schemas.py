"""Column names and Spark types (``simpleString``) of the pipeline's tables, in one place.

Writers check what they wrote against these (see ``sidlib.spark.tables``), and readers can rely on
them. Timestamps are unix seconds (``ts``) so point-in-time joins compare integers and ties are exact.
"""

EVENTS = {"user_id": "bigint", "item_id": "bigint", "ts": "bigint", "click": "int", "conv": "int"}

CONTENT_EMBEDDINGS = {
    "item_id": "bigint",
    "signal": "string",
    "model_version": "string",
    "embedding": "array<float>",
    "logged_at": "timestamp",
}

ITEMS = {"item_id": "bigint", "title": "string", "year": "int", "genres": "array<string>"}

#: The tables the pipeline reads from upstream (the demo's ingest writes them), in that order.
UPSTREAM = ("items", "events", "content_embeddings")


def ddl(schema: dict[str, str]) -> str:
    """Spark DDL string (``"a bigint, b array<float>"``) for ``createDataFrame(..., schema=...)``."""
    return ", ".join(f"{name} {type_}" for name, type_ in schema.items())


#: One row per (item, signal, SID version). ``signal`` is the content signal the SID encodes (or
#: ``fusion`` for one SID over several signals); one SID version's rows are replaced together
#: (partitioned by ``sid_version`` on Parquet only, see ``sidlib.steps.encode.sid_partitioning``).
ITEM_SIDS = {
    "item_id": "bigint",
    "signal": "string",
    "sid_version": "bigint",
    "codes": "array<int>",
    "sid": "bigint",
    "ngrams": "array<bigint>",
}

#: Collision-free IDs of one SID version (``encode.unique``), and the SID -> item lookup of generative
#: retrieval: ``codes`` are the item's ``item_sids`` codes, ``dedup`` numbers the items that share them
#: (0, 1, ... in the order they were first encoded; never changed for an item whose codes stay), and
#: ``unique_sid = sid + dedup * prod(cardinalities)`` packs both (``sid`` in its low digits). Written
#: sorted by ``(codes, dedup)``, so the items of one code prefix are one contiguous range.
SID_ITEMS = {
    "sid_version": "bigint",
    "codes": "array<int>",
    "dedup": "int",
    "unique_sid": "bigint",
    "sid": "bigint",
    "item_id": "bigint",
}

#: The "current" SID version per signal: one row per signal, switched atomically by MERGE.
SID_POINTER = {
    "signal": "string",
    "sid_version": "bigint",
    "previous_version": "bigint",
    "model_version": "string",
    "switched_at": "timestamp",
    "held": "boolean",
}

#: Quarantined input rows: what was wrong, which job saw it, in which version of the source table.
REJECTED_ROWS = {
    "item_id": "bigint",
    "signal": "string",
    "model_version": "string",
    "reason": "string",
    "job": "string",
    "source_version": "bigint",
}


def by_table() -> dict[str, dict[str, str]]:
    """Logical table name -> schema. Parquet has no schema log (partition columns come back with
    inferred types), so Parquet reads apply these."""
    return {name.lower(): value for name, value in globals().items()
            if name.isupper() and isinstance(value, dict)}


#: One row per impression (= ``events`` row): the user's last N events strictly before it (``ts`` <
#: the impression's ``ts``; ties ordered by ``(ts, item_id, click, conv)``), right-aligned (most
#: recent last, padding on the left), and the SIDs of one ``signal``/``sid_version``.
#: Conventions: padded slots have ``hist_mask`` 0, item id 0, ts 0, click 0 and sid -1; an item
#: without a SID (real event, mask 1, or the target) has sid -1, codes -1 and ngrams -1. A history
#: slot's codes are its packed SID unpacked (``sidlib.sid.unpack``, SIDE: ``side_codes``), not stored.
SEQUENCES = {
    "user_id": "bigint",
    "item_id": "bigint",
    "ts": "bigint",
    "click": "int",
    "conv": "int",
    "signal": "string",
    "sid_version": "bigint",
    "target_sid": "bigint",
    "target_codes": "array<int>",
    "target_ngrams": "array<bigint>",
    "hist_len": "int",
    "hist_item_ids": "array<bigint>",
    "hist_ts": "array<bigint>",
    "hist_clicks": "array<int>",
    "hist_sids": "array<bigint>",
    "hist_mask": "array<int>",
}

#: ``sequences`` plus a time-based ``split`` (one of :data:`SPLITS`); partitioned by ``split``.
RANKER_TRAINING = {**SEQUENCES, "split": "string"}

#: The compact layout (``sequences.layout: compact``, ``sidlib.spark.histories``): each user's events
#: once, per user and chunk of at most ``sequences.max_events_per_task`` events, in the tie order of
#: ``sequences`` (``r = chunk * max_events_per_task + position``); partitioned by ``user_bucket``.
USER_HISTORIES = {
    "user_id": "bigint",
    "chunk": "bigint",
    "user_bucket": "int",
    "signal": "string",
    "sid_version": "bigint",
    "item_ids": "array<bigint>",
    "ts": "array<bigint>",
    "clicks": "array<int>",
    "sids": "array<bigint>",
}

#: One row per impression of the compact layout: ``sequences`` without the history arrays, plus
#: ``hist_end`` (the user's events with a strictly smaller ``ts``: the history is the user's events
#: ``[hist_end - N, hist_end)`` for the N a reader asks for) and the ``user_histories`` version it
#: points into (null on Parquet); partitioned by ``user_bucket``.
IMPRESSIONS = {
    **{k: v for k, v in SEQUENCES.items() if not k.startswith("hist_")},
    "hist_end": "bigint",
    "user_bucket": "int",
    "histories_version": "bigint",
}

#: ``impressions`` plus the time-based ``split``; partitioned by ``split`` and ``user_bucket``.
RANKER_IMPRESSIONS = {**IMPRESSIONS, "split": "string"}

#: The values of ``ranker_training.split``, in time order.
SPLITS = ("train", "valid", "test")
