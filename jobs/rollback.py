"""Entry script of the ``rollback`` job (:mod:`sidlib.jobs.rollback`):

    python jobs/rollback.py --conf conf/demo.yaml rollback.signal=text                     # to the previous version, held
    python jobs/rollback.py --conf conf/demo.yaml rollback.signal=text rollback.sid_version=3
    python jobs/rollback.py --conf conf/demo.yaml rollback.signal=text rollback.release=true  # let refresh decide again
"""

import sys

from sidlib.jobs.entry import run_script

if __name__ == "__main__":
    sys.exit(run_script(__file__))
