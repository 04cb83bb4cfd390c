"""Reading and writing the pipeline's tables, by path or catalog name, in Delta (default) or Parquet.

What this layer guarantees to the jobs:

* every read returns the frame with the table version it saw (:class:`Snapshot`), is recorded
  (:attr:`Tables.reads`) and can be pinned; its schema is checked against the table's registered one
  (:func:`sidlib.schemas.by_table`), as is every write's;
* partition overwrite is idempotent and atomic on Delta: one ``MERGE ... ON FALSE`` commit that inserts
  the new rows and deletes the partition's old ones (``replaceWhere`` would be the usual tool, but
  pysail 0.7.2 rejects it for tables with array columns written from Python: the Arrow list field is
  named ``element`` in the data and ``item`` in the table's schema); on Parquet path tables every write
  is staged and published by rename (:mod:`sidlib.spark.parquet_commit`);
* upserts are ``MERGE INTO`` on key columns;
* after every write the table's schema is checked against the expected one (Sail silently drops
  evolved columns on append);
* identifiers and literals that reach SQL are validated, never interpolated raw.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple, Sequence

from sidlib import schemas
from sidlib.config import IDENTIFIER, TABLE_NAMES, TablesConfig
from sidlib.errors import ConfigError, TableError, check_writable_dir
from sidlib.spark import parquet_commit

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

def quote_identifier(name: str) -> str:
    """Backtick-quote a column/table/database name after checking it is a plain identifier."""
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        raise ConfigError(f"invalid identifier {name!r}: use letters, digits and underscores only")
    return f"`{name}`"


def sql_literal(value: Any) -> str:
    """A SQL literal for an int, float, bool or str (strings single-quoted with quotes escaped)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise ConfigError(f"cannot use {value!r} as a SQL literal")


def equality_predicate(values: Mapping[str, Any], alias: str | None = None) -> str:
    """``col1 = lit1 AND col2 = lit2`` from validated names and literals."""
    prefix = f"{quote_identifier(alias)}." if alias else ""
    return " AND ".join(f"{prefix}{quote_identifier(k)} = {sql_literal(v)}" for k, v in values.items())


def sid_version_is(version: int) -> str:
    """The predicate that selects one SID version's rows (of ``item_sids``)."""
    return equality_predicate({"sid_version": int(version)})


class Snapshot(NamedTuple):
    """A table read at one version: the frame and that version (``None`` for Parquet)."""

    frame: "DataFrame"
    version: int | None


@dataclass(frozen=True)
class TableRead:
    """One table read by a job: which table, where, and the version pinned for the read."""

    table: str
    location: str
    format: str
    version: int | None


