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


def ddl(schema: dict[str, str]) -> str:
    """Spark DDL string (``"a bigint, b array<float>"``) for ``createDataFrame(..., schema=...)``."""
    return ", ".join(f"{name} {type_}" for name, type_ in schema.items())


#: One row per (item, signal, SID version). ``signal`` is the content signal the SID encodes (or
#: ``fusion`` for one SID over several signals); partitioned by ``sid_version``.
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
