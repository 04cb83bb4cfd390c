# Databricks notebook source
# MAGIC %md
# MAGIC # Fit a quantizer and encode Semantic IDs
# MAGIC Runs the `refresh` job: for each signal whose upstream model has no current SID version (or a new one),
# MAGIC fits the configured quantizer on `content_embeddings` (pinned version), publishes a versioned artifact,
# MAGIC encodes every item into `item_sids`, checks the quality gate and points the signal at the new version;
# MAGIC otherwise encodes only new items. Config: the `conf` and `overrides` widgets (job parameters).
# MAGIC Runs on Databricks (the notebook's session) or locally: `python notebooks/01_fit_and_encode.py`.

# COMMAND ----------

import json

from sidlib.jobs import inspect_tables, refresh
from sidlib.notebook import open_pipeline
from sidlib.spark.tables import sid_version_is

cfg, tables = open_pipeline(dbutils=globals().get("dbutils"))
print(json.dumps(inspect_tables.run(cfg, tables)["tables"], indent=2))

# COMMAND ----------

# MAGIC %md ## Refresh: fit (EM quantizers distributed over the executors), encode, gate, switch

# COMMAND ----------

summary = refresh.run(cfg, tables)
for result in summary.signals:
    loss = (result.metrics or {}).get("cosine_loss", float("nan"))
    print(f"{result.signal}: {result.action}; {result.encode.items_in_version} items encoded with v{result.sid_version}"
          f"; held-out cosine loss {loss:.4f}")
if summary.exit_status:
    raise SystemExit(f"the quality gate held a switch back: {json.dumps(summary['signals'], default=str)}")

# COMMAND ----------

tables.read("item_sids").frame.where(sid_version_is(summary.signals[-1].sid_version)).show(5, truncate=False)
