# Databricks notebook source
# MAGIC %md
# MAGIC # Point-in-time user histories with Semantic IDs
# MAGIC Builds `sequences` (for every impression, the user's last N events strictly before it, with the
# MAGIC history items' SIDs, padded with a mask) and `ranker_training` (plus a time-based split), then
# MAGIC reads a few training batches through Petastorm into torch.
# MAGIC Runs on Databricks or locally: `python notebooks/02_sequences.py`.

# COMMAND ----------

from sidlib.jobs import build_sequences, export_training_data
from sidlib.notebook import open_pipeline
from sidlib.reader import dataloader_from_config

cfg, tables = open_pipeline()
built = build_sequences.run(cfg, tables)
print(f"sequences: {built['written']['sequences']['rows']} impressions, history length {cfg.sequences.history_length}, "
      f"SIDs of {built['signal']} v{built['sid_version']}")

# COMMAND ----------

# MAGIC %md ## A heavy user's most recent impression: history strictly before it, most recent last

# COMMAND ----------

heaviest = tables.read("events").frame.groupBy("user_id").count().orderBy("count", ascending=False).first()["user_id"]
row = (tables.read("sequences").frame.where(f"user_id = {heaviest}").orderBy("ts", ascending=False).first())
print(f"user {heaviest}: impression of item {row['item_id']} at ts {row['ts']}, {row['hist_len']} history events")
print("last 5 history items:", row["hist_item_ids"][-5:], "at", row["hist_ts"][-5:], "SIDs", row["hist_sids"][-5:])
assert max(t for t, m in zip(row["hist_ts"], row["hist_mask"]) if m) < row["ts"]

# COMMAND ----------

# MAGIC %md ## Export with a time-based split, then read it back through Petastorm

# COMMAND ----------

exported = export_training_data.run(cfg, tables)
print("rows per split:", exported["splits"], "boundaries:", exported["boundaries"])
loader = dataloader_from_config(cfg, split="train", batch_size=256)
for i, batch in enumerate(loader):
    print({name: tuple(t.shape) for name, t in batch.items()})
    if i == 2:
        break
