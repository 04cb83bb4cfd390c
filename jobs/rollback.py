"""Job entry point; see `sidlib.jobs.rollback` for what it does.

    python jobs/rollback.py --conf conf/demo.yaml rollback.signal=text                     # to the previous version, held
    python jobs/rollback.py --conf conf/demo.yaml rollback.signal=text rollback.sid_version=3
    python jobs/rollback.py --conf conf/demo.yaml rollback.signal=text rollback.release=true  # let refresh decide again
"""

import sys

from sidlib.cli import main
from sidlib.jobs import rollback

if __name__ == "__main__":
    sys.exit(main(rollback.run, description=rollback.__doc__))
