"""Wall time of every pipeline job on the embedded engine vs a two-worker Spark standalone cluster.

Both on the full demo data (MovieLens-1M, 3,883 items, 1,000,209 events), in one run, one job at a time:
the embedded engine as ``python jobs/<job>.py`` (Sail, Delta tables), the cluster as ``spark-submit
--master spark://127.0.0.1:...`` with ``engine.name=active`` and Parquet tables (no Delta jars here).
Each time is the job's whole process (engine start and stop included) and the job alone
(``job_seconds``). Appends the table to RESULTS.md.

    python benchmarks/bench_engines.py [--work /tmp/bench_engines] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import markdown_table, publish  # noqa: E402

from sidlib.spark.standalone import StandaloneCluster, python_environment  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONF = str(REPO / "conf" / "demo.yaml")

#: (label, job, overrides) in data-flow order; refresh runs twice (a fit, then the incremental path).
STEPS: list[tuple[str, str, list[str]]] = [
    ("ingest_demo_data", "ingest_demo_data", []),
    ("refresh (fit text + credits)", "refresh", []),
    ("refresh (incremental)", "refresh", []),
    ("encode_items full", "encode_items", ["encode.mode=full"]),
    ("build_sequences N=50", "build_sequences", ["sequences.history_length=50"]),
    ("export_training_data", "export_training_data", []),
]


def summary_of(stdout: str) -> dict[str, Any]:
    lines = stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line == "{")
    return json.loads("\n".join(lines[start:]))


def timed(command: Sequence[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    start = time.perf_counter()
    result = subprocess.run(list(command), capture_output=True, text=True, cwd=REPO, env=env, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return {"wall": wall, "job": summary_of(result.stdout).get("job_seconds", float("nan"))}


def overrides(work: Path, engine: str) -> list[str]:
    fmt = "delta" if engine == "embedded" else "parquet"
    return [f"tables.root={work / engine / 'tables'}", f"tables.format={fmt}",
            f"artifacts.root={work / engine / 'artifacts'}", "ingest.logged_at=2026-01-01T00:00:00"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_engines"))
    parser.add_argument("--no-write", action="store_true", help="print the table, do not append to RESULTS.md")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    rows = []
    with StandaloneCluster(args.work / "cluster", workers=2, worker_memory="3g") as cluster:
        for label, job, extra in STEPS:
            script = REPO / "jobs" / f"{job}.py"
            local = timed([sys.executable, str(script), "--conf", CONF, *overrides(args.work, "embedded"), *extra])
            remote = timed(cluster.submit_command(script, ["--conf", CONF, "engine.name=active",
                                                           *overrides(args.work, "cluster"), *extra],
                                                  {"spark.log.level": "WARN", "spark.executor.memory": "2g"}),
                           env=python_environment())
            rows.append({"job": label, "embedded s": round(local["wall"], 1), "cluster s": round(remote["wall"], 1),
                         "ratio": round(remote["wall"] / local["wall"], 2), "embedded job s": local["job"],
                         "cluster job s": remote["job"]})
            print(rows[-1], flush=True)
    body = ("Each job on the full demo data, embedded engine (Sail, Delta, `python jobs/<job>.py`) vs a "
            "standalone cluster of two one-core workers (`spark-submit`, `engine.name=active`, Parquet), one "
            "job at a time on one 2-core machine. `s`: the job's process, engine start and stop included; "
            "`job s`: the job body (`job_seconds` of its summary).\n\n" + markdown_table(rows, list(rows[0])))
    publish("Engines: embedded vs two-worker cluster, per job (bench_engines)", body, write=not args.no_write)


if __name__ == "__main__":
    main()
