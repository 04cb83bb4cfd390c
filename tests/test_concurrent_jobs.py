"""Jobs run really at once, in separate processes, on the embedded engine and Delta tables.

Each round starts two children (``helpers/job_race.py``) that open their engines first and begin the
job body at one instant, so the writes overlap; rounds repeat enough to catch a 1-in-3 race."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

from sidlib.jobs import encode_items, fit_quantizer, refresh
from sidlib.spark import pointer

CHILD = Path(__file__).parent / "helpers" / "job_race.py"
ROUNDS = 5


def race(workdir: Path, *jobs: tuple[str, list[str]]) -> list[tuple[int, dict | str]]:  # type: ignore[type-arg]
    """Run the ``(job, overrides)`` children together; each one's exit status and summary (or stderr)."""
    workdir.mkdir(parents=True)
    go = workdir / "go"
    procs = [subprocess.Popen([sys.executable, str(CHILD), job, str(workdir / f"ready{i}"), str(go), *overrides],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i, (job, overrides) in enumerate(jobs)]
    deadline = time.monotonic() + 180
    while not all((workdir / f"ready{i}").exists() for i in range(len(jobs))):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a child did not start"
        time.sleep(0.05)
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        results.append((proc.returncode, json.loads(out) if proc.returncode == 0 else err[-3000:]))
    return results


def overrides_of(cfg) -> list[str]:  # type: ignore[no-untyped-def]
    return [f"tables.root={cfg.tables.root}", f"artifacts.root={cfg.artifacts.root}", f"fit.bits={cfg.fit.bits}"]


def test_two_concurrent_full_encodes_of_a_new_version_write_each_item_once(pipeline, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    items = tables.read("content_embeddings").frame.where("signal = 'text'").select("item_id").distinct().count()
    for r in range(ROUNDS):
        version = fit_quantizer.run(cfg, tables)["artifacts"][0]["version"]
        job = ("encode_items", [*overrides_of(cfg), "encode.signal=text", f"encode.sid_version={version}"])
        results = race(tmp_path / f"round{r}", job, job)
        assert [rc for rc, _ in results] == [0, 0], results
        row = tables.read_unpinned("item_sids").where(f"sid_version = {version}").selectExpr(
            "count(*) AS n", "count(DISTINCT item_id) AS items").collect()[0]
        assert (row["n"], row["items"]) == (items, items), (r, row)


def test_two_concurrent_rollbacks_hold_the_target_once_without_a_traceback(pipeline, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg, tables = pipeline
    refresh.run(cfg, tables)  # v1 current
    fit_quantizer.run(cfg, tables)
    encode_items.run(dataclasses.replace(cfg, encode=dataclasses.replace(cfg.encode, sid_version=2)), tables)
    model = pointer.current(tables, "text").model_version
    job = ("rollback", [*overrides_of(cfg), "rollback.signal=text"])
    for r in range(ROUNDS):
        # from v1 (held after a round), as an operator would: v2 current, not held, v1 before it
        pointer.switch(tables, "text", 2, model, expected=1, over_hold=True)
        results = race(tmp_path / f"round{r}", job, job)
        assert [rc for rc, _ in results] == [0, 0], results
        assert sorted(summary["action"] for _, summary in results) == ["already_held", "rolled_back"], results
        assert pointer.current(tables, "text") == pointer.Pointer("text", 1, 2, model, held=True)