@dataclass
class Tables:
    """The tables of one pipeline, bound to a session and a :class:`TablesConfig`."""

    spark: "SparkSession"
    cfg: TablesConfig
    reads: list[TableRead] = field(default_factory=list)
    _root_checked: bool = field(default=False, init=False, repr=False)

    # ------------------------------------------------------------------ locations
    def location(self, table: str) -> str:
        """Path (``root/<name>``) or quoted catalog identifier (``database.<name>``, or
        ``catalog.database.<name>`` in Unity Catalog) of a logical table. Names are plain identifiers,
        so a path table can never point outside ``tables.root``."""
        if table not in TABLE_NAMES:
            raise ConfigError(f"unknown table {table!r}")
        name = getattr(self.cfg, table)
        if self.cfg.database:
            return ".".join(quote_identifier(part) for part in (self.cfg.catalog, self.cfg.database, name) if part)
        root = Path(self.cfg.root).resolve()
        resolved = (root / name).resolve()
        if resolved.parent != root:
            raise ConfigError(f"table {table!r} at {root / name} resolves to {resolved}, outside tables.root "
                              f"(a symlink?): tables must live directly under tables.root")
        if "`" in str(resolved):
            raise ConfigError(f"table path {str(resolved)!r} must not contain backticks")
        return str(resolved)

    @property
    def by_path(self) -> bool:
        return not self.cfg.database

    def sql_target(self, table: str) -> str:
        """How SQL statements name the table: ``delta.`/path``` or ``db.name``."""
        loc = self.location(table)
        return f"{self.cfg.format}.`{loc}`" if self.by_path else loc

    def catalog_name(self, table: str) -> str:
        """The catalog table's dotted name for the catalog API (``spark.catalog``, ``read.table``).
        Its parts are plain identifiers, so the unquoted name parses back to the same parts."""
        return self.location(table).replace("`", "")

    def exists(self, table: str) -> bool:
        loc = self.location(table)
        if not self.by_path:
            return bool(self.spark.catalog.tableExists(self.catalog_name(table)))
        path = Path(loc)
        if self.cfg.format == "delta":
            return (path / "_delta_log").is_dir()
        return path.is_dir() and any(path.rglob("*.parquet"))

    def version(self, table: str) -> int | None:
        """Current Delta version (via delta-rs for path tables, so no Spark job); ``None`` for Parquet."""
        if self.cfg.format != "delta":
            return None
        self._require(table)
        if self.by_path:
            return _delta_rs_version(self.location(table))
        try:
            row = self.spark.sql(f"DESCRIBE HISTORY {self.location(table)} LIMIT 1").collect()
        except Exception as exc:  # the embedded engine has no DESCRIBE HISTORY: ask the table's files
            if "HISTORY" not in str(exc):
                raise
            return _delta_rs_version(self.storage_location(table))
        return int(row[0]["version"])

    def storage_location(self, table: str) -> str:
        """Where the table's files are: its path, or a catalog table's location as the catalog reports
        it (``DESCRIBE DETAIL`` on Delta Lake; ``SHOW TABLE EXTENDED`` on the embedded engine)."""
        if self.by_path:
            return self.location(table)
        self._require(table)
        try:
            return str(self.spark.sql(f"DESCRIBE DETAIL {self.location(table)}").collect()[0]["location"])
        except Exception as exc:
            if "DETAIL" not in str(exc):
                raise
        *namespace, name = self.location(table).split(".")
        info = self.spark.sql(f"SHOW TABLE EXTENDED IN {'.'.join(namespace)} LIKE {sql_literal(name.strip('`'))}"
                              ).collect()[0]["information"]
        found = re.search(r"^Location: (.+)$", info, flags=re.MULTILINE)
        if found is None:
            raise TableError(f"table {table!r} ({self.location(table)}): the catalog reports no location")
        return found[1].strip()

    # ----------------------------------------------------------------------- read
    def _require(self, table: str) -> None:
        if not self.exists(table):
            raise TableError(f"table {table!r} not found at {self.location(table)}")

    def read(self, table: str, version: int | None = None, *, expected: Mapping[str, str] | None = None) -> Snapshot:
        """Read ``table`` at ``version`` (default: the current one, which is then pinned), recorded,
        its schema checked against ``expected`` (default: the table's registered schema)."""
        self._require(table)
        if version is None:
            version = self.version(table)
        df = self._load(table, version)
        _compare_schema(table, _simple_schema(df), self._schema(table, expected))
        self.reads.append(TableRead(table, self.location(table), self.cfg.format, version))
        log.info("read %s (%s) version %s", table, self.location(table), version)
        return Snapshot(df, version)

    def read_unpinned(self, table: str) -> "DataFrame":
        """The table's latest state whenever the plan runs, not recorded: for control tables (the SID
        pointer) that must be re-read fresh, never for job inputs."""
        return self._load(table, None)

    def _load(self, table: str, version: int | None) -> "DataFrame":
        reader = self.spark.read.format(self.cfg.format)
        if self.cfg.format == "parquet" and table in schemas.by_table():
            reader = reader.schema(schemas.ddl(schemas.by_table()[table]))
        if version is not None:
            reader = reader.option("versionAsOf", int(version))
        loc = self.location(table)
        return reader.load(loc) if self.by_path else reader.table(self.catalog_name(table))

    # ---------------------------------------------------------------------- write
    def write(
        self,
        df: "DataFrame",
        table: str,
        *,
        expected: Mapping[str, str] | None = None,
        mode: str = "overwrite",
        partition_by: Sequence[str] = (),
    ) -> int | None:
        """Write the whole table (``overwrite``) or ``append``; returns the new version. ``expected``:
        the schema the data and the table must have (default: the table's registered one)."""
        self._check_root()
        expected = self._schema(table, expected)
        self._check_frame(df, table, expected)
        if self._parquet_paths:
            return self._write_parquet(df, table, expected, mode=mode, partition_by=partition_by)
        writer = df.write.format(self.cfg.format).mode(mode)
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        if self.cfg.format == "delta":
            writer = writer.option("targetFileSize", str(self.cfg.target_file_mb << 20))
            if mode == "overwrite":
                writer = writer.option("overwriteSchema", "true")
        loc = self.location(table)
        writer.save(loc) if self.by_path else writer.saveAsTable(self.catalog_name(table))
        return self._after_write(table, expected)

    def overwrite_partition(
        self,
        df: "DataFrame",
        table: str,
        partition: Mapping[str, Any],
        *,
        expected: Mapping[str, str] | None = None,
        partition_by: Sequence[str],
    ) -> int | None:
        """Replace exactly the rows where ``partition`` holds (e.g. ``{"sid_version": 3}``) with ``df``,
        atomically; rerunning with the same data leaves the table as it was.

        A partition that holds no rows yet (a new SID version: the usual case) is one append commit, a
        streaming write. Replacing rows that exist is one ``MERGE``, whose join costs memory in
        proportion to the partition. Two writers filling the same new partition at once would both
        append: callers claim a partition first (refresh claims artifact versions). On Parquet path
        tables the partition directory is exchanged with a staged one (:mod:`sidlib.spark.parquet_commit`)."""
        self._check_root()
        expected = self._schema(table, expected)
        if self._parquet_paths:
            return self._replace_parquet_partition(df, table, partition, expected=expected, partition_by=partition_by)
        # append, even to create the table: two runs creating it at once must not overwrite each other
        if not self.exists(table) or not self.read_unpinned(table).where(equality_predicate(partition)).limit(1).collect():
            return self.write(df, table, expected=expected, mode="append", partition_by=partition_by)
        self._check_frame(df, table, expected)
        view = self.temp_view(df)
        self.spark.sql(
            f"MERGE INTO {self.sql_target(table)} AS t USING {view} AS s ON FALSE "
            f"WHEN NOT MATCHED THEN INSERT * "
            f"WHEN NOT MATCHED BY SOURCE AND {equality_predicate(partition, 't')} THEN DELETE"
        ).collect()
        self.spark.catalog.dropTempView(view)
        return self._after_write(table, expected)

    def upsert(self, df: "DataFrame", table: str, keys: Sequence[str], *, expected: Mapping[str, str] | None = None,
               partition_by: Sequence[str] = ()) -> int | None:
        """Insert new rows and update existing ones matched on ``keys`` (``MERGE INTO`` on Delta;
        Parquet has no MERGE, so there it is an append and callers pass only new keys)."""
        self._check_root()
        expected = self._schema(table, expected)
        if self.cfg.format != "delta":
            return self.write(df, table, expected=expected, mode="append", partition_by=partition_by)
        if not self.exists(table):
            return self.write(df, table, expected=expected, partition_by=partition_by)
        self._check_frame(df, table, expected)
        view = self.temp_view(df)
        on = " AND ".join(f"t.{quote_identifier(k)} = s.{quote_identifier(k)}" for k in keys)
        self.spark.sql(
            f"MERGE INTO {self.sql_target(table)} AS t USING {view} AS s ON {on} "
            f"WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
        ).collect()
        self.spark.catalog.dropTempView(view)
        return self._after_write(table, expected)

    # -------------------------------------------------------------- Parquet paths
    @property
    def _parquet_paths(self) -> bool:
        return self.by_path and self.cfg.format == "parquet"

    def _write_parquet(self, df: "DataFrame", table: str, expected: Mapping[str, str], *, mode: str,
                       partition_by: Sequence[str]) -> int | None:
        """Stage, then publish by rename (:mod:`sidlib.spark.parquet_commit`)."""
        target, staged = self._stage_parquet(df, table, partition_by)
        if mode == "overwrite":
            parquet_commit.replace_dir(staged, target)
        elif mode == "append":
            parquet_commit.append_files(staged, target)
        else:
            raise ConfigError(f"write mode must be overwrite or append, got {mode!r}")
        return self._after_write(table, expected)

    def _replace_parquet_partition(self, df: "DataFrame", table: str, partition: Mapping[str, Any], *,
                                   expected: Mapping[str, str], partition_by: Sequence[str]) -> int | None:
        """Write one partition's rows to staging, then exchange it with the partition directory."""
        if list(partition) != list(partition_by) or len(partition) != 1:
            raise TableError(f"{table}: a Parquet table replaces exactly its one partition column "
                             f"{list(partition_by)}, got {dict(partition)}")
        self._check_frame(df, table, expected)
        ((column, value),) = partition.items()
        target, staged = self._stage_parquet(df.drop(column), table, ())
        parquet_commit.replace_dir(staged, parquet_commit.partition_dir(target, column, value))
        return self._after_write(table, expected)

    def _stage_parquet(self, df: "DataFrame", table: str, partition_by: Sequence[str]) -> tuple[Path, Path]:
        """``(table directory, fresh staging directory)`` with ``df`` written to the latter by the engine."""
        target = Path(self.location(table))
        staged = parquet_commit.staging_path(target)
        writer = df.write.format("parquet").mode("error")
        (writer.partitionBy(*partition_by) if partition_by else writer).save(str(staged))
        return target, staged

    def _check_root(self) -> None:
        """Path tables: one clear error before the first write when ``tables.root`` cannot hold tables
        (a file, under a file, read-only), instead of the engine's failure halfway through a job."""
        if self.by_path and not self._root_checked:
            check_writable_dir(Path(self.cfg.root), "tables.root", TableError)
            self._root_checked = True

    # -------------------------------------------------------------------- schemas
    @staticmethod
    def _schema(table: str, expected: Mapping[str, str] | None) -> Mapping[str, str]:
        """``expected``, else the registered schema of ``table``."""
        if expected is not None:
            return expected
        registry = schemas.by_table()
        if table not in registry:
            raise TableError(f"table {table!r} has no registered schema in sidlib.schemas: pass expected=")
        return registry[table]

    def check_schema(self, table: str, expected: Mapping[str, str] | None = None) -> None:
        """Raise :class:`TableError` unless ``table`` has exactly the expected columns and types
        (Spark ``simpleString`` types, e.g. ``array<float>``; default: its registered schema)."""
        _compare_schema(table, _simple_schema(self._load(table, None)), self._schema(table, expected))

    def _check_frame(self, df: "DataFrame", table: str, expected: Mapping[str, str]) -> None:
        _compare_schema(f"data for {table}", _simple_schema(df), expected)

    def _after_write(self, table: str, expected: Mapping[str, str]) -> int | None:
        self.check_schema(table, expected)
        version = self.version(table)
        log.info("wrote %s (%s) version %s", table, self.location(table), version)
        return version

    def temp_view(self, df: "DataFrame") -> str:
        """Register ``df`` under a fresh random name for a SQL statement (callers drop it after)."""
        name = f"sidlib_src_{uuid.uuid4().hex}"
        df.createOrReplaceTempView(name)
        return name


def _simple_schema(df: "DataFrame") -> dict[str, str]:
    return {f.name: f.dataType.simpleString() for f in df.schema.fields}


def _compare_schema(what: str, actual: Mapping[str, str], expected: Mapping[str, str]) -> None:
    missing = [c for c in expected if c not in actual]
    extra = [c for c in actual if c not in expected]
    wrong = [f"{c}: {actual[c]} (expected {t})" for c, t in expected.items() if c in actual and actual[c] != t]
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing columns {missing}")
        if extra:
            parts.append(f"unexpected columns {extra}")
        if wrong:
            parts.append("wrong types " + "; ".join(wrong))
        raise TableError(f"schema of {what} does not match: " + ", ".join(parts))


def _delta_rs_version(location: str) -> int:
    """A Delta table's current version from its log (delta-rs), no Spark job."""
    from deltalake import DeltaTable

    return int(DeltaTable(location).version())
