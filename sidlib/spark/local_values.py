"""Reads that hand a job small tables as plain Python or numpy values, and the reverse for demo data.

Everything here runs on the driver: the inputs are one signal's embeddings, one SID version's codes,
the titles or per-table counts, sizes a driver holds (a catalog of millions of items at 384 floats is
a few GB). Each read goes through :meth:`~sidlib.spark.tables.Tables.read`, so it is pinned, recorded
and schema-checked like any job input."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sidlib import schemas
from sidlib.errors import TableError
from sidlib.spark.sequences import signal_sids
from sidlib.spark.tables import Tables, equality_predicate, sid_version_is

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def content_matrix(tables: Tables, signal: str, model_version: str) -> tuple[np.ndarray, np.ndarray]:
    """``(item_ids, embeddings)`` of the signal's rows of ``model_version`` (the newest per item), in
    item-id order."""
    rows = tables.read("content_embeddings").frame.where(
        equality_predicate({"signal": signal, "model_version": model_version})).selectExpr(
        "item_id", "embedding", "logged_at").toPandas()
    if rows.empty:
        raise TableError(f"content_embeddings has no rows for {signal}@{model_version}")
    rows = rows.sort_values(["item_id", "logged_at"]).drop_duplicates("item_id", keep="last")
    return rows["item_id"].to_numpy(np.int64), np.stack(rows["embedding"].to_numpy()).astype(np.float32)


def item_sids(tables: Tables, signal: str, version: int) -> dict[int, int]:
    """``item_id -> sid`` of one SID version of ``signal``."""
    rows = signal_sids(tables.read("item_sids").frame, signal, version).select("item_id", "sid").toPandas()
    return dict(zip(rows["item_id"].astype(int), rows["sid"].astype(int)))


def version_codes(tables: Tables, version: int, max_items: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``(item_ids, codes [n, n_codes], items in the version)`` of one ``item_sids`` version, in item-id
    order: every item, or a sample of about ``max_items`` (:func:`bounded_items`). The table's latest
    state: a version's rows are replaced together, never edited."""
    rows = tables.read_unpinned("item_sids").where(sid_version_is(version)).select("item_id", "codes")
    local, total = bounded_items(rows, max_items, "report")
    if local.empty:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.int64), total
    return local["item_id"].to_numpy(np.int64), np.stack(local["codes"].to_numpy()).astype(np.int64), total


def shared_items(tables: Tables, frame: "DataFrame", version: int, max_items: int) -> tuple[np.ndarray, np.ndarray]:
    """``(embeddings [n, dim], codes [n, n_codes])`` of the items that both ``frame`` (valid
    ``item_id``, ``embedding`` rows of a new fit) and ``item_sids`` version ``version`` hold, in item-id
    order; a sample of about ``max_items`` when more share (:func:`bounded_items`)."""
    from sidlib.spark.arrow_lists import to_matrix

    codes = tables.read_unpinned("item_sids").where(sid_version_is(version)).select("item_id", "codes")
    local, _ = bounded_items(frame.select("item_id", "embedding").join(codes, "item_id"), max_items, "align")
    if local.empty:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.int64)
    return to_matrix(local["embedding"]), np.stack(local["codes"].to_numpy()).astype(np.int64)


def bounded_items(rows: "DataFrame", max_items: int, salt: str) -> tuple[pd.DataFrame, int]:
    """``(rows in item-id order, how many there are)``: every row, or a sample of about ``max_items``
    by a hash of item_id (and ``salt``) when there are more, so the driver holds a bounded frame."""
    from sidlib.spark.sampling import hash_fraction

    total = rows.count()
    if total > max_items:
        rows = rows.where(f"{hash_fraction('item_id', salt)} < {max_items / total!r}")
    return rows.toPandas().sort_values("item_id"), total


def item_titles(tables: Tables, item_ids: Iterable[int] | None = None) -> dict[int, str]:
    """``item_id -> title`` of the ``items`` table (of ``item_ids`` only, when given)."""
    frame = tables.read("items").frame.select("item_id", "title")
    if item_ids is not None:
        from pyspark.sql import functions as F

        frame = frame.where(F.col("item_id").isin([int(i) for i in item_ids]))
    items = frame.toPandas()
    return {int(k): str(v) for k, v in zip(items["item_id"], items["title"])}


def table_counts(tables: Tables, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Per table: its row count and the version read."""
    counts = {}
    for name in names:
        frame, version = tables.read(name)
        counts[name] = {"rows": frame.count(), "version": version}
    return counts


def signal_counts(tables: Tables) -> dict[str, int]:
    """Rows of ``content_embeddings`` per ``signal@model_version``, ordered by signal."""
    rows = tables.read("content_embeddings").frame.groupBy("signal", "model_version").count().collect()
    return {f"{r['signal']}@{r['model_version']}": int(r["count"]) for r in sorted(rows, key=lambda r: r["signal"])}


def write_frame(tables: Tables, frame: pd.DataFrame, table: str) -> int | None:
    """Write a pandas frame as the whole of ``table`` with its registered schema; returns the version."""
    schema: Mapping[str, str] = schemas.by_table()[table]
    return tables.write(tables.spark.createDataFrame(frame, schema=schemas.ddl(schema)), table, expected=schema)
