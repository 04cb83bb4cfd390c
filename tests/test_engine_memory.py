"""``engine.memory_pool_mb``: the embedded engine's operators share a bounded memory pool.

Runs its own engine in a child process: a Spark Connect session already open in the test process
(the ``spark`` fixture's) would be reused by ``getOrCreate`` instead of the one under test."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from conftest import REPO_ROOT

PROBE = textwrap.dedent("""
    import json
    from sidlib.config import EngineConfig
    from sidlib.errors import EngineMemoryError
    from sidlib.spark.session import open_session

    join_error = ""
    try:
        # 16 MB, not less: under a 1 MB pool Sail's spilling aggregation hung in 5 of 40 runs
        with open_session(EngineConfig(memory_pool_mb=16)) as spark:
            # 3M distinct keys outgrow a 16 MB pool: the aggregation spills (~50 MB to disk in a probe)
            keys = spark.range(3_000_000).selectExpr("id % 2999990 AS k")
            repeated = sorted(r["k"] for r in keys.groupBy("k").count().where("count > 1").collect())
            # a hash join's build side cannot spill: it fails at the budget rather than outgrow it
            left = spark.range(3_000_000).selectExpr("id", "id * 2 AS x")
            left.join(left.withColumnRenamed("x", "y"), "id").count()
    except EngineMemoryError as exc:
        join_error = str(exc)
    print(json.dumps({"repeated": repeated, "join_error": join_error}))
""")


def test_memory_pool_bounds_operators_and_aggregations_spill_to_stay_exact() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=REPO_ROOT,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["repeated"] == list(range(10))  # ids 2_999_990.. wrap onto keys 0..9: found exactly
    # the join's failure is a one-line sidlib error naming the setting, with the engine's reason
    assert report["join_error"].startswith("a step needs more memory than engine.memory_pool_mb=16 ")
    assert "memory pool" in report["join_error"] and "\n" not in report["join_error"]
