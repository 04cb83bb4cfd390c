"""Fitting quantizers on Spark.

* EM quantizers: the E-step runs on the executors. Each partition folds its Arrow batches into one
  set of sufficient statistics (``mapInArrow``); the driver sums them and runs the M-step, level by
  level, using exactly the :class:`~sidlib.quantizers.base.EMQuantizer` calls an in-process fit uses.
  One Spark job per iteration, over rows shuffled once and cached on the executors. The sum runs in a
  fixed order (partitions sorted by their smallest item id), so a refit of the same table version
  gives byte-identical codes. Training sets small enough for the driver (``fit.driver_fit_max_mb``)
  are collected once and fit in-process instead: a cluster round-trip per iteration costs more than
  the E-step of such a set, and the result is then the same on every engine.
* Neural quantizers: one Spark task per signal trains on that signal's sample
  (``groupBy(signal).applyInPandas``), on the task's GPU when it has one; the fitted weights come back
  as bytes (tensors and JSON only).
"""

from __future__ import annotations

import io
import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

import numpy as np
import pandas as pd

from sidlib.errors import ConfigError, SidlibError
from sidlib.quantizers import EMQuantizer, Quantizer, QuantizerSpec
from sidlib.quantizers.base import add_statistics
from sidlib.quantizers.serialize import from_bytes, to_bytes

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

STATS_SCHEMA = "part_key long, key string, value binary"
TRAINED_SCHEMA = "signal string, payload binary, rows long, seconds double"
LAYOUT_SCHEMA = ("grid_id long, params string, bits double, cosine_loss double, utilization_min double, "
                 "utilization_mean double, unique_sid_rate double, seconds double, error string")


def _array_bytes(arr: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, arr, allow_pickle=False)
    return buffer.getvalue()


