"""Notebook support: the same config and job functions as the CLI, inside a notebook.

On Databricks the notebook's ``spark`` session is used (``engine.name=active``); run locally as plain
Python, the configured engine is started and stopped when the process exits. Config comes from the
``SIDLIB_CONF`` file and space-separated ``SIDLIB_OVERRIDES`` (or arguments), so CI and operators can
point a notebook at other tables without editing it."""

from __future__ import annotations

import atexit
import os
import shlex
from contextlib import ExitStack
from typing import Any, Sequence

from sidlib.cli import configure_logging
from sidlib.config import SidlibConfig, load_config

_STACK = ExitStack()
atexit.register(_STACK.close)


def on_databricks() -> bool:
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def open_pipeline(conf: str | None = None, overrides: Sequence[str] | None = None) -> tuple[SidlibConfig, Any]:
    """``(cfg, tables)`` for the notebook: config from arguments or ``SIDLIB_CONF``/``SIDLIB_OVERRIDES``."""
    from sidlib.spark.session import open_session
    from sidlib.spark.tables import Tables

    configure_logging()
    conf = conf or os.environ.get("SIDLIB_CONF", "conf/demo.yaml")
    overrides = list(overrides or shlex.split(os.environ.get("SIDLIB_OVERRIDES", "")))
    if on_databricks():
        overrides.append("engine.name=active")
    cfg = load_config(conf, overrides)
    spark = _STACK.enter_context(open_session(cfg.engine, cfg.tables))
    return cfg, Tables(spark, cfg.tables)
