"""Command-line runner shared by every job: ``python jobs/<job>.py --conf conf/x.yaml key=value ...``
(also under ``spark-submit`` and as console scripts). Expected failures (bad config, missing tables,
bad data, a table's files damaged underneath the engine) print one ``error: ...`` line and exit with
status 2; otherwise the summary goes to stdout as JSON and the status is the result's
``exit_status``: 0, or 3 when a refresh's quality gate kept a pointer (:data:`EXIT_GATED`)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any, Callable, Mapping, Sequence

from sidlib.config import SidlibConfig, load_config
from sidlib.errors import SidlibError
from sidlib.results import Result, plain

JobFn = Callable[[SidlibConfig, Any], Mapping[str, Any]]

EXIT_ERROR = 2
#: A job finished but asks an operator to act (a refit held back by the quality gate).
EXIT_GATED = 3


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("py4j", "pyspark", "sentence_transformers", "httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def timed_summary(job: JobFn, cfg: SidlibConfig, tables: Any) -> dict[str, Any]:
    """``job(cfg, tables)``'s result as plain values, with the status the process should exit with
    (``exit_status``, see :attr:`~sidlib.results.Result.exit_status`) and the job's own time
    (``job_seconds``)."""
    start = time.perf_counter()
    result = job(cfg, tables)
    summary = plain(result)
    summary["exit_status"] = result.exit_status if isinstance(result, Result) else 0
    summary["job_seconds"] = round(time.perf_counter() - start, 2)
    return summary


def run_with_session(job: JobFn, cfg: SidlibConfig, *, name: str | None = None) -> dict[str, Any]:
    """Open the configured engine, run ``job(cfg, tables)`` and return its summary as plain values:
    the job's result (a :class:`~sidlib.results.Result`), with ``job`` (``name``, when given), the
    table versions it read (``reads``), the status to exit with (``exit_status``) and its timings:
    ``job_seconds`` (the job alone) and ``seconds`` (engine start and stop included). Jobs never set
    these keys themselves."""
    from sidlib.spark.session import open_session
    from sidlib.spark.tables import Tables

    start = time.perf_counter()
    with open_session(cfg.engine, cfg.tables) as spark:
        tables = Tables(spark, cfg.tables)
        result = timed_summary(job, cfg, tables)
        summary = {"job": name, **result} if name else result
        summary["reads"] = [vars(r) for r in tables.reads]
    summary["seconds"] = round(time.perf_counter() - start, 2)
    return summary


def main(job: JobFn, argv: Sequence[str] | None = None, *, description: str = "", name: str | None = None) -> int:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--conf", help="YAML config file (default: built-in defaults)")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. tables.root=/tmp/t")
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        cfg = load_config(args.conf, args.overrides)
        summary = run_with_session(job, cfg, name=name)
    except SidlibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:
        from sidlib.spark.session import storage_failure

        message = storage_failure(exc)
        if message is None:
            raise
        logging.getLogger(__name__).debug("engine error", exc_info=True)
        print(f"error: {message}", file=sys.stderr)
        return EXIT_ERROR
    print(json.dumps(summary, indent=2, default=str))
    return int(summary["exit_status"])
