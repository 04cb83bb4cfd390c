"""Every job through ``spark-submit`` on a real standalone cluster (a master and two one-core workers,
separate JVMs on 127.0.0.1), with ``engine.name=active`` and Parquet tables (no Delta jars here), as a
user would run them; and the same inputs on the embedded engine give byte-identical SIDs.

The test process opens no engine itself: jobs run in their own processes and tables are read back with
pyarrow / delta-rs. Runs in its own pytest process (``-m cluster``, see the Makefile)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pytest

from sidlib.config import TablesConfig
from sidlib.reader import make_dataloader
from sidlib.spark import pointer
from sidlib.spark.standalone import LOOPBACK, StandaloneCluster, finish, free_port
from sidlib.spark.tables import Tables

from conftest import EMBEDDING_CACHE, REPO_ROOT
from test_export_reader import rows_of

pytestmark = pytest.mark.cluster

DEMO_CONF = str(REPO_ROOT / "conf" / "demo.yaml")
ITEMS = 150
#: Quiet driver logs, and at most one worker per application so two jobs can run at once.
SUBMIT_CONF = {"spark.log.level": "WARN", "spark.cores.max": "1"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    with StandaloneCluster(tmp_path_factory.mktemp("cluster"), workers=2) as running:
        yield running
    assert not running.processes  # every JVM stopped


def common(root: Path, fmt: str) -> list[str]:
    return [f"tables.root={root / 'tables'}", f"tables.format={fmt}", f"artifacts.root={root / 'artifacts'}",
            f"ingest.cache_dir={EMBEDDING_CACHE}", f"ingest.max_items={ITEMS}",
            "ingest.logged_at=2026-01-01T00:00:00", "fit.bits=12"]


CHAIN = REPO_ROOT / "tests" / "helpers" / "job_chain.py"


def summaries(result: subprocess.CompletedProcess[str], what: str) -> list[dict[str, Any]]:
    """Every JSON summary block a job chain printed, in order."""
    assert result.returncode == 0, f"{what} failed:\n{result.stdout[-4000:]}\n{result.stderr[-3000:]}"
    lines, blocks, start = result.stdout.splitlines(), [], None
    for i, line in enumerate(lines):
        if line == "{":
            start = i
        elif line == "}" and start is not None:
            blocks.append(json.loads("\n".join(lines[start:i + 1])))
            start = None
    return blocks


def steps(root: Path, fmt: str, chain: list[tuple[str, list[str]]], engine: list[str]) -> str:
    return json.dumps([[job, ["--conf", DEMO_CONF, *engine, *common(root, fmt), *args]] for job, args in chain])


def on_cluster(cluster: StandaloneCluster, root: Path, chain: list[tuple[str, list[str]]], **kwargs: Any) -> list[dict[str, Any]]:
    """Run the jobs in one ``spark-submit`` on the cluster (engine ``active``, Parquet)."""
    result = cluster.submit(CHAIN, [steps(root, "parquet", chain, ["engine.name=active"])], SUBMIT_CONF,
                            cwd=REPO_ROOT, **kwargs)
    found = summaries(result, f"spark-submit {[job for job, _ in chain]}")
    assert len(found) == len(chain)
    return found


def embedded(root: Path, chain: list[tuple[str, list[str]]]) -> list[dict[str, Any]]:
    """The same jobs on the embedded engine (Sail, Delta), in one process."""
    result = subprocess.run([sys.executable, str(CHAIN), steps(root, "delta", chain, [])], capture_output=True,
                            text=True, timeout=900, cwd=REPO_ROOT, stdin=subprocess.DEVNULL)
    return summaries(result, f"embedded {[job for job, _ in chain]}")


@pytest.fixture(scope="module")
def ingested(cluster: StandaloneCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo tables ingested once through ``spark-submit jobs/ingest_demo_data.py`` (the entry script)."""
    root = tmp_path_factory.mktemp("ingested")
    result = cluster.submit(REPO_ROOT / "jobs" / "ingest_demo_data.py",
                            ["--conf", DEMO_CONF, "engine.name=active", *common(root, "parquet")], SUBMIT_CONF,
                            cwd=REPO_ROOT)
    (summary,) = summaries(result, "spark-submit ingest_demo_data")
    assert summary["written"]["items"]["rows"] == ITEMS
    return root


