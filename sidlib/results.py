"""Typed results of the steps and jobs.

Each is a frozen dataclass: callers use its attributes, and its summary (what a job prints as JSON) is
its fields, so the two cannot drift apart. It also reads as a mapping of those fields (``result["x"]``),
the shape of the printed summary. A field declared with ``field(metadata=INTERNAL)`` is for callers
only (e.g. the :class:`~sidlib.artifacts.Artifact` a fit produced) and stays out of the summary."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Iterator

#: ``field(metadata=INTERNAL)``: an attribute for callers, not part of the summary.
INTERNAL = {"summary": False}


def _summary_fields(result: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(result) if f.metadata.get("summary", True)]


class Result(Mapping[str, Any]):
    """Base of every step and job result (subclasses are ``@dataclass(frozen=True)``)."""

    def __getitem__(self, key: str) -> Any:
        if key not in _summary_fields(self):
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_summary_fields(self))

    def __len__(self) -> int:
        return len(_summary_fields(self))

    @property
    def exit_status(self) -> int:
        """The status the job's process exits with after printing this summary: 0 unless the result
        asks an operator to act (a scheduler alerts on it). Errors exit with 2 before any summary."""
        return 0

    def to_dict(self) -> dict[str, Any]:
        """The summary as plain JSON-ready values (nested results converted too)."""
        return {name: plain(getattr(self, name)) for name in _summary_fields(self)}


def plain(value: Any) -> Any:
    """``value`` with every :class:`Result` inside it (in lists and dicts too) as a plain dict."""
    if isinstance(value, Result):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
