"""An exclusive lock between processes, held for the length of a ``with`` block.

``flock`` on a lock file: the kernel releases it when the holder exits, crashed or not, so a lock is
never left stale. It serializes runs that share the file system the file is on (one machine, or a
POSIX shared file system); where the lock cannot be made (a file system without ``flock``, such as
some FUSE mounts, or a read-only directory, or no local file at all: an artifact store on an object
store) the block runs unlocked, with a warning."""

from __future__ import annotations

import fcntl
import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from sidlib.errors import SidlibError

log = logging.getLogger(__name__)

POLL_S = 0.5


class LockTimeout(SidlibError):
    """Another run held the lock for longer than this run was configured to wait."""


@contextmanager
def exclusive(path: Path | None, what: str, wait_s: float) -> Iterator[None]:
    """Hold the lock at ``path`` (created if missing), waiting up to ``wait_s`` seconds for another
    holder of ``what`` to finish; ``None``: there is no lock file to take."""
    if path is None:
        log.warning("no lock file for %s (an object store): concurrent runs of it are not serialized", what)
    handle = None if path is None else _locked(path, what, wait_s)
    try:
        yield
    finally:
        if handle is not None:
            handle.close()  # closing the file releases the lock


def _locked(path: Path, what: str, wait_s: float) -> IO[str] | None:
    """The open lock file, locked; ``None`` where no lock can be made (the caller runs unlocked)."""
    handle = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a")
        deadline, waiting = time.monotonic() + wait_s, False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return handle
            except BlockingIOError:
                if not waiting:
                    log.info("waiting for %s: another run holds %s", what, path)
                    waiting = True
                if time.monotonic() >= deadline:
                    handle.close()
                    raise LockTimeout(f"{what} is still held by another run after {wait_s:g} s ({path})") from None
                time.sleep(POLL_S)
    except OSError as exc:  # a read-only location, or a file system without flock
        if handle is not None:
            handle.close()
        log.warning("cannot lock %s (%s): concurrent runs of %s are not serialized", path, exc.strerror, what)
        return None