def copy_of(ingested: Path, root: Path) -> Path:
    shutil.copytree(ingested / "tables", root / "tables")
    return root


def read_rows(path: Path) -> pd.DataFrame:
    """A Delta (its current snapshot) or Parquet (hive-partitioned directory) table, without an engine."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    if (path / "_delta_log").is_dir():
        from deltalake import DeltaTable

        return pd.concat([pq.read_table(u.removeprefix("file://")).to_pandas()
                          for u in DeltaTable(str(path)).file_uris()], ignore_index=True)
    return ds.dataset(str(path), format="parquet", partitioning="hive").to_table().to_pandas()


def sids_of(root: Path, version: int) -> pd.DataFrame:
    rows = read_rows(root / "tables" / "item_sids")
    rows = rows[rows["sid_version"].astype(int) == version].sort_values("item_id").reset_index(drop=True)
    assert rows["item_id"].is_unique
    return rows


def assert_same_sids(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert a["item_id"].tolist() == b["item_id"].tolist() and len(a) > 0
    assert np.array_equal(np.stack(a["codes"].to_numpy()), np.stack(b["codes"].to_numpy()))
    assert a["sid"].tolist() == b["sid"].tolist()
    assert np.array_equal(np.stack(a["ngrams"].to_numpy()), np.stack(b["ngrams"].to_numpy()))


def test_every_job_on_the_cluster_and_sids_equal_the_embedded_engines(cluster: StandaloneCluster, ingested: Path,
                                                                     tmp_path: Path) -> None:
    on, local = copy_of(ingested, tmp_path / "cluster"), tmp_path / "embedded"
    report = on / "report"
    fits = []
    for quantizer, version in (("rq_kmeans", 1), ("dpca", 2)):  # EM (in the driver) and neural (in a task)
        fits += [("fit_quantizer", [f"fit.quantizer={quantizer}", "fit.signals=[text]"]),
                 ("encode_items", [f"encode.sid_version={version}", "encode.mode=full"])]
    chain = [
        ("inspect_tables", []), *fits, ("encode_items", ["encode.sid_version=1", "encode.mode=incremental"]),
        ("refresh", []), ("refresh", []),  # no pointer: fit + encode + switch both signals; then incremental
        ("ingest_demo_data", ["ingest.text_model_version=minilm-v2"]), ("refresh", []),  # new upstream model: text v5
        ("rollback", ["rollback.signal=text"]), ("rollback", ["rollback.signal=text", "rollback.sid_version=5"]),
        ("sweep", ["sweep.quantizer=dpca", "sweep.bits=12", "sweep.max_points=2", f"sweep.output={on / 'best.yaml'}"]),
        ("build_sequences", ["sequences.history_length=10"]), ("export_training_data", []),  # compact layout
        ("build_sequences", ["sequences.layout=materialized", "sequences.history_length=10"]),
        ("export_training_data", ["sequences.layout=materialized"]),
        ("evaluate_ranker", ["evaluate.variants=[id,side]", "evaluate.seeds=[0]", "evaluate.epochs=1", "evaluate.max_steps=3",
                      "evaluate.recall_queries=50", f"evaluate.report_dir={report}"]),
    ]
    (inspected, fit1, enc1, fit2, enc2, incremental, first, again, _, second, back, forward, _, built, exported,
     materialized, exported_materialized, evaluated) = on_cluster(cluster, on, chain)
    assert inspected["tables"]["items"]["rows"] == ITEMS
    assert [fit1["artifacts"][0]["version"], fit2["artifacts"][0]["version"]] == [1, 2]
    assert enc1["items_in_version"] == enc2["items_in_version"] == ITEMS
    assert incremental["items_encoded"] == 0 and incremental["items_in_version"] == ITEMS
    first = {s["signal"]: s for s in first["signals"]}
    assert {s: r["action"] for s, r in first.items()} == {"text": "refit", "credits": "refit"}
    assert {s["action"] for s in again["signals"]} == {"incremental"}
    second = {s["signal"]: s for s in second["signals"]}
    assert second["text"]["action"] == "refit" and second["text"]["previous_version"] == first["text"]["sid_version"]
    assert second["text"]["sid_version"] == 5 and second["text"]["changes"]["compared"] == ITEMS
    assert (back["from_version"], back["to_version"]) == (5, first["text"]["sid_version"])
    assert (forward["from_version"], forward["to_version"]) == (first["text"]["sid_version"], 5)
    assert (on / "best.yaml").is_file()
    events = built["inputs"]["events"]["rows"]
    assert built["sid_version"] == 5 and built["written"]["impressions"]["rows"] == events > 1000
    assert materialized["written"]["sequences"]["rows"] == events
    assert exported["splits"] == exported_materialized["splits"] and sum(s["rows"] for s in exported["splits"].values()) == events
    tables = on / "tables"  # both layouts' tables, written by the cluster, give the same reader rows
    assert rows_of(make_dataloader(str(tables / "ranker_impressions"), fmt="parquet", split="test",
                                   histories=str(tables / "user_histories"), history_length=10)) == \
        rows_of(make_dataloader(str(tables / "ranker_training"), fmt="parquet", split="test"))
    assert evaluated and any(report.glob("*.md"))

    # the same rows and seed on the embedded engine: byte-identical SIDs, EM and neural
    embedded(local, [("ingest_demo_data", []), *fits])
    for version in (1, 2):
        assert_same_sids(sids_of(on, version), sids_of(local, version))


def test_notebooks_code_path_on_the_cluster(cluster: StandaloneCluster, ingested: Path, tmp_path: Path) -> None:
    """The notebooks call the same job functions; under spark-submit they use its session."""
    copy_of(ingested, tmp_path)
    overrides = " ".join(["engine.name=active", *common(tmp_path, "parquet"), "fit.signals=[text]",
                          "sequences.history_length=10"])
    outputs = []
    for notebook in ("01_fit_and_encode.py", "02_sequences.py"):
        result = cluster.submit(REPO_ROOT / "notebooks" / notebook, [], SUBMIT_CONF, cwd=REPO_ROOT,
                                env={"SIDLIB_CONF": DEMO_CONF, "SIDLIB_OVERRIDES": overrides})
        assert result.returncode == 0, result.stderr[-4000:]
        outputs.append(result.stdout)
    assert "items encoded with v1" in outputs[0] and "SIDs of text v1" in outputs[1]


def test_two_concurrent_refreshes_on_the_cluster_one_wins_nothing_lost(cluster: StandaloneCluster, ingested: Path,
                                                                        tmp_path: Path) -> None:
    copy_of(ingested, tmp_path)
    args = ["--conf", DEMO_CONF, "engine.name=active", *common(tmp_path, "parquet"), "fit.signals=[text]"]
    procs = [cluster.start_submit(REPO_ROOT / "jobs" / "refresh.py", args, SUBMIT_CONF, cwd=REPO_ROOT)
             for _ in range(2)]
    results = [summary for proc in procs for summary in summaries(finish(proc, 600), "refresh")]
    outcomes = sorted((r["signals"][0]["action"], r["signals"][0]["sid_version"]) for r in results)
    assert [a for a, _ in outcomes] == ["lost_race", "refit"], outcomes
    winner = next(v for a, v in outcomes if a == "refit")
    loser = next(v for a, v in outcomes if a == "lost_race")
    tables = Tables(spark=None, cfg=TablesConfig(root=str(tmp_path / "tables"), format="parquet"))  # type: ignore[arg-type]
    assert pointer.current(tables, "text").sid_version == winner
    for version in (winner, loser):  # both versions complete: the loser's stays for inspection or rollback
        assert len(sids_of(tmp_path, version)) == ITEMS


def running_save_stage(ui_port: int) -> dict[str, Any] | None:
    """The driver's active write stage (from its REST API), if any."""
    base = f"http://{LOOPBACK}:{ui_port}/api/v1/applications"
    try:
        with urllib.request.urlopen(base, timeout=2) as reply:
            app = json.load(reply)[0]["id"]
        with urllib.request.urlopen(f"{base}/{app}/stages?status=active", timeout=2) as reply:
            stages = json.load(reply)
    except (OSError, IndexError, ValueError):
        return None
    return next((s for s in stages if s["name"].startswith("save")), None)


