"""Issue 17's two large reproductions, rerun at their original scale on the embedded engine (Delta).

* wrong-dimension rows first: 1,500 rows of dim 383 written (with delta-rs) as the first data file of a
  100,000-item ``content_embeddings``, then ``refresh`` and ``encode_items encode.mode=full``;
* concurrent encodes: a version fitted on 600,500 items, then two ``encode_items
  encode.sid_version=<v>`` started a second apart.

Each job is its own ``python jobs/<job>.py`` process. Prints, and appends to RESULTS.md, what each run
did: exit status, rows per version, rejects, artifact versions.

    python benchmarks/adversarial_scale.py [--work /tmp/adversarial_scale] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import markdown_table, publish  # noqa: E402

from sidlib.data.synthetic import iter_clustered_embeddings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODEL = "synthetic-v1"


def embeddings_batch(first_id: int, matrix: np.ndarray) -> pa.Table:
    n, dim = matrix.shape
    values = pa.array(matrix.reshape(-1), pa.float32())
    lists = pa.ListArray.from_arrays(pa.array(np.arange(0, (n + 1) * dim, dim, dtype=np.int32)), values)
    return pa.table({"item_id": pa.array(np.arange(first_id, first_id + n, dtype=np.int64)),
                     "signal": pa.array(["text"] * n), "model_version": pa.array([MODEL] * n),
                     "embedding": lists,
                     "logged_at": pa.array(np.full(n, np.datetime64("2026-01-01T00:00:00", "us")),
                                           pa.timestamp("us", tz="UTC"))})


def write_content(root: Path, items: int, short_rows: int) -> None:
    """``short_rows`` rows of dim 383 as the first commit (new item ids), then ``items`` good rows."""
    from deltalake import write_deltalake

    path = str(root / "content_embeddings")
    if short_rows:
        short = next(iter_clustered_embeddings(short_rows, 384, seed=7))[:, :383]
        write_deltalake(path, embeddings_batch(10_000_000, np.ascontiguousarray(short)), mode="append")
    start = 1
    for chunk in iter_clustered_embeddings(items, 384, seed=1, chunk=100_000):
        write_deltalake(path, embeddings_batch(start, chunk), mode="append")
        start += len(chunk)


def job(name: str, root: Path, *overrides: str, wait: bool = True) -> Any:
    command = [sys.executable, str(REPO / "jobs" / f"{name}.py"), f"tables.root={root / 'tables'}",
               f"artifacts.root={root / 'artifacts'}", "fit.signals=[text]", *overrides]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    return finish(proc) if wait else proc


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=1800)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    return {"rc": proc.returncode, "summary": json.loads(out) if proc.returncode == 0 else None,
            "error": errors[0] if errors else (err.strip().splitlines() or [""])[-1]}


def version_rows(root: Path, version: int) -> dict[str, int]:
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    sids = DeltaTable(str(root / "tables" / "item_sids")).to_pyarrow_table(columns=["item_id", "sid_version"])
    ids = sids.filter(pc.equal(sids["sid_version"], version))["item_id"]
    return {"rows": len(ids), "items": len(pc.unique(ids))}


def wrong_dimension_first(work: Path) -> list[dict[str, Any]]:
    root = work / "wrong_dim"
    write_content(root / "tables", 100_000, 1_500)
    rows = []
    for label, name, overrides in (("refresh", "refresh", []),
                                   ("encode_items full", "encode_items", ["encode.mode=full", "encode.sid_version=1"])):
        result = job(name, root, *overrides)
        summary = result["summary"] or {}
        encoded = summary.get("signals", [{}])[0].get("encode", summary) if summary else {}
        rows.append({"case": f"1,500 dim-383 rows first of 101,500: {label}", "exit": result["rc"],
                     "items in version": encoded.get("items_in_version"), "rows in version": "",
                     "rejected": encoded.get("rejected"),
                     "artifacts": sorted(p.name for p in (root / "artifacts").glob("v*")),
                     "error": result["error"] if result["rc"] else ""})
    return rows


def concurrent_encodes(work: Path) -> list[dict[str, Any]]:
    root = work / "concurrent"
    write_content(root / "tables", 600_500, 0)
    fitted = job("fit_quantizer", root, "fit.em_sample_fraction=0.3")
    assert fitted["rc"] == 0, fitted["error"]
    version = fitted["summary"]["artifacts"][0]["version"]
    first = job("encode_items", root, f"encode.sid_version={version}", wait=False)
    time.sleep(1)
    second = job("encode_items", root, f"encode.sid_version={version}", wait=False)
    results = [finish(first), finish(second)]
    counts = version_rows(root, version)
    return [{"case": "two full encodes of a new version of 600,500 items, 1 s apart",
             "exit": [r["rc"] for r in results], "items in version": counts["items"],
             "rows in version": counts["rows"], "rejected": "",
             "artifacts": [version], "error": "; ".join(r["error"] for r in results if r["rc"])}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", default="/tmp/adversarial_scale")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    rows = wrong_dimension_first(work) + concurrent_encodes(work)
    table = markdown_table(rows, ["case", "exit", "items in version", "rows in version", "rejected", "artifacts",
                                  "error"])
    print(table)
    publish("Issue 17 reproductions at their original scale",
            "Command: `python benchmarks/adversarial_scale.py`.\n\n" + table, write=not args.no_write)


if __name__ == "__main__":
    main()
