"""Typed configuration: YAML files in ``conf/`` plus ``key=value`` overrides, validated into dataclasses.

Every job reads one :class:`SidlibConfig`. Validation happens here, before Spark starts, so an unknown
key, a wrong type or a missing file is a one-line :class:`~sidlib.errors.ConfigError` (with a
"did you mean" hint), never a stack trace from inside Spark.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import yaml

from sidlib.errors import ConfigError
from sidlib.schemas import SPLITS
from sidlib.variants import parse_variants

#: A packed SID is one int64 (``sidlib.sid.pack``): budgets beyond it cannot be encoded.
MAX_BITS = 63
#: Longest user history ``build_sequences`` materializes or the compact layout's reader assembles: a
#: batch holds this many events per impression, so its size grows with it.
MAX_HISTORY_LENGTH = 100_000
#: ``fit.device``: ``auto`` (CUDA when a task sees a GPU), ``cpu``, ``cuda`` or ``cuda:<index>``, ``mps``.
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")
#: What a catalog, database or table name may be: it reaches SQL (quoted) and, for path tables, a path.
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_at_least(section: str, obj: Any, bounds: Mapping[str, int | float]) -> None:
    """Raise :class:`ConfigError` naming ``section.field`` for the first field below its lower bound
    (``None`` values are skipped: they mean "not set")."""
    for name, low in bounds.items():
        value = getattr(obj, name)
        if value is not None and value < low:
            raise ConfigError(f"{section}.{name} must be at least {low}, got {value}")


def check_identifier(key: str, name: Any) -> None:
    """Raise :class:`ConfigError` naming ``key`` unless ``name`` is a plain identifier (:data:`IDENTIFIER`)."""
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        raise ConfigError(f"{key} must be a plain identifier (letters, digits and underscores), got {name!r}")


def check_bits(section: str, bits: float) -> None:
    """A bit budget must be a positive, finite number of at most :data:`MAX_BITS`."""
    if not (math.isfinite(bits) and 0 < bits <= MAX_BITS):
        raise ConfigError(f"{section}.bits must be in (0, {MAX_BITS}] (a packed SID is one int64), got {bits}")


@dataclass
class EngineConfig:
    """Which Spark to run on. ``local``: embedded Sail (Spark Connect in-process, no JVM);
    ``spark``: classic Spark (``master``), Delta via delta-spark jars; ``active``: the session the
    platform (Databricks, spark-submit) already created."""

    name: Literal["local", "spark", "active"] = "local"
    master: str = "local[2]"
    app_name: str = "sidlib"
    #: Extra Spark properties (e.g. ``spark.jars`` with delta-spark jars on an air-gapped cluster).
    spark_conf: dict[str, str] = field(default_factory=dict)
    #: Fetch Delta jars from Maven at session start (classic Spark only; needs internet).
    delta_jars_from_maven: bool = False
    #: Rows per Arrow batch handed to pandas UDFs (``spark.sql.execution.arrow.maxRecordsPerBatch``).
    arrow_batch_rows: int = 8192
    #: Memory budget of the embedded engine's operators (engine ``local`` only; Sail's fair memory pool).
    #: Aggregations and sorts spill to disk beyond it instead of holding everything in memory; the full
    #: encode stays flat without one. Operators that cannot spill (a hash join's build side) fail
    #: beyond it, with an ``EngineMemoryError`` naming this setting. ``None``: Sail's default, unbounded.
    memory_pool_mb: int | None = None

    def __post_init__(self) -> None:
        check_at_least("engine", self, {"memory_pool_mb": 1, "arrow_batch_rows": 1})


@dataclass
class TablesConfig:
    """Where tables live. Path tables are ``root/<name>``; with ``database`` set, tables are
    catalog tables ``database.<name>`` instead (Hive metastore), and with ``catalog`` set too,
    ``catalog.database.<name>`` (Unity Catalog: ``catalog`` = the UC catalog, ``database`` = its schema)."""

    root: str = "data/tables"
    format: Literal["delta", "parquet"] = "delta"
    catalog: str | None = None
    database: str | None = None
    events: str = "events"
    content_embeddings: str = "content_embeddings"
    items: str = "items"
    item_sids: str = "item_sids"
    sid_pointer: str = "sid_pointer"
    sequences: str = "sequences"
    ranker_training: str = "ranker_training"
    user_histories: str = "user_histories"
    impressions: str = "impressions"
    ranker_impressions: str = "ranker_impressions"
    rejected_rows: str = "rejected_rows"
    sid_items: str = "sid_items"
    #: Target size of the Delta files the embedded engine writes (Sail's ``targetFileSize`` write option;
    #: classic Spark and Databricks size files themselves). Sail's Delta writer holds an open file in
    #: memory until it reaches this size, so the target bounds write memory per task. Measured writing
    #: 10^7 SID rows on 2 cores: +546 MB at Sail's 100 MB default, +207 MB at 16 MB (+149 MB for 10^6).
    target_file_mb: int = 16

    def __post_init__(self) -> None:
        check_at_least("tables", self, {"target_file_mb": 1})
        for key in ("catalog", "database"):
            if getattr(self, key) is not None:
                check_identifier(f"tables.{key}", getattr(self, key))
        for table in TABLE_NAMES:
            check_identifier(f"tables.{table}", getattr(self, table))
        if self.catalog and not self.database:
            raise ConfigError("tables.catalog needs tables.database (the schema inside the catalog): "
                              "catalog tables are named catalog.database.table")
        if self.database and self.format != "delta":
            raise ConfigError("catalog tables (tables.database) must be Delta: Parquet catalog tables have no "
                              "atomic partition replace or pointer swap; use tables.format=delta or path tables")


#: The logical tables of :class:`TablesConfig`, each configurable by name.
TABLE_NAMES = tuple(f.name for f in dataclasses.fields(TablesConfig)
                    if f.type == "str" and f.name not in ("root",))


@dataclass
class IngestConfig:
    """The demo-data job: MovieLens-1M events plus MiniLM embeddings of two text views per item."""

    cache_dir: str = "data/cache"
    #: Keep only the first N items (sorted by id) and their events; ``null`` keeps all 3,883.
    max_items: int | None = None
    embed_batch_size: int = 64
    #: Recorded in ``content_embeddings.model_version`` for the text signals; bump it to force a re-fit.
    text_model_version: str = "all-MiniLM-L6-v2"
    #: Timestamp written to ``logged_at`` (ISO 8601); ``null`` uses the time of the run.
    logged_at: str | None = None

    def __post_init__(self) -> None:
        check_at_least("ingest", self, {"max_items": 1, "embed_batch_size": 1})
        if self.logged_at is not None:
            try:
                datetime.fromisoformat(self.logged_at)
            except ValueError:
                raise ConfigError(f"ingest.logged_at is not an ISO timestamp: {self.logged_at!r}") from None


@dataclass
class ArtifactsConfig:
    """Where versioned quantizer bundles are stored (a local path or a mounted volume)."""

    root: str = "data/artifacts"


@dataclass
class FitConfig:
    """``fit_quantizer``: which signals to quantize, with which quantizer and bit budget.

    EM quantizers (kmeans, rq_kmeans, rq_gmm) fit distributed over the whole table (or
    ``em_sample_fraction`` of it); neural ones train on ``sample_rows`` rows per signal in one Spark
    task each, signals in parallel."""

    signals: list[str] = field(default_factory=lambda: ["text"])
    quantizer: str = "rq_kmeans"
    bits: float = 24
    #: Constructor parameters of the quantizer (e.g. ``{beam_size: 5}``); see sidlib.quantizers.
    params: dict[str, Any] = field(default_factory=dict)
    #: Run inside the shared VQ-VAE (``null`` = the quantizer's default) with these VQ-VAE parameters.
    vae: bool | None = None
    vae_params: dict[str, Any] = field(default_factory=dict)
    #: Upstream embedding model version to train each signal on (``{text: all-MiniLM-L6-v2}``); a
    #: signal not named trains on the newest model logged for it.
    model_versions: dict[str, str] = field(default_factory=dict)
    #: For ``quantizer: fusion``: how each signal is reconstructed (``embedding``, the default: cosine
    #: loss; ``multilabel``: BCE; ``categorical``: cross-entropy) and its loss weight (default 1).
    signal_kinds: dict[str, str] = field(default_factory=dict)
    signal_weights: dict[str, float] = field(default_factory=dict)
    sample_rows: int = 200_000
    em_sample_fraction: float | None = None
    #: Items held out (by a hash of item_id) for the artifact's reconstruction metrics.
    holdout_fraction: float = 0.2
    #: Partitions the EM statistics are computed over (each sends one set of statistics to the driver).
    stat_partitions: int = 8
    #: EM training sets up to this size (rows x dim x 4 bytes) are collected to the driver once and fit
    #: there, instead of one cluster job per EM iteration; 0 always fits distributed. The driver then
    #: holds about twice this (the Arrow copy and the matrix). 512 MB: ~350k rows of 384 floats.
    driver_fit_max_mb: int = 512
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        check_bits("fit", self.bits)
        check_at_least("fit", self, {"sample_rows": 1, "stat_partitions": 1, "driver_fit_max_mb": 0, "seed": 0})
        if not 0 <= self.holdout_fraction < 1:
            raise ConfigError(f"fit.holdout_fraction must be in [0, 1), got {self.holdout_fraction}")
        if self.em_sample_fraction is not None and not 0 < self.em_sample_fraction <= 1:
            raise ConfigError(f"fit.em_sample_fraction must be in (0, 1] or null, got {self.em_sample_fraction}")
        if not DEVICE_PATTERN.fullmatch(self.device.lower()):
            raise ConfigError(f"fit.device must be auto, cpu, cuda, cuda:<index> or mps, got {self.device!r}")
        if not self.signals:
            raise ConfigError("fit.signals is empty: name at least one signal of content_embeddings")


@dataclass
class EncodeConfig:
    """``encode_items``: write the SIDs of one signal for one artifact version into ``item_sids``."""

    signal: str = "text"
    #: Artifact version to encode with; ``null`` = the signal's current version, else its newest.
    sid_version: int | None = None
    #: ``full`` rewrites the version's partition; ``incremental`` encodes only items without a SID.
    mode: Literal["full", "incremental"] = "full"
    #: How long to wait for another run writing the same version to finish (runs take turns).
    lock_wait_s: float = 3600
    #: Also write ``sid_items``: one more code position (``dedup``) that makes each item's ID unique
    #: within the version, stable across incremental runs (:mod:`sidlib.spark.sid_items`).
    unique: bool = False
    #: Most items one SID may hold under ``unique`` (the extra position's cardinality); a SID with
    #: more is an error naming it.
    unique_cap: int = 256

    def __post_init__(self) -> None:
        check_at_least("encode", self, {"lock_wait_s": 0, "unique_cap": 1})

    @property
    def cap_if_unique(self) -> int | None:
        """``unique_cap`` when ``unique`` is on, else ``None`` (what the encode step takes)."""
        return self.unique_cap if self.unique else None


@dataclass
class RefreshConfig:
    """``refresh``: when a new upstream ``model_version`` may replace the current SID version."""

    #: Share of the items the current version covers that must have an embedding from the new model
    #: before a refit on it may switch the pointer. Below it (a rollout still under way) refresh keeps
    #: the current version, encodes new items with it, and reports the coverage.
    min_rollout_coverage: float = 1.0
    #: Refit even though the upstream model is unchanged (e.g. after many new items). The refit then
    #: also has to pass the churn check of the quality gate.
    refit: bool = False
    #: Refit an unchanged model by itself once the items new since the current version's fit are at
    #: least this share of the items it has encoded (counted at the start of a run, so the items of
    #: that run's incremental encode count from the next run on). ``null``: only ``refit`` triggers.
    refit_new_items: float | None = None
    #: On such a refit, start from the current version's quantizer (its codebooks, or a neural model's
    #: weights) instead of a fresh initialisation, so most items keep their SIDs.
    warm_start: bool = True
    #: After a warm start, an item keeps its codes of the current version unless the new version's
    #: codes reconstruct it better by more than this (relative cosine loss; :mod:`sidlib.stability`).
    stability_margin: float = 0.05
    #: On a refit for a new upstream model (whose parameters cannot carry over), relabel the new
    #: version's codes to agree with the current version's on the items both encode, without changing
    #: what they mean (:mod:`sidlib.alignment`); recorded as ``alignment`` in the manifest.
    align: bool = True
    #: The quality gate (:mod:`sidlib.steps.quality_gate`): a refit switches the pointer only if its
    #: held-out cosine loss is at most ``1 + max_loss_regression`` times the current version's, its
    #: ``utilization_min`` and ``unique_sid_rate`` at most ``max_rate_drop`` below the current ones,
    #: and, on an unchanged upstream model, at most ``max_churn`` of the items changed their SID.
    #: Otherwise the pointer stays, the signal reports ``gated`` and the job exits with status 3.
    #: (Measured: a warm rq_kmeans refit with 10% new items still changes about half the SIDs, so with
    #: the default quantizer a same-model refit is usually held at 5%; see benchmarks/RESULTS.md.)
    max_loss_regression: float = 0.02
    max_rate_drop: float = 0.01
    max_churn: float = 0.05
    #: Switch even when the gate fails (the failing checks are still reported).
    force_switch: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.min_rollout_coverage <= 1:
            raise ConfigError(f"refresh.min_rollout_coverage must be in (0, 1], got {self.min_rollout_coverage}")
        if self.refit_new_items is not None and not 0 < self.refit_new_items <= 1:
            raise ConfigError(f"refresh.refit_new_items must be in (0, 1] or null, got {self.refit_new_items}")
        for name in ("max_loss_regression", "max_rate_drop", "max_churn", "stability_margin"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"refresh.{name} must be in [0, 1], got {getattr(self, name)}")


@dataclass
class RollbackConfig:
    """``rollback``: point ``signal`` back at ``sid_version`` (default: the version it replaced) and
    hold it there, so scheduled refreshes neither refit nor switch it; ``release: true`` lifts the hold."""

    #: Required: a rollback must name the signal it moves (no default that could move the wrong one).
    signal: str | None = None
    sid_version: int | None = None
    release: bool = False

    def __post_init__(self) -> None:
        if self.release and self.sid_version is not None:
            raise ConfigError("rollback.release lifts the hold where the pointer is; it takes no rollback.sid_version")

    def required_signal(self) -> str:
        """``signal``, which only the rollback job needs (so it is checked when that job asks for it)."""
        if self.signal is None:
            raise ConfigError("rollback.signal is required: name the signal to roll back (e.g. rollback.signal=text)")
        return self.signal


@dataclass
class SweepConfig:
    """``sweep``: fit every layout of ``quantizer`` that spends ``bits`` on a sample of one signal,
    one Spark task per layout, and write the best (lowest held-out cosine loss) as a config file
    the fit job runs with. Training settings (seed, device, VQ-VAE, hold-out) come from ``fit``."""

    signal: str = "text"
    quantizer: str = "dpca"
    bits: float = 24
    #: Explicit layouts (constructor parameters); empty = every layout of the budget (sidlib.sweep).
    grid: list[dict[str, Any]] = field(default_factory=list)
    max_points: int = 16
    sample_rows: int = 20_000
    output: str = "conf/generated/best_layout.yaml"

    def __post_init__(self) -> None:
        check_bits("sweep", self.bits)
        check_at_least("sweep", self, {"max_points": 1, "sample_rows": 1})


@dataclass
class DataQualityConfig:
    """What to do with unusable ``content_embeddings`` rows (null id or vector, wrong dimension,
    NaN/inf, out-of-range values, all-zero vectors, duplicates): ``quarantine`` writes them to
    ``rejected_rows`` with a reason and goes on, ``fail`` stops the job. Either way the summary counts them."""

    on_bad_rows: Literal["quarantine", "fail"] = "quarantine"
    #: Largest absolute value an embedding may hold. Beyond it a row is rejected (``value out of
    #: range``): sums of squares of such values overflow float32 and poison a fit with inf/NaN.
    max_abs_value: float = 1e6

    def __post_init__(self) -> None:
        if not 0 < self.max_abs_value < 1e18:
            raise ConfigError(f"data_quality.max_abs_value must be in (0, 1e18), got {self.max_abs_value}")


@dataclass
class SequencesConfig:
    """``build_sequences``: for every event (impression), the user's last ``history_length`` events
    strictly before it, with the SIDs of one ``signal`` at one ``sid_version`` (``null`` = the signal's
    current version in ``sid_pointer``, else the newest in ``item_sids``).

    ``layout``: ``compact`` stores each user's events once (``user_histories``) and per impression a
    pointer into them (``impressions``); the reader assembles histories of any length, by default
    ``history_length``, so the build costs O(events) whatever the length. ``materialized`` stores
    every impression's history in its row (``sequences``): for short histories and readers that
    cannot assemble. Users with more than ``max_events_per_task`` events are split into time-ordered
    chunks: each materialized task holds at most that many plus 2 x history_length events of one user,
    and each compact ``user_histories`` row at most that many."""

    history_length: int = 50
    signal: str = "text"
    sid_version: int | None = None
    layout: Literal["compact", "materialized"] = "compact"
    max_events_per_task: int = 20_000
    #: Materialized: target impressions per written file (its row group is what Petastorm reads at
    #: once; a row is ~2 KB decoded at history_length 50).
    rows_per_file: int = 50_000
    #: Compact: users are hashed into buckets of about this many events; a reader holds one bucket's
    #: histories at a time (32 bytes per event).
    events_per_bucket: int = 250_000
    #: Compact, embedded engine: the tables are written in passes over groups of buckets of about this
    #: many events, so the engine (whose sorts and aggregations hold their input) holds one pass at a
    #: time; each pass reads the events again. ``null``: one pass. Classic Spark always makes one pass
    #: (it spills by itself).
    events_per_pass: int | None = 1_000_000

    def __post_init__(self) -> None:
        check_at_least("sequences", self, {"history_length": 1, "max_events_per_task": 1, "rows_per_file": 1,
                                           "events_per_bucket": 1, "events_per_pass": 1})
        if self.history_length > MAX_HISTORY_LENGTH:
            raise ConfigError(f"sequences.history_length must be at most {MAX_HISTORY_LENGTH}, got "
                              f"{self.history_length}")

    @property
    def training_table(self) -> str:
        """The logical table ``export_training_data`` writes (and the ranker reads) in this layout."""
        return "ranker_impressions" if self.layout == "compact" else "ranker_training"


@dataclass
class ExportConfig:
    """``export_training_data``: ``ranker_training`` with a time-based ``split`` column. Impressions
    before the (1 - valid - test) quantile of ``ts`` are ``train``, before the (1 - test) quantile
    ``valid``, the rest ``test``. Quantiles are exact (``percentile``) unless ``approximate_quantiles``
    (``percentile_approx``, relative error ~1e-4; for tables with very many distinct timestamps)."""

    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    approximate_quantiles: bool = False
    #: Repartition to about this many rows per written task before writing (engines merge small input
    #: files into few read partitions, which would give huge row groups); ``null`` keeps the layout.
    rows_per_file: int | None = 50_000
    #: The item-cold protocol: hold this share of items (picked by a hash of item_id and
    #: ``cold_item_seed``) out of ranker training entirely. Their impressions leave ``train`` and
    #: ``valid`` and stay in ``test``, where every one of them is cold. 0: off.
    cold_item_fraction: float = 0.0
    cold_item_seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.cold_item_fraction) < 1.0:
            raise ConfigError(f"export.cold_item_fraction must be in [0, 1), got {self.cold_item_fraction}")
        v, t = float(self.valid_fraction), float(self.test_fraction)
        if not (0.0 <= v < 1.0 and 0.0 <= t < 1.0 and v + t < 1.0):
            raise ConfigError(f"export.valid_fraction ({v}) and export.test_fraction ({t}) must be in [0, 1) "
                              f"and leave a non-empty train fraction")
        if self.rows_per_file is not None and self.rows_per_file < 1:
            raise ConfigError(f"export.rows_per_file must be >= 1 or null, got {self.rows_per_file}")

    def quantile_levels(self) -> tuple[float | None, float | None]:
        """The ts quantiles that start ``valid`` and ``test`` (``None``: that split is empty)."""
        v, t = float(self.valid_fraction), float(self.test_fraction)
        return (None if v == 0 else 1.0 - v - t), (None if t == 0 else 1.0 - t)


@dataclass
class EvaluateConfig:
    """``evaluate_ranker``: train the ranker once per ``variants`` entry and seed on ``ranker_training``
    and compare normalised entropy with the ``id`` baseline on all, warm and cold test impressions.

    A variant is ``id`` (item-id embeddings only), ``sid:<n>`` (plus prefix n-gram embeddings of the
    first n SID positions), ``side`` (plus the SID's codes projected by a learned matrix, no table) or
    ``raw`` (plus the raw content embedding; the expensive upper bound). Rows are capped by
    ``max_rows`` per split to bound CPU time."""

    variants: list[str] = field(default_factory=lambda: ["id", "sid:3", "sid:4", "side", "raw"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    #: Cap on rows per split (a split not listed: all rows): train keeps its latest rows, valid/test
    #: their earliest, so the kept rows stay adjacent in time.
    max_rows: dict[str, int] = field(default_factory=lambda: {"train": 150_000, "valid": 10_000})
    epochs: int = 2
    batch_size: int = 1024
    learning_rate: float = 0.003
    #: Early stopping: validate every ``eval_every`` steps, stop after ``patience`` checks without gain.
    eval_every: int = 50
    patience: int = 2
    #: Stop an epoch after this many steps (``null`` = no cap); tests use a handful.
    max_steps: int | None = None
    embedding_dim: int = 16
    heads: int = 2
    hidden: int = 64
    #: Embedding rows of the hashed user-id and item-id tables.
    user_buckets: int = 16_384
    item_buckets: int = 8_192
    #: Cap on rows of one SID n-gram table: ids beyond it are hashed (modulo) into it.
    max_table_rows: int = 65_536
    recall_k: list[int] = field(default_factory=lambda: [20, 50, 100])
    recall_queries: int = 1000
    #: Query movies of the qualitative neighbour table (exact title, else the first title containing
    #: it, case-insensitive); missing ones are skipped.
    query_titles: list[str] = field(default_factory=list)
    neighbours: int = 5
    confidence: float = 0.95
    report_dir: str = "data/reports/evaluation"
    #: torch intra-op threads while the job trains (restored afterwards; ``null`` = torch's default).
    #: These models are small: on 2 shared cores, 2 threads ran ~20x slower per step than 1.
    threads: int | None = 1

    def __post_init__(self) -> None:
        try:
            parse_variants(self.variants)
        except ConfigError as exc:
            raise ConfigError(f"evaluate.variants: {exc}") from None
        if not self.seeds:
            raise ConfigError("evaluate.seeds is empty")
        check_at_least("evaluate", self, {
            **dict.fromkeys(("epochs", "batch_size", "eval_every", "embedding_dim", "heads", "hidden", "user_buckets",
                             "item_buckets", "max_table_rows", "recall_queries", "neighbours", "max_steps",
                             "threads"), 1),
            "patience": 0})
        if not self.learning_rate > 0:
            raise ConfigError(f"evaluate.learning_rate must be > 0, got {self.learning_rate}")
        if not 0 < self.confidence < 1:
            raise ConfigError(f"evaluate.confidence must be in (0, 1), got {self.confidence}")
        if any(k < 1 for k in self.recall_k):
            raise ConfigError(f"evaluate.recall_k must hold values >= 1, got {self.recall_k}")
        unknown = sorted(set(self.max_rows) - set(SPLITS))
        if unknown or any(v < 1 for v in self.max_rows.values()):
            raise ConfigError(f"evaluate.max_rows maps splits ({', '.join(SPLITS)}) to row caps >= 1, "
                              f"got {self.max_rows}")


@dataclass
class MlflowConfig:
    """Optional MLflow tracking (``pip install sidlib[mlflow]``; nothing of MLflow is imported while
    ``enabled`` is false). Every fitted artifact gets a run (params, held-out metrics, the manifest and
    the bundle) and a registered model version per signal, a ``pyfunc`` that encodes embeddings;
    ``refresh`` and ``rollback`` move ``alias`` to the version the pointer moves to (``sid_pointer``
    stays the source of truth: a failed alias update is reported, never undoes a switch)."""

    enabled: bool = False
    #: ``None``: MLflow's own default (``MLFLOW_TRACKING_URI``; ``databricks`` on Databricks).
    tracking_uri: str | None = None
    #: ``None``: MLflow's default for the tracking URI; ``databricks-uc`` for Unity Catalog models.
    registry_uri: str | None = None
    experiment: str = "sidlib"
    #: The registered model of a signal; ``{signal}``, ``{catalog}`` and ``{database}`` are filled in
    #: (Unity Catalog: ``"{catalog}.{database}.sidlib_{signal}"``).
    model_name: str = "sidlib_{signal}"
    alias: str = "champion"

    def __post_init__(self) -> None:
        try:
            self.model_name.format(signal="s", catalog="c", database="d")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"mlflow.model_name may use {{signal}}, {{catalog}} and {{database}} only, "
                              f"got {self.model_name!r} ({exc})") from None
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", self.alias):
            raise ConfigError(f"mlflow.alias must be letters, digits, - and _, got {self.alias!r}")


@dataclass
class SidlibConfig:
    """The whole pipeline's configuration; each job reads the sections it needs."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    tables: TablesConfig = field(default_factory=TablesConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    artifacts: ArtifactsConfig = field(default_factory=ArtifactsConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    refresh: RefreshConfig = field(default_factory=RefreshConfig)
    rollback: RollbackConfig = field(default_factory=RollbackConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    data_quality: DataQualityConfig = field(default_factory=DataQualityConfig)
    sequences: SequencesConfig = field(default_factory=SequencesConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)


# ----------------------------------------------------------------------------------- loading
def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> SidlibConfig:
    """Read ``path`` (YAML; ``None`` = all defaults), apply ``key.sub=value`` overrides (values
    parsed as YAML scalars), and validate into :class:`SidlibConfig`."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {path} must hold a mapping at top level")
    for item in overrides:
        _apply_override(raw, item)
    return from_dict(SidlibConfig, raw)


def _apply_override(raw: dict[str, Any], item: str) -> None:
    """Set one dotted key. Dots split sections only down to a mapping-typed field such as
    ``engine.spark_conf``: below it the rest is one key (``engine.spark_conf.spark.jars=...``)."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} must look like section.key=value")
    parts = key.strip().split(".")
    node, tp = raw, SidlibConfig
    while len(parts) > 1 and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        tp = hints.get(parts[0], Any)
        node = node.setdefault(parts.pop(0), {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {key!r} is not inside a section")
    leaf = ".".join(parts)
    try:
        node[leaf] = yaml.safe_load(value)
    except yaml.YAMLError:
        node[leaf] = value


def from_dict(cls: type, data: Any, where: str = "") -> Any:
    """Validate ``data`` into dataclass ``cls``; errors name the dotted key that is wrong."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{where}.{key}" if where else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (valid: {', '.join(names)})"
            raise ConfigError(f"unknown config key {dotted!r}{hint}")
        kwargs[key] = _coerce(hints[key], value, dotted)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (list, tuple, Sequence):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return [_coerce(args[0] if args else Any, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return {str(k): _coerce(args[1] if args else Any, v, f"{where}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{where}: unsupported config type {tp!r}")


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-dict form (recorded with artifacts and job summaries)."""
    return dataclasses.asdict(cfg)
