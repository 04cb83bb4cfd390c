"""Run several jobs in one driver process (so one ``spark-submit`` pays the cluster start once), each
through the same CLI entry as ``jobs/<job>.py``: ``job_chain.py STEPS_JSON`` with a list of
``[job, [argument, ...]]``. Each job prints its JSON summary; the first failing job ends the chain
with its exit status."""

import json
import sys

from sidlib.jobs.entry import run_job

for job, argv in json.loads(sys.argv[1]):
    print(f"=== {job}", flush=True)
    status = run_job(job, argv)
    if status:
        sys.exit(status)
