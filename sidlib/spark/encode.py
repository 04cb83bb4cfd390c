"""The encode UDF: SIDs for Arrow batches of embeddings, the artifact loaded once per worker.

Used with ``mapInArrow`` (an iterator of Arrow record batches per task), so the quantizer is
deserialised and its checksum verified once per worker process, not per batch or per row, and no
Python object is made per row: embeddings are read straight from the Arrow values buffer, codes and
n-grams are written back as list arrays over one flat buffer (``encode`` in matmul form, mixed-radix
packing in numpy)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from sidlib import schemas
from sidlib.artifacts import ArtifactStore
from sidlib.quantizers import Quantizer
from sidlib.sid import pack, prefix_ngrams
from sidlib.spark.arrow_lists import list_column

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame


@lru_cache(maxsize=4)
def cached_quantizer(root: str, version: int) -> Quantizer:
    """Per-worker-process cache of loaded artifacts (checksums verified on first load)."""
    from sidlib.device import set_worker_threads

    set_worker_threads()
    return ArtifactStore(root).get(version).load_quantizer().to_preferred_device()


def sid_columns(quantizer: Quantizer, codes: np.ndarray) -> dict[str, "pa.Array"]:
    """``codes`` (int32 per row), packed ``sid`` and prefix ``ngrams`` of one batch, as Arrow columns."""
    import pyarrow as pa

    cards = quantizer.cardinalities
    return {"codes": list_column(codes.astype(np.int32)), "sid": pa.array(pack(codes, cards)),
            "ngrams": list_column(prefix_ngrams(codes, cards).astype(np.int64))}


def encode_batches(root: str, version: int, signal: str, dim: int, max_abs_value: float,
                   stability_margin: float | None = None) -> Callable[[Iterator["pa.RecordBatch"]], Iterator["pa.RecordBatch"]]:
    """The ``mapInArrow`` function: (``item_id``, ``embedding``) batches in, ``item_sids`` rows out.
    Rows that are not usable ``dim``-long embeddings with an id are dropped (:func:`usable_rows`), so
    the job can hand it unchecked rows and account for the dropped ones afterwards. With a
    ``stability_margin`` the batches also carry ``previous_codes`` (-1s for an item without them), and
    an item keeps them unless its new codes are better by more than the margin
    (:func:`sidlib.stability.stable_codes`)."""

    def run(batches: Iterator["pa.RecordBatch"]) -> Iterator["pa.RecordBatch"]:
        import pyarrow as pa

        from sidlib.spark.arrow_lists import code_matrix
        from sidlib.spark.row_checks import usable_rows
        from sidlib.stability import stable_codes

        quantizer = cached_quantizer(root, version)
        for batch in batches:
            keep, embeddings = usable_rows(batch.column("item_id"), batch.column("embedding"), dim, max_abs_value)
            n = len(embeddings)
            if not n:
                continue
            codes = quantizer.encode(embeddings)
            if stability_margin is not None:
                previous = code_matrix(batch.column("previous_codes"), codes.shape[1])
                codes = stable_codes(quantizer, embeddings, previous if keep is None else previous[keep],
                                     stability_margin, new=codes)
            columns = sid_columns(quantizer, codes)
            # copy the ids: an output column that shares a buffer with the input batch keeps the whole
            # imported batch (embeddings included) alive for as long as the engine holds the output
            ids = batch.column("item_id").to_numpy(zero_copy_only=False)
            item_ids = pa.array((ids if keep is None else ids[keep]).astype(np.int64, copy=True))
            yield pa.record_batch([item_ids, pa.array([signal] * n, pa.string()),
                                   pa.array(np.full(n, version, dtype=np.int64)), columns["codes"], columns["sid"],
                                   columns["ngrams"]], names=list(schemas.ITEM_SIDS))

    return run


def with_previous_codes(tables: Any, frame: "DataFrame", previous: int, n_codes: int) -> "DataFrame":
    """``frame`` with each item's ``codes`` in SID version ``previous`` as ``previous_codes`` (``n_codes``
    times -1 for an item that version does not have)."""
    from sidlib.spark.tables import sid_version_is

    old = tables.read("item_sids").frame.where(sid_version_is(previous)).selectExpr("item_id", "codes AS _previous")
    return frame.join(old, "item_id", "left").selectExpr(
        "item_id", "embedding", f"coalesce(_previous, array_repeat(-1, {int(n_codes)})) AS previous_codes")


def write_version(tables: Any, frame: "DataFrame", *, root: str, version: int, signal: str, dim: int,
                  max_abs_value: float, incremental: bool, partition_by: list[str],
                  stable_from: tuple[int, int, float] | None = None) -> tuple[int, int, int | None]:
    """Encode ``frame`` (``item_id``, ``embedding``) with artifact ``version`` into ``item_sids``:
    ``incremental`` encodes only items without a SID of that version (anti-join) and upserts them;
    otherwise the version's rows are replaced atomically. ``stable_from``: ``(previous version, codes
    per item, margin)`` of a full encode whose items keep their previous codes unless clearly beaten
    (:func:`encode_batches`). Returns ``(items encoded, items in the version, item_sids table version)``."""
    from sidlib.spark.tables import sid_version_is

    before = 0
    if incremental and tables.exists("item_sids"):
        existing = tables.read("item_sids").frame.where(sid_version_is(version)).select("item_id")
        before = existing.count()
        frame = frame.join(existing, "item_id", "left_anti")
    margin = None
    if stable_from is not None and not incremental:
        previous, n_codes, margin = stable_from
        frame = with_previous_codes(tables, frame, previous, n_codes)
    encoded = frame.mapInArrow(encode_batches(root, version, signal, dim, max_abs_value, margin),
                               schemas.ddl(schemas.ITEM_SIDS))
    if incremental:
        written = tables.upsert(encoded, "item_sids", ["item_id", "sid_version"], partition_by=partition_by)
    else:
        written = tables.overwrite_partition(encoded, "item_sids", {"sid_version": version}, partition_by=partition_by)
    total = count_version(tables, version)
    return total - before, total, written


def count_version(tables: Any, version: int) -> int:
    """Rows of SID version ``version`` in ``item_sids`` (0 when the table does not exist yet)."""
    from sidlib.spark.tables import sid_version_is

    return tables.read_unpinned("item_sids").where(sid_version_is(version)).count() if tables.exists("item_sids") else 0
