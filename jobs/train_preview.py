"""Entry script of the ``train_preview`` job (:mod:`sidlib.jobs.train_preview`):

    python jobs/train_preview.py --conf conf/demo.yaml
"""

import sys

from sidlib.jobs.entry import run_script

if __name__ == "__main__":
    sys.exit(run_script(__file__))
