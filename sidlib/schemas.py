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
#: Conventions: padded slots have ``hist_mask`` 0, item id 0, ts 0, click 0, sid -1 and codes -1;
#: an item without a SID (real event, mask 1, or the target) has sid -1, codes -1 and ngrams -1.
#: ``hist_codes`` is ``[N * n_codes]`` flattened slot-major (slot t's codes at ``t*n_codes ...``).
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
    "hist_codes": "array<int>",
    "hist_mask": "array<int>",
}

#: ``sequences`` plus a time-based ``split`` (one of :data:`SPLITS`); partitioned by ``split``.
RANKER_TRAINING = {**SEQUENCES, "split": "string"}

#: The values of ``ranker_training.split``, in time order.
SPLITS = ("train", "valid", "test")
