"""The start line of the race tests' children: say ready, then wait for the parent's go."""

import time
from pathlib import Path


def ready_then_wait(ready: str, go: str, timeout_s: float, poll_s: float) -> None:
    """Create ``ready``, then return once ``go`` exists (exit if it does not within ``timeout_s``)."""
    Path(ready).touch()
    deadline = time.monotonic() + timeout_s
    while not Path(go).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"no go signal within {timeout_s:g} s")
        time.sleep(poll_s)
