# Databricks notebook source
# MAGIC %md
# MAGIC # Offline evaluation of the ranker: id vs SID n-grams vs SIDE vs raw embeddings
# MAGIC Trains each `evaluate.variants` entry with every seed on `ranker_training` (built by `build_sequences` and
# MAGIC `export_training_data`), reports NE gain over the `id` baseline on all / warm / cold test impressions with a
# MAGIC t-interval over seeds, feature cost and RoI, and how well SIDE codes keep raw-embedding neighbourhoods.
# MAGIC Runs on Databricks (the notebook's session) or locally: `python notebooks/03_evaluation.py`
# MAGIC (`SIDLIB_OVERRIDES="evaluate.seeds=[0] evaluate.epochs=1"`, or the `overrides` widget, for a quick look).

# COMMAND ----------

import base64
import json
from pathlib import Path

from sidlib.jobs import evaluate_ranker
from sidlib.notebook import on_databricks, open_pipeline

cfg, tables = open_pipeline(dbutils=globals().get("dbutils"))
print(json.dumps({"variants": cfg.evaluate.variants, "seeds": cfg.evaluate.seeds, "max_rows": cfg.evaluate.max_rows,
                  "report_dir": cfg.evaluate.report_dir}, indent=2))

# COMMAND ----------

# MAGIC %md ## Train every variant and seed, score the test split

# COMMAND ----------

summary = evaluate_ranker.run(cfg, tables)
for name, row in summary["variants"].items():
    gain = {task: round(row["gain"][task]["cold"]["mean"], 2) for task in ("click", "conv")}
    print(f"{name}: NE click {row['ne']['click']['all']:.4f}, conv {row['ne']['conv']['all']:.4f}; cold gain % {gain}")

# COMMAND ----------

# MAGIC %md ## The report (Markdown and plots under `evaluate.report_dir`)

# COMMAND ----------

report = Path(summary["report"]["markdown"]).read_text()
print(report)
if on_databricks():
    images = "".join(f'<img src="data:image/png;base64,{base64.b64encode(Path(p).read_bytes()).decode()}"/>'
                     for p in summary["report"]["plots"])
    displayHTML(images)  # noqa: F821 (Databricks notebook global)
else:
    print("plots:", *summary["report"]["plots"], sep="\n  ")
