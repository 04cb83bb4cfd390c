"""One way to get a SparkSession for every engine sidlib runs on.

``open_session(cfg)`` is a context manager: it starts what it owns (the embedded Sail server, a classic
local Spark) and stops it on exit, and leaves a platform-provided (``active``) session alone.
Job code only uses the DataFrame/SQL API that Spark Connect and classic Spark share.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from sidlib.config import EngineConfig, TablesConfig
from sidlib.errors import ConfigError, EngineMemoryError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

ARROW_BATCH_KEY = "spark.sql.execution.arrow.maxRecordsPerBatch"
DELTA_EXTENSIONS = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


@contextmanager
def open_session(engine: EngineConfig, tables: TablesConfig | None = None) -> Iterator["SparkSession"]:
    """Yield a session for ``engine.name`` and release it afterwards."""
    if engine.name == "local":
        with _sail_session(engine) as spark:
            yield spark
    elif engine.name == "spark":
        spark = _classic_session(engine, tables)
        try:
            yield spark
        finally:
            spark.stop()
    elif engine.name == "active":
        yield _active_session(engine)
    else:  # config validation makes this unreachable; kept as a guard for programmatic configs
        raise ConfigError(f"engine.name must be local, spark or active, got {engine.name!r}")


def storage_failure(exc: BaseException) -> str | None:
    """A one-line message when ``exc`` is the engine or the Delta library failing on the data
    underneath a job (a missing or truncated data file, an unreadable Delta log, an unwritable path)
    rather than a bug in sidlib; ``None`` otherwise. The operator's fix is then in the tables: the
    entry points print this as an ``error:`` line, and the full error with ``-v``."""
    from deltalake.exceptions import DeltaError
    from pyspark.errors import QueryExecutionException, SparkRuntimeException

    if not isinstance(exc, (DeltaError, QueryExecutionException, SparkRuntimeException)):
        return None
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return f"the engine could not read or write a table ({type(exc).__name__}): {first[:500]}"


@contextmanager
def _sail_session(engine: EngineConfig) -> Iterator["SparkSession"]:
    from pysail.spark import SparkConnectServer
    from pyspark.sql import SparkSession

    with _sail_environment(engine):  # Sail reads some settings only when a session first needs them
        server = SparkConnectServer(ip="127.0.0.1", port=0)
        server.start(background=True)
        _, port = server.listening_address
        log.info("started embedded Sail Spark Connect server on 127.0.0.1:%d", port)
        # create(), not getOrCreate(): another session of this process (a notebook's, a test's) would
        # otherwise be returned, bound to another server, and stopped when this one ends
        spark = SparkSession.builder.remote(f"sc://127.0.0.1:{port}").create()
        try:
            _apply_runtime_conf(spark, engine)
            yield spark
        except Exception as exc:
            if engine.memory_pool_mb is not None and "memory pool" in str(exc):
                raise EngineMemoryError(
                    f"a step needs more memory than engine.memory_pool_mb={engine.memory_pool_mb} and cannot "
                    f"spill to disk (a join's build side); raise the budget or set it to null (unbounded). "
                    f"Engine: {str(exc).splitlines()[0][:300]}") from exc
            raise
        finally:
            try:
                spark.stop()
            finally:
                server.stop()
                log.info("stopped embedded Sail server")


@contextmanager
def _sail_environment(engine: EngineConfig) -> Iterator[None]:
    """Sail reads its own settings from ``SAIL_*`` environment variables: set them while this server
    runs (the memory pool of ``engine.memory_pool_mb``) and put back what was there."""
    settings = {} if engine.memory_pool_mb is None else {
        "SAIL_RUNTIME__MEMORY_POOL__TYPE": "fair",
        "SAIL_RUNTIME__MEMORY_POOL__FAIR__MAX_SIZE": str(engine.memory_pool_mb << 20)}
    before = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _classic_session(engine: EngineConfig, tables: TablesConfig | None) -> "SparkSession":
    # Workers must run the same interpreter (and so the same venv) as the driver.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if os.environ.get("SPARK_CONNECT_MODE_ENABLED"):
        raise ConfigError(
            "engine 'spark' cannot start in a process that already opened a Spark Connect session "
            "(engine 'local'); run it in its own process"
        )
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(engine.master).appName(engine.app_name)
    for key, value in {**required_conf(engine), **engine.spark_conf}.items():
        builder = builder.config(key, value)
    if tables is not None and tables.format == "delta":
        builder = _with_delta(builder, engine)
    return builder.getOrCreate()


def _with_delta(builder, engine: EngineConfig):  # type: ignore[no-untyped-def]
    """Delta on classic Spark needs the delta-spark jars on the classpath: from ``spark.jars`` /
    ``spark.jars.packages`` in ``engine.spark_conf``, or fetched from Maven when allowed."""
    for key, value in DELTA_EXTENSIONS.items():
        builder = builder.config(key, value)
    if engine.delta_jars_from_maven:
        from delta import configure_spark_with_delta_pip

        return configure_spark_with_delta_pip(builder)
    jars = engine.spark_conf.get("spark.jars", "") + engine.spark_conf.get("spark.jars.packages", "")
    if "delta" not in jars:
        raise ConfigError(
            "tables.format is delta but engine 'spark' has no Delta jars: set "
            "engine.spark_conf.spark.jars to the delta-spark jars, engine.delta_jars_from_maven=true, "
            "or tables.format=parquet"
        )
    return builder


def _active_session(engine: EngineConfig) -> "SparkSession":
    """The platform's session: Databricks' (or any already active one), else the one ``spark-submit``
    configured (``getOrCreate`` reads its ``--master`` and ``--conf``; nothing here overrides them)."""
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession() or SparkSession.builder.appName(engine.app_name).getOrCreate()
    _apply_runtime_conf(spark, engine)
    return spark


#: Session settings every job relies on, whatever the platform's defaults (plain ``spark-submit`` has Arrow
#: off, and then ``createDataFrame`` from pandas rejects numpy values inside array columns).
REQUIRED_CONF = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # fail loudly instead of silently falling back to the row-by-row path that rejects numpy values
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
}


def required_conf(engine: EngineConfig) -> dict[str, str]:
    """What a job sets at session start: Arrow conversion, the UDF batch size, then ``engine.spark_conf``
    (launch-time properties such as ``spark.executor.*`` cannot change in a running session)."""
    wanted = {**REQUIRED_CONF, ARROW_BATCH_KEY: str(engine.arrow_batch_rows)}
    wanted.update({k: v for k, v in engine.spark_conf.items()
                   if not k.startswith(("spark.jars", "spark.driver", "spark.executor", "spark.master"))})
    return wanted


def _apply_runtime_conf(spark: "SparkSession", engine: EngineConfig) -> None:
    """Set :func:`required_conf` on the session. A platform that forbids changing one of them is fine when
    it already holds the value; otherwise the job stops here, naming the setting."""
    for key, value in required_conf(engine).items():
        try:
            spark.conf.set(key, value)
        except Exception as exc:  # the platform refused; each engine raises its own type
            current = _conf_value(spark, key)
            if current is None or current.lower() != value.lower():
                raise ConfigError(f"this session does not allow setting {key}={value} (it holds {current!r}): "
                                  f"set it when the cluster or job is created, e.g. spark-submit --conf "
                                  f"{key}={value}. Engine: {str(exc).splitlines()[0][:200]}") from exc
            log.info("session keeps %s=%s (not settable here)", key, current)


def _conf_value(spark: "SparkSession", key: str) -> str | None:
    try:
        return spark.conf.get(key)
    except Exception:  # an unset key without default raises on some engines
        return None


def is_connect(spark: "SparkSession") -> bool:
    """True for Spark Connect sessions (Sail, Databricks serverless), where RDD/_jdf are unavailable."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def release_freed_memory() -> None:
    """Give memory freed by the engine back to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    The embedded engine runs in this process, and glibc keeps what its threads freed in per-thread
    arenas, so a job made of several queries would keep the peak of all of them. Called between the
    queries of a job whose peak must not grow with the number of queries (build_sequences' passes)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None or not sys.platform.startswith("linux"):
        return
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
    if trim is not None:
        trim(0)
