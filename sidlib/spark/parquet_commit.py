"""How Parquet path tables change atomically without a transaction log: stage, then rename.

Parquet has no MERGE and no commit log, and the engines differ in what they do about it (Sail ignores
dynamic partition overwrite and replaces the whole table; classic Spark's appends share one
``_temporary`` directory under the table, so two concurrent jobs writing one table break each other).
So every Parquet write of a path table goes in two steps:

1. the engine writes the new files into a fresh staging directory ``<tables.root>/.sidlib-staging/<name>-<uuid>``
   (same filesystem as the table; its own commit protocol makes the staged set complete or absent);
2. the driver publishes it with renames:

   * **replace one partition** (one SID version): the staged directory and the partition directory are
     exchanged in one ``renameat2(RENAME_EXCHANGE)``, so readers see the old rows or the new ones; where
     the filesystem lacks it (e.g. NFS), two renames, with a moment in which the partition is empty;
   * **overwrite the table**: the same exchange, of the table directory;
   * **append**: each staged data file is renamed into the table (a reader can see part of an append in
     flight, never a partial file).

The replaced files are deleted after the exchange. What this needs: a POSIX filesystem shared by the
driver and executors (local disk, a mounted volume); object stores have no atomic rename: use Delta there.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

STAGING = ".sidlib-staging"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def staging_path(table: Path) -> Path:
    """A fresh directory for one write of ``table`` (not created: the engine's writer creates it)."""
    base = table.parent / STAGING
    base.mkdir(parents=True, exist_ok=True)
    return base / f"{table.name}-{uuid.uuid4().hex}"


def partition_dir(table: Path, column: str, value: object) -> Path:
    """Hive-style partition directory, as Spark and Sail name it (``sid_version=3``)."""
    return table / f"{column}={value}"


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing directories atomically; False if this filesystem cannot (nothing changed then)."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, f"renameat2 exchange of {a} and {b}: {os.strerror(code)}")


def replace_dir(staged: Path, target: Path) -> None:
    """Make ``staged`` the content of ``target`` (a partition or a whole table) and delete the old one."""
    staged.mkdir(parents=True, exist_ok=True)  # an engine may write no directory for zero rows
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        try:
            os.rename(staged, target)
            return
        except OSError as exc:  # created meanwhile by another run: replace what it wrote
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
    if exchange(staged, target):
        shutil.rmtree(staged)  # now holds the old files
        return
    old = staged.with_name(staged.name + "-old")
    os.rename(target, old)
    os.rename(staged, target)
    shutil.rmtree(old)
    log.info("replaced %s with two renames (no atomic exchange on this filesystem)", target)


def append_files(staged: Path, table: Path) -> int:
    """Move every staged data file into ``table`` at the same relative path; returns how many."""
    moved = 0
    for path in sorted(staged.rglob("*.parquet")):
        destination = table / path.relative_to(staged)
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.rename(path, destination)
        moved += 1
    shutil.rmtree(staged, ignore_errors=True)  # absent when the engine wrote zero rows
    return moved
