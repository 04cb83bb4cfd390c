"""The import rules of the layers (docs in ``sidlib/steps/__init__.py`` and the package docstrings),
checked on the source: every ``import`` statement, module level or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sidlib"

#: Outside sidlib/spark, only the device lookup asks Spark which GPU its task was given.
PYSPARK_ALLOWED = {"sidlib/spark", "sidlib/device.py"}

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


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_nothing_above_it(layer: str) -> None:
    files = [p for p in modules() if relative(p).startswith(layer)]
    assert files, layer
    offenders = [f"{relative(p)}: {name}" for p in files for name in imports(p)
                 if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[layer])]
    assert offenders == []
