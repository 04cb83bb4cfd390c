"""Peak resident memory (RSS) of a process, or of a whole process tree, sampled by a background thread.

Read from ``/proc`` (Linux), so the benchmarks need no extra dependency. A tree is the process and every
descendant alive at each sample: Spark's Python workers and the embedded engine's threads included.
Shared pages are counted once per process, so a tree's figure is an upper bound."""

from __future__ import annotations

import os
import statistics
import threading
from pathlib import Path
from types import TracebackType

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes(pid: int) -> int:
    """Resident bytes of one process (0 if it has exited)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def descendants(pid: int) -> list[int]:
    """``pid`` and all its live descendants, from the parent ids in ``/proc/*/stat``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # field 4; the name in () may contain spaces
        children.setdefault(ppid, []).append(int(entry.name))
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [c for p in frontier for c in children.get(p, [])]
        tree += frontier
    return tree


class PeakRSS:
    """``with PeakRSS(pid, tree=True) as m: ...`` then ``m.peak`` / ``m.median`` / ``m.start`` (bytes)."""

    def __init__(self, pid: int | None = None, *, tree: bool = False, interval: float = 0.02):
        self.pid = os.getpid() if pid is None else pid
        self.tree, self.interval = tree, interval
        self.start = self.peak = 0
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> int:
        pids = descendants(self.pid) if self.tree else [self.pid]
        return sum(rss_bytes(p) for p in pids)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(self.sample())
            self.peak = max(self.peak, self.samples[-1])

    @property
    def median(self) -> int:
        """Median of the samples taken while running: the steady level, which a single spike (a few
        large batches in flight at once) does not move the way it moves the peak."""
        return int(statistics.median(self.samples)) if self.samples else self.peak

    def __enter__(self) -> "PeakRSS":
        self.start = self.peak = self.sample()
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.sample())
