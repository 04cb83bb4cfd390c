"""A stand-in for the part of Databricks' ``dbutils`` that notebooks use: text widgets whose values
a notebook task's job parameters set (``dbutils`` exists only on Databricks).

    python stand_in_dbutils.py NOTEBOOK name=value ...

runs NOTEBOOK as ``__main__`` with ``dbutils`` in its globals, the widgets set from the arguments."""

from __future__ import annotations

import runpy
import sys


class Widgets:
    def __init__(self, parameters: dict[str, str]):
        self.parameters = dict(parameters)
        self.defined: dict[str, str] = {}

    def text(self, name: str, default_value: str, label: str | None = None) -> None:
        self.defined[name] = default_value

    def get(self, name: str) -> str:
        if name not in self.defined and name not in self.parameters:
            raise ValueError(f"InputWidgetNotDefined: {name}")  # as dbutils raises for an unknown widget
        return self.parameters.get(name, self.defined.get(name, ""))


class StandInDbutils:
    def __init__(self, parameters: dict[str, str]):
        self.widgets = Widgets(parameters)


if __name__ == "__main__":
    notebook, *pairs = sys.argv[1:]
    parameters = dict(pair.split("=", 1) for pair in pairs)
    runpy.run_path(notebook, init_globals={"dbutils": StandInDbutils(parameters)}, run_name="__main__")
