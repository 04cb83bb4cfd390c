#!/usr/bin/env bash
# The ranker evaluation behind benchmarks/RESULTS.md (issues 6 and 22), from the demo tables (`make demo`
# first): every 3rd MovieLens-1M user, a 4x64 rq_kmeans SID and a 15-trit DPCA SID of the text signal,
# history 20, then evaluate_ranker with 5 seeds on each SID (appends two sections to RESULTS.md).
# COLD=0.2 exports with the item-cold protocol (export.cold_item_fraction): 20% of items held out of
# train and valid, so thousands of test impressions are cold.
#   [COLD=0.2] benchmarks/ranker_eval.sh [work dir, default /tmp/sidlib-ranker-eval]   (~25 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
R=${1:-/tmp/sidlib-ranker-eval}
export OMP_NUM_THREADS=1
COMMON="tables.root=$R/tables artifacts.root=$R/artifacts"
DPCA="tables.user_histories=user_histories_dpca tables.impressions=impressions_dpca tables.ranker_impressions=ranker_impressions_dpca"
EXPORT="export.cold_item_fraction=${COLD:-0.0}"
EVAL="evaluate.variants=[id,sid:3,sid:4,side,raw] evaluate.seeds=[0,1,2,3,4] evaluate.epochs=3 evaluate.eval_every=50 evaluate.patience=3 evaluate.threads=1"

SIDLIB_EVAL_ROOT=$R $PY - <<'PYEOF'
import os
from sidlib import schemas
from sidlib.config import load_config
from sidlib.spark.session import open_session
from sidlib.spark.tables import Tables
src = load_config("conf/demo.yaml", [])
dst = load_config("conf/demo.yaml", [f"tables.root={os.environ['SIDLIB_EVAL_ROOT']}/tables"])
with open_session(src.engine, src.tables) as spark:
    for table, schema in (("items", schemas.ITEMS), ("content_embeddings", schemas.CONTENT_EMBEDDINGS)):
        Tables(spark, dst.tables).write(Tables(spark, src.tables).read(table).frame, table, expected=schema)
    events = Tables(spark, src.tables).read("events").frame.where("user_id % 3 = 0")
    Tables(spark, dst.tables).write(events, "events", expected=schemas.EVENTS)
PYEOF

sid() {  # sid "<fit overrides>" "<table overrides>": fit, encode, sequences and export one SID
    $PY jobs/fit_quantizer.py --conf conf/demo.yaml $COMMON fit.signals=[text] $1
    local v
    v=$(ls "$R/artifacts" | sort | tail -1 | sed 's/^v0*//')
    $PY jobs/encode_items.py --conf conf/demo.yaml $COMMON encode.signal=text encode.sid_version="$v"
    $PY jobs/build_sequences.py --conf conf/demo.yaml $COMMON $2 sequences.signal=text sequences.sid_version="$v" sequences.history_length=20
    $PY jobs/export_training_data.py --conf conf/demo.yaml $COMMON $2 $EXPORT
}
sid "fit.quantizer=rq_kmeans fit.params.levels=4" ""
sid "fit.quantizer=dpca" "$DPCA"
$PY benchmarks/bench_ranker.py --conf conf/demo.yaml $COMMON $EVAL 'evaluate.max_rows={valid: 10000}' evaluate.report_dir=$R/report_rq
$PY benchmarks/bench_ranker.py --conf conf/demo.yaml $COMMON $DPCA $EVAL 'evaluate.max_rows={valid: 10000}' evaluate.report_dir=$R/report_dpca
