"""Console-script entry points (``sidlib-<job>``), one per job, all through :func:`sidlib.cli.main`."""

import importlib

from sidlib.cli import main

#: console-script name -> job module under ``sidlib.jobs``
JOBS = {"ingest_demo_data": "ingest", "inspect_tables": "inspect", "run_pipeline": "pipeline",
        "fit_quantizer": "fit", "encode_items": "encode", "refresh": "refresh", "sweep": "sweep",
        "rollback": "rollback", "build_sequences": "sequences", "export_training_data": "export",
        "evaluate_ranker": "evaluate"}


def _entry(job: str):  # type: ignore[no-untyped-def]
    def run() -> int:
        module = importlib.import_module(f"sidlib.jobs.{JOBS[job]}")
        return main(module.run, description=module.__doc__ or "")
    run.__name__ = job
    return run


globals().update({job: _entry(job) for job in JOBS})
