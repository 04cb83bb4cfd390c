"""One exception family, so entry points can turn every expected failure into a one-line message."""

from __future__ import annotations

import tempfile
from pathlib import Path


class SidlibError(Exception):
    """Base of all errors sidlib raises on purpose (bad config, bad data, missing artifacts)."""


class ConfigError(SidlibError, ValueError):
    """A configuration file or override is invalid: unknown key, wrong type, missing path."""


class InvalidInputError(SidlibError, ValueError):
    """Input data cannot be used as given: NaN/inf values, wrong shape, empty, codes out of range."""


class TableError(SidlibError):
    """A table is missing, empty or has a schema other than the one the job expects."""


class EngineMemoryError(SidlibError):
    """The embedded engine's memory budget (``engine.memory_pool_mb``) is too small for a step that
    cannot spill to disk (a hash join's build side)."""


def check_writable_dir(path: Path, setting: str, error: type[SidlibError]) -> None:
    """Create ``path`` if missing and prove a file can be made in it, else raise ``error`` naming the
    ``setting``: a job checks where it will write before it does the work, not after."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise error(f"{setting} {path} is not a writable directory: {exc.strerror or exc}") from None
