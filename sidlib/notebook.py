"""Notebook support: the same config and job functions as the CLI, inside a notebook.

On Databricks the notebook's ``spark`` session is used (``engine.name=active``); run locally as plain
Python, the configured engine is started and stopped when the process exits. Config comes from the
notebook's widgets ``conf`` and ``overrides`` when it has ``dbutils`` (a notebook task's job parameters
of those names fill them), else from the ``SIDLIB_CONF`` file and space-separated ``SIDLIB_OVERRIDES``
(or arguments), so a schedule, CI and operators point a notebook at other tables without editing it."""

from __future__ import annotations

import atexit
import os
import shlex
from contextlib import ExitStack
from typing import Any, Sequence

from sidlib.cli import configure_logging
from sidlib.config import SidlibConfig, load_config

#: The widgets (a notebook task's job parameters) that carry the config file and the overrides.
CONF_WIDGET, OVERRIDES_WIDGET = "conf", "overrides"
DEFAULT_CONF = "conf/demo.yaml"

_STACK = ExitStack()
atexit.register(_STACK.close)


def on_databricks() -> bool:
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def notebook_arguments(dbutils: Any | None = None) -> tuple[str, list[str]]:
    """The config file and overrides: the widgets :data:`CONF_WIDGET` and :data:`OVERRIDES_WIDGET` when
    ``dbutils`` is given (created, with the environment's values as defaults, if the job did not pass
    them), else ``SIDLIB_CONF`` (default ``conf/demo.yaml``) and ``SIDLIB_OVERRIDES``."""
    conf = os.environ.get("SIDLIB_CONF", DEFAULT_CONF)
    overrides = os.environ.get("SIDLIB_OVERRIDES", "")
    if dbutils is not None:
        dbutils.widgets.text(CONF_WIDGET, conf, "sidlib config file")
        dbutils.widgets.text(OVERRIDES_WIDGET, overrides, "sidlib overrides: key=value ...")
        conf, overrides = dbutils.widgets.get(CONF_WIDGET), dbutils.widgets.get(OVERRIDES_WIDGET)
    return conf, shlex.split(overrides)


def open_pipeline(conf: str | None = None, overrides: Sequence[str] | None = None, *,
                  dbutils: Any | None = None) -> tuple[SidlibConfig, Any]:
    """``(cfg, tables)`` for the notebook: config from the arguments, else :func:`notebook_arguments`
    (pass the notebook's ``dbutils`` global, ``globals().get("dbutils")``, so its widgets are read)."""
    from sidlib.spark.session import open_session
    from sidlib.spark.tables import Tables

    configure_logging()
    default_conf, default_overrides = notebook_arguments(dbutils)
    conf = conf or default_conf
    overrides = list(default_overrides if overrides is None else overrides)
    if on_databricks():
        overrides.append("engine.name=active")
    cfg = load_config(conf, overrides)
    spark = _STACK.enter_context(open_session(cfg.engine, cfg.tables))
    return cfg, Tables(spark, cfg.tables)
