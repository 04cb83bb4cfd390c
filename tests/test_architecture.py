"""The import rules of the layers (docs in ``sidlib/steps/__init__.py`` and the package docstrings),
checked on the source: every ``import`` statement, module level or inside a function."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sidlib"

#: Outside sidlib/spark, only the device lookup asks Spark which GPU its task was given.
PYSPARK_ALLOWED = {"sidlib/spark", "sidlib/device.py"}

#: MLflow is optional: only the tracking module imports it, and only steps/track imports that module.
MLFLOW_ALLOWED = {"sidlib/tracking.py"}
TRACKING_ALLOWED = {"sidlib/steps/track.py"}

#: layer -> sidlib packages it must not import.
FORBIDDEN = {
    "sidlib/quantizers": ("sidlib.metrics", "sidlib.spark", "sidlib.jobs", "sidlib.steps"),
    "sidlib/spark": ("sidlib.jobs", "sidlib.steps"),
    "sidlib/steps": ("sidlib.jobs",),
}


def imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def relative(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


def test_pyspark_is_imported_only_under_sidlib_spark() -> None:
    offenders = [f"{relative(p)}: {name}" for p in modules() for name in imports(p)
                 if name.split(".")[0] == "pyspark" and not any(relative(p).startswith(a) for a in PYSPARK_ALLOWED)]
    assert offenders == []


def test_mlflow_is_imported_only_by_the_tracking_module() -> None:
    offenders = [f"{relative(p)}: {name}" for p in modules() for name in imports(p)
                 if (name.split(".")[0] == "mlflow" and relative(p) not in MLFLOW_ALLOWED)
                 or (name == "sidlib.tracking" and relative(p) not in TRACKING_ALLOWED)]
    assert offenders == []


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_nothing_above_it(layer: str) -> None:
    files = [p for p in modules() if relative(p).startswith(layer)]
    assert files, layer
    offenders = [f"{relative(p)}: {name}" for p in files for name in imports(p)
                 if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[layer])]
    assert offenders == []


#: DataFrame and session methods that build or run a Spark plan. Jobs and steps hand frames to
#: sidlib.spark and may count one they read, nothing more.
SPARK_PLAN_METHODS = {"agg", "applyInPandas", "collect", "createDataFrame", "crossJoin", "distinct", "dropDuplicates",
                      "filter", "groupBy", "mapInArrow", "mapInPandas", "orderBy", "repartition", "select",
                      "selectExpr", "sql", "toPandas", "unionByName", "where", "withColumn"}


def plan_calls(path: Path) -> list[str]:
    return [f"{relative(path)}:{node.lineno}: .{node.func.attr}()" for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in SPARK_PLAN_METHODS]


@pytest.mark.parametrize("layer", ["sidlib/jobs", "sidlib/steps"])
def test_jobs_and_steps_build_no_spark_plans(layer: str) -> None:
    files = [p for p in modules() if relative(p).startswith(layer)]
    assert files, layer
    assert [call for p in files for call in plan_calls(p)] == []


def test_every_job_returns_a_typed_result() -> None:
    """Each job's ``run`` is annotated with a Result subclass: its summary has one schema, and the
    runner (not the job) adds ``job``, ``reads`` and the timings."""
    import importlib
    import typing

    from sidlib.jobs.registry import JOBS
    from sidlib.results import Result

    returns = {job: typing.get_type_hints(importlib.import_module(f"sidlib.jobs.{job}").run)["return"] for job in JOBS}
    assert {job: t for job, t in returns.items() if not (isinstance(t, type) and issubclass(t, Result))} == {}
    reserved = {"job", "reads", "exit_status", "job_seconds", "seconds"}
    assert {job: sorted(reserved & {f.name for f in dataclasses.fields(t)}) for job, t in returns.items()
            if reserved & {f.name for f in dataclasses.fields(t)}} == {}