def _bytes_array(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def partition_statistics(payload: bytes, level: int | None) -> Callable[[Iterator["pa.RecordBatch"]], Iterator["pa.RecordBatch"]]:
    """The ``mapInArrow`` function of one E-step (of level ``level``, or of a refinement round):
    statistics of one partition, emitted once (embeddings read straight from the Arrow buffers, no
    Python object per row)."""

    def run(batches: Iterator["pa.RecordBatch"]) -> Iterator["pa.RecordBatch"]:
        import pyarrow as pa

        from sidlib.device import set_worker_threads
        from sidlib.spark.arrow_lists import arrow_matrix

        set_worker_threads()
        quantizer = from_bytes(payload).to_preferred_device()
        assert isinstance(quantizer, EMQuantizer)
        parts, first_id = [], None
        for batch in batches:
            if batch.num_rows:
                batch_first = int(batch.column("item_id").to_numpy().min())
                first_id = batch_first if first_id is None else min(first_id, batch_first)
                parts.append(quantizer.step_statistics(level, arrow_matrix(batch.column("embedding"))))
        if parts:
            stats = add_statistics(parts)
            yield pa.record_batch([pa.array([first_id] * len(stats), pa.int64()), pa.array(list(stats), pa.string()),
                                   pa.array([_array_bytes(v) for v in stats.values()], pa.binary())],
                                  names=["part_key", "key", "value"])

    return run


StatisticsFn = Callable[[EMQuantizer, "int | None"], dict[str, np.ndarray]]

#: Rows per E-step chunk of an in-process fit (fixed, so the sums do not depend on the engine).
IN_PROCESS_CHUNK_ROWS = 65_536


def run_em(quantizer: EMQuantizer, sample: np.ndarray, statistics: StatisticsFn, where: str) -> EMQuantizer:
    """The EM loop of :class:`~sidlib.quantizers.base.EMQuantizer`, with the E-step's summed statistics
    from ``statistics(quantizer, level)`` (the executors' or this process's)."""
    for level in range(quantizer.n_levels):
        quantizer.init_level(level, sample)
        for iteration in range(quantizer.level_iterations()):
            start = time.perf_counter()
            change = quantizer.apply_statistics(level, statistics(quantizer, level))
            # inf: nothing to compare with yet (first step) or dead codewords were just re-seeded
            progress = f"relative change {change:.2e}" if np.isfinite(change) else (
                "first step" if iteration == 0 else "dead codewords re-seeded")
            log.info("EM level %d/%d iteration %d: %s %s (%.1fs)", level + 1, quantizer.n_levels, iteration + 1,
                     progress, where, time.perf_counter() - start)
            if change < quantizer.tol:
                break
    start = time.perf_counter()
    rounds = quantizer.refine(lambda: statistics(quantizer, None))
    if quantizer.refine_rounds:
        log.info("EM joint refinement: %d of %d rounds solved %s (%.1fs)", rounds, quantizer.refine_rounds,
                 where, time.perf_counter() - start)
    quantizer.finish_fit()
    return quantizer


def fit_em_distributed(quantizer: EMQuantizer, frame: "DataFrame", sample: np.ndarray, *, partitions: int) -> EMQuantizer:
    """Fit ``quantizer`` on all rows of ``frame`` (``item_id``, ``embedding``), initialised from ``sample``:
    one Spark job per EM iteration, over the rows shuffled once and kept on the executors."""
    data = _persisted(frame.select("item_id", "embedding").repartition(partitions, "item_id"))
    try:
        return run_em(quantizer, sample, lambda q, level: _executor_statistics(data, q, level),
                      f"over {partitions} partitions")
    finally:
        _unpersist(data)


def fit_em_in_process(quantizer: EMQuantizer, rows: np.ndarray, sample: np.ndarray) -> EMQuantizer:
    """The same fit on a training matrix held by this process (rows in item-id order)."""
    def statistics(q: EMQuantizer, level: int | None) -> dict[str, np.ndarray]:
        return add_statistics(q.step_statistics(level, rows[i:i + IN_PROCESS_CHUNK_ROWS])
                              for i in range(0, len(rows), IN_PROCESS_CHUNK_ROWS))

    return run_em(quantizer, sample, statistics, f"over {len(rows)} rows in the driver")


def _executor_statistics(data: "DataFrame", quantizer: EMQuantizer, level: int | None) -> dict[str, np.ndarray]:
    rows = data.mapInArrow(partition_statistics(to_bytes(quantizer), level), STATS_SCHEMA).collect()
    by_part: dict[int, dict[str, np.ndarray]] = {}
    for row in rows:
        by_part.setdefault(int(row["part_key"]), {})[row["key"]] = _bytes_array(row["value"])
    return add_statistics(by_part[k] for k in sorted(by_part))


def _persisted(data: "DataFrame") -> "DataFrame":
    """Keep the shuffled rows on the executors between EM iterations (memory, spilling to disk); an
    engine without caching recomputes them each iteration instead."""
    from pyspark import StorageLevel

    try:
        return data.persist(StorageLevel.MEMORY_AND_DISK)
    except Exception as exc:  # engines without cache support raise their own types
        log.info("engine does not cache the EM rows (%s); each iteration re-reads them", str(exc).splitlines()[0][:120])
        return data


def _unpersist(data: "DataFrame") -> None:
    try:
        data.unpersist()
    except Exception as exc:  # see _persisted
        log.debug("unpersist: %s", exc)


def collect_training_rows(frame: "DataFrame", sample_rows: int, salt: str) -> tuple[np.ndarray, np.ndarray]:
    """``(rows in item-id order, the init sample)`` of ``frame`` in one job, for an in-process fit. The
    sample is the first ``sample_rows`` rows by ``(hash(item_id, salt), item_id)``: the rows
    :func:`ordered_rows` picks for a distributed fit."""
    import pyspark.sql.functions as F

    from sidlib.spark.arrow_lists import arrow_matrix
    from sidlib.spark.sampling import hash_fraction

    table = frame.select("item_id", "embedding", F.expr(hash_fraction("item_id", salt)).alias("_h")).toArrow()
    ids, hashes = table.column("item_id").to_numpy(), table.column("_h").to_numpy()
    matrix = arrow_matrix(table.column("embedding"))
    by_id = np.argsort(ids, kind="stable")
    by_hash = np.lexsort((ids, hashes))[:sample_rows]
    return matrix[by_id], matrix[by_hash]


def ordered_rows(frame: "DataFrame", limit: int, salt: str, *, where: str | None = None) -> np.ndarray:
    """Up to ``limit`` rows (those matching the SQL predicate ``where``, if given) in a fixed
    pseudo-random order (hash of item_id), as a matrix."""
    import pyspark.sql.functions as F

    from sidlib.spark.arrow_lists import arrow_matrix
    from sidlib.spark.sampling import hash_fraction

    if where is not None:
        frame = frame.where(where)
    ordered = frame.withColumn("_h", F.expr(hash_fraction("item_id", salt))).orderBy("_h", "item_id").limit(limit)
    return arrow_matrix(ordered.select("embedding").toArrow().column("embedding"))


def fits_driver(rows: int, dim: int, budget_mb: int) -> bool:
    """Whether an EM training set of ``rows`` x ``dim`` float32 fits ``fit.driver_fit_max_mb``."""
    return rows * dim * 4 <= budget_mb << 20


def fit_em(quantizer: EMQuantizer, frame: "DataFrame", *, holdout: str, sample_fraction: float | None,
           sample_rows: int, seed: int, driver_fit_max_mb: int, stat_partitions: int) -> int:
    """Fit ``quantizer`` on the rows of ``frame`` outside ``holdout`` (a ``sample_fraction`` of them by a
    hash of item_id, if given): in process when they fit ``driver_fit_max_mb``, else distributed over
    ``stat_partitions``. Returns the number of training rows."""
    from sidlib.spark.sampling import hash_fraction

    train = frame.where(f"NOT ({holdout})")
    if sample_fraction is not None:
        train = train.where(f"{hash_fraction('item_id', 'em-sample')} < {float(sample_fraction)}")
    rows, salt, dim = train.count(), f"init-{seed}", quantizer.dim
    if fits_driver(rows, dim, driver_fit_max_mb):
        matrix, sample = collect_training_rows(train, sample_rows, salt)
        fit_em_in_process(quantizer, matrix, sample)
    else:
        fit_em_distributed(quantizer, train, ordered_rows(train, sample_rows, salt), partitions=stat_partitions)
    return rows


def neural_training_sample(frames: dict[str, "DataFrame"], *, holdout: str, sample_rows: int,
                           seed: int) -> "DataFrame":
    """One frame of ``signal``, ``item_id``, ``embedding``: per signal, the first ``sample_rows``
    training rows (outside ``holdout``) by a hash of item_id."""
    import pyspark.sql.functions as F
    from pyspark.sql import Window

    from sidlib.spark.sampling import hash_fraction

    parts = [frame.where(f"NOT ({holdout})").withColumn("signal", F.lit(s)) for s, frame in frames.items()]
    union = parts[0]
    for other in parts[1:]:
        union = union.unionByName(other)
    order = Window.partitionBy("signal").orderBy(F.expr(hash_fraction("item_id", f"sample-{seed}")), "item_id")
    return union.withColumn("_rank", F.row_number().over(order)).where(F.col("_rank") <= sample_rows).drop("_rank")


def train_in_task(spec: QuantizerSpec, warm: Mapping[str, bytes] | None = None) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The ``applyInPandas`` function that trains one signal's quantizer from its sample rows, warm-started
    from ``warm[signal]`` (a serialized fitted quantizer) where given."""
    wire = spec.to_dict()  # what the closure ships to the tasks: plain values only
    starts = dict(warm or {})

    def run(group: pd.DataFrame) -> pd.DataFrame:
        from sidlib.device import set_worker_threads
        from sidlib.spark.arrow_lists import to_matrix

        set_worker_threads()
        start = time.perf_counter()
        group = group.sort_values("item_id", kind="stable")  # row order must not depend on the shuffle
        dim = len(group["embedding"].iloc[0])
        signal = group["signal"].iloc[0]
        quantizer = build_quantizer(QuantizerSpec.from_dict(wire), dim)
        if signal in starts:
            quantizer.warm_start(from_bytes(starts[signal]))
        quantizer.to_preferred_device().fit(to_matrix(group["embedding"]))
        return pd.DataFrame({"signal": [signal], "payload": [to_bytes(quantizer.cpu())],
                             "rows": [len(group)], "seconds": [time.perf_counter() - start]})

    return run


def evaluate_layout_in_task(spec: QuantizerSpec) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The ``applyInPandas`` function of one sweep grid point: fit on the sample's training rows with
    the point's layout (its parameters over ``spec.params``), score on its held-out rows."""
    wire = spec.to_dict()

    def run(group: pd.DataFrame) -> pd.DataFrame:
        import json

        from sidlib.device import set_worker_threads
        from sidlib.metrics import cosine_loss, unique_sid_rate, utilization
        from sidlib.spark.arrow_lists import to_matrix

        set_worker_threads()
        start = time.perf_counter()
        group = group.sort_values("item_id", kind="stable")
        params = json.loads(group["params"].iloc[0])
        train, held_out = to_matrix(group["embedding"][~group["holdout"]]), to_matrix(group["embedding"][group["holdout"]])
        row: dict[str, Any] = {"grid_id": int(group["grid_id"].iloc[0]), "params": json.dumps(params, sort_keys=True),
                               "bits": float("nan"), "cosine_loss": float("nan"), "utilization_min": float("nan"),
                               "utilization_mean": float("nan"), "unique_sid_rate": float("nan"), "error": None}
        try:
            layout = QuantizerSpec.from_dict({**wire, "params": {**wire["params"], **params}})
            quantizer = build_quantizer(layout, dim=train.shape[1])
            quantizer.to_preferred_device().fit(train)
            codes = quantizer.encode(held_out)
            usage = utilization(codes, quantizer.cardinalities)
            row.update(bits=quantizer.bits, cosine_loss=cosine_loss(held_out, quantizer.decode(codes)),
                       utilization_min=float(usage.min()), utilization_mean=float(usage.mean()),
                       unique_sid_rate=unique_sid_rate(codes))
        except SidlibError as exc:  # a layout the sample cannot support is a result, not a job failure
            row["error"] = str(exc)
        row["seconds"] = time.perf_counter() - start
        return pd.DataFrame([row])

    return run


def evaluate_layouts(spark: Any, frame: "DataFrame", grid: list[dict[str, Any]], spec: QuantizerSpec,
                     *, holdout: str, seed: int, sample_rows: int) -> pd.DataFrame:
    """Score every layout of ``grid`` (one Spark task each) on the first ``sample_rows`` rows of ``frame``
    by a hash of item_id: fit on its rows outside ``holdout``, score on those inside. Rows of
    :data:`LAYOUT_SCHEMA`, best (lowest held-out cosine loss) first."""
    import json

    import pyspark.sql.functions as F

    from sidlib.spark.sampling import hash_fraction

    sample = (frame.withColumn("holdout", F.expr(holdout))
              .withColumn("_h", F.expr(hash_fraction("item_id", f"sweep-{seed}")))
              .orderBy("_h", "item_id").limit(sample_rows).drop("_h"))
    points = spark.createDataFrame(pd.DataFrame({
        "grid_id": range(len(grid)), "params": [json.dumps(p, sort_keys=True) for p in grid]}))
    return (sample.crossJoin(points).groupBy("grid_id")
            .applyInPandas(evaluate_layout_in_task(spec), LAYOUT_SCHEMA).toPandas()
            .sort_values(["cosine_loss", "grid_id"]).reset_index(drop=True))


def train_neural_distributed(frame: "DataFrame", spec: QuantizerSpec, warm: Mapping[str, Quantizer] | None = None,
                             ) -> dict[str, tuple[Quantizer, int, float]]:
    """Train one quantizer per signal of ``frame`` (``signal``, ``item_id``, ``embedding``) in parallel,
    warm-started from ``warm[signal]`` where given."""
    payloads = {signal: to_bytes(q) for signal, q in (warm or {}).items()}
    rows = frame.groupBy("signal").applyInPandas(train_in_task(spec, payloads), TRAINED_SCHEMA).collect()
    return {r["signal"]: (from_bytes(r["payload"]), int(r["rows"]), float(r["seconds"])) for r in rows}


def build_quantizer(spec: QuantizerSpec, dim: int) -> Quantizer:
    """``spec.build(dim)`` with a job's checks: parameters the constructors refuse (an unknown name, a
    negative size) and layouts whose packed SID would not fit int64 are a :class:`ConfigError`. Jobs
    build once on the driver before any training, so a bad spec fails there as one line rather than
    inside a Spark task."""
    from sidlib.sid import hash_size

    try:
        quantizer = spec.build(dim)
    except SidlibError:
        raise
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"fit.params {spec.params} / VQ-VAE parameters {spec.vae} do not build a {spec.name} "
                          f"quantizer on dim {dim}: {str(exc).splitlines()[0]}") from None
    hash_size(quantizer.cardinalities)
    return quantizer