def test_killing_a_worker_mid_encode_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """SIGKILL one worker while the encode's write stage runs: Spark reruns the lost tasks on the other
    worker and the table holds exactly the rows of a clean run."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sidlib.artifacts import ArtifactStore
    from sidlib.data.synthetic import iter_clustered_embeddings
    from sidlib.sid import pack

    rows, dim, files = 120_000, 64, 120
    content = tmp_path / "tables" / "content_embeddings"
    content.mkdir(parents=True)
    chunks = list(iter_clustered_embeddings(rows, dim, chunk=rows // files, seed=3))
    for i, chunk in enumerate(chunks):  # many small files: many short tasks, so the kill lands mid-stage
        ids = np.arange(i * len(chunk), (i + 1) * len(chunk), dtype=np.int64) + 1
        pq.write_table(pa.table({
            "item_id": ids, "signal": ["text"] * len(ids), "model_version": ["synthetic"] * len(ids),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(chunk.ravel()), dim).cast(pa.list_(pa.float32())),
            "logged_at": pa.array([pd.Timestamp("2026-01-01")] * len(ids), pa.timestamp("us"))}),
            content / f"part-{i:05d}.parquet")
    with StandaloneCluster(tmp_path / "cluster", workers=2) as cl:
        overrides = ["fit.signals=[text]", "fit.bits=12", "fit.holdout_fraction=0.01"]
        on_cluster(cl, tmp_path, [("fit_quantizer", overrides)])
        ui_port = free_port()
        proc = cl.start_submit(REPO_ROOT / "jobs" / "encode_items.py",
                               ["--conf", DEMO_CONF, "engine.name=active", *common(tmp_path, "parquet"),
                                "encode.sid_version=1"],
                               {**SUBMIT_CONF, "spark.cores.max": "2", "spark.ui.port": str(ui_port),
                                "spark.sql.files.maxPartitionBytes": "300k", "spark.sql.files.openCostInBytes": "0"},
                               cwd=REPO_ROOT)
        deadline, killed = time.monotonic() + 300, None
        while killed is None and time.monotonic() < deadline and proc.poll() is None:
            stage = running_save_stage(ui_port)
            if stage and stage["numCompleteTasks"] >= 3 and stage["numActiveTasks"] >= 1:
                killed = (cl.kill_worker("worker1"), stage["numCompleteTasks"], stage["numTasks"])
            time.sleep(0.2)
        result = finish(proc, 600)
    assert killed is not None, f"the write stage finished before a worker could be killed:\n{result.stderr[-3000:]}"
    _, done_before_kill, tasks = killed
    assert done_before_kill < tasks
    (summary,) = summaries(result, "encode under a kill")
    assert summary["items_in_version"] == rows
    got = sids_of(tmp_path, 1)
    assert got["item_id"].tolist() == list(range(1, rows + 1))  # no gaps, no duplicates
    quantizer = ArtifactStore(str(tmp_path / "artifacts")).get(1).load_quantizer()
    expected = quantizer.encode(np.concatenate(chunks))
    assert np.array_equal(np.stack(got["codes"].to_numpy()), expected)
    assert got["sid"].tolist() == pack(expected, quantizer.cardinalities).tolist()
