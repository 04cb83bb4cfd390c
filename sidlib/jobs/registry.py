"""The jobs, in one place. Each name is the module ``sidlib.jobs.<name>`` (with ``run(cfg, tables)``),
the entry script ``jobs/<name>.py`` and the console script ``sidlib-<name, dashed>``; ``setup.py``, the
CLI, the pipeline and the tests all read these tuples, so a job cannot be half registered.

This module imports nothing: ``setup.py`` reads it before sidlib is installed."""

JOBS = ("ingest_demo_data", "inspect_tables", "run_pipeline", "fit_quantizer", "encode_items", "refresh", "sweep",
        "rollback", "build_sequences", "export_training_data", "evaluate_ranker", "train_preview")

#: What ``run_pipeline`` (``make demo``) runs in one engine session, in data-flow order.
PIPELINE = ("ingest_demo_data", "inspect_tables", "refresh", "build_sequences", "export_training_data",
            "train_preview")
