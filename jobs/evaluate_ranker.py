"""Entry script of the ``evaluate_ranker`` job (:mod:`sidlib.jobs.evaluate_ranker`):

    python jobs/evaluate_ranker.py --conf conf/demo.yaml [key=value ...]
    spark-submit jobs/evaluate_ranker.py --conf conf/demo.yaml engine.name=active
"""

import sys

from sidlib.jobs.entry import run_script

if __name__ == "__main__":
    sys.exit(run_script(__file__))
