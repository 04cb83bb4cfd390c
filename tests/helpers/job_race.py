"""Child process of the concurrent-job tests: start the engine, say ready, wait for the go, run one job.

    python job_race.py JOB READY_FILE GO_FILE key=value ...

Both children of a round open their sessions first and start the job body at the same instant (the
parent creates GO_FILE once every child has written its READY_FILE), so their writes really overlap.
Prints the job's JSON summary; a failure prints one ``error:`` line and exits 2, like the CLI."""

import json
import sys

from sidlib.cli import run_with_session
from sidlib.config import load_config
from sidlib.errors import SidlibError
from sidlib.jobs.entry import job_module

from go_signal import ready_then_wait

job, ready, go, *overrides = sys.argv[1:]
module = job_module(job)


def when_told(cfg, tables):  # type: ignore[no-untyped-def]
    ready_then_wait(ready, go, timeout_s=120, poll_s=0.01)
    return module.run(cfg, tables)


try:
    print(json.dumps(run_with_session(when_told, load_config(None, overrides), name=job), default=str))
except SidlibError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(2)
