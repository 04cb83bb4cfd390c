"""Entry script of the ``export_training_data`` job (:mod:`sidlib.jobs.export_training_data`):

    python jobs/export_training_data.py --conf conf/demo.yaml [export.valid_fraction=0.1 ...]
    spark-submit jobs/export_training_data.py --conf conf/demo.yaml engine.name=active
"""

import sys

from sidlib.jobs.entry import run_script

if __name__ == "__main__":
    sys.exit(run_script(__file__))
