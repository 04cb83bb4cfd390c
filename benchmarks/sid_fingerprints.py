"""Fingerprints of the SIDs every quantizer writes on the demo data, to show a refactor changed none.

Ingests the demo data once (embeddings from the ``ingest.cache_dir`` cache), then for each case runs
``fit_quantizer`` and ``encode_items`` as their own ``python jobs/<job>.py`` processes, each case with a
fresh artifact root and its own ``item_sids`` table, and hashes the written rows (item id, SID, codes,
n-grams, in item-id order). ``--save`` writes the fingerprints to a JSON file; ``--compare`` checks
them against one written before and exits 1 on any difference.

    python benchmarks/sid_fingerprints.py --work /tmp/sidfp --save /tmp/sidfp/before.json
    python benchmarks/sid_fingerprints.py --work /tmp/sidfp --compare /tmp/sidfp/before.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: name -> (fit overrides, signal encoded). Every quantizer on the raw embedding, two inside the
#: VQ-VAE, and the fused SID.
CASES: dict[str, tuple[list[str], str]] = {
    "dpca": (["fit.quantizer=dpca"], "text"),
    "structured": (["fit.quantizer=structured"], "text"),
    "fsq": (["fit.quantizer=fsq"], "text"),
    "rq_kmeans": (["fit.quantizer=rq_kmeans"], "text"),
    "rq_kmeans_beam5": (["fit.quantizer=rq_kmeans", "fit.params={beam_size: 5}"], "text"),
    "rq_vae": (["fit.quantizer=rq_vae"], "text"),
    "rq_gmm": (["fit.quantizer=rq_gmm"], "text"),
    "kmeans": (["fit.quantizer=kmeans", "fit.bits=10"], "text"),
    "vae_rq_kmeans": (["fit.quantizer=rq_kmeans", "fit.vae=true"], "text"),
    "vae_dpca": (["fit.quantizer=dpca", "fit.vae=true"], "text"),
    "fusion": (["fit.quantizer=fusion", "fit.signals=[text,credits]"], "fusion"),
}


def job(name: str, conf: str, *overrides: str) -> None:
    command = [sys.executable, str(REPO / "jobs" / f"{name}.py"), "--conf", conf, *overrides]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")


def fingerprint(table: Path) -> dict[str, object]:
    from deltalake import DeltaTable

    rows = DeltaTable(str(table)).to_pyarrow_table(columns=["item_id", "sid", "codes", "ngrams"]).sort_by("item_id")
    digest = hashlib.sha256()
    for column in ("item_id", "sid", "codes", "ngrams"):
        digest.update(json.dumps(rows.column(column).to_pylist()).encode())
    return {"rows": rows.num_rows, "sha256": digest.hexdigest()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/sidfp")
    parser.add_argument("--conf", default="conf/demo.yaml")
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    parser.add_argument("--save")
    parser.add_argument("--compare")
    args = parser.parse_args()
    work = Path(args.work)
    tables = work / "tables"
    if not (tables / "content_embeddings").exists():
        job("ingest_demo_data", args.conf, f"tables.root={tables}", f"artifacts.root={work / 'artifacts'}")
    found: dict[str, dict[str, object]] = {}
    for case in args.cases:
        fit, signal = CASES[case]
        artifacts = work / "artifacts" / case
        shutil.rmtree(artifacts, ignore_errors=True)
        shutil.rmtree(tables / f"item_sids_{case}", ignore_errors=True)
        common = [f"tables.root={tables}", f"artifacts.root={artifacts}", f"tables.item_sids=item_sids_{case}"]
        job("fit_quantizer", args.conf, *common, "fit.signals=[text]", *fit)
        job("encode_items", args.conf, *common, f"encode.signal={signal}", "encode.sid_version=1", "encode.mode=full")
        found[case] = fingerprint(tables / f"item_sids_{case}")
        print(f"{case:16s} {found[case]['rows']:>6} rows  {found[case]['sha256'][:16]}", flush=True)
    if args.save:
        Path(args.save).write_text(json.dumps(found, indent=2))
    if args.compare:
        before = json.loads(Path(args.compare).read_text())
        differ = [case for case in found if before.get(case) != found[case]]
        print("identical" if not differ else f"DIFFERENT: {', '.join(differ)}")
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
