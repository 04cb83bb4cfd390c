"""Run several jobs in one driver process (so one ``spark-submit`` pays the cluster start once), each
through the same CLI entry as ``jobs/<job>.py``: ``job_chain.py STEPS_JSON`` with a list of
``[job_module, [argument, ...]]``. Each job prints its JSON summary; the first failing job ends the chain
with its exit status."""

import importlib
import json
import sys

from sidlib.cli import main

for module, argv in json.loads(sys.argv[1]):
    print(f"=== {module}", flush=True)
    job = importlib.import_module(f"sidlib.jobs.{module}")
    status = main(job.run, argv)
    if status:
        sys.exit(status)
