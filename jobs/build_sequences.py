"""Entry script of the ``build_sequences`` job (:mod:`sidlib.jobs.build_sequences`):

    python jobs/build_sequences.py --conf conf/demo.yaml [sequences.history_length=50 ...]
    spark-submit jobs/build_sequences.py --conf conf/demo.yaml engine.name=active
"""

import sys

from sidlib.jobs.entry import run_script

if __name__ == "__main__":
    sys.exit(run_script(__file__))
