"""Entry script of the ``ingest_demo_data`` job (:mod:`sidlib.jobs.ingest_demo_data`):

    python jobs/ingest_demo_data.py --conf conf/demo.yaml [key=value ...]
    spark-submit jobs/ingest_demo_data.py --conf conf/demo.yaml engine.name=active
"""

import sys

from sidlib.jobs.entry import run_script

if __name__ == "__main__":
    sys.exit(run_script(__file__))
