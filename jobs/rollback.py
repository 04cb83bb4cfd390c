"""Job entry point; see `sidlib.jobs.rollback` for what it does.

    python jobs/rollback.py --conf conf/demo.yaml encode.signal=text                   # to the previous version
    python jobs/rollback.py --conf conf/demo.yaml encode.signal=text encode.sid_version=3
"""

import sys

from sidlib.cli import main
from sidlib.jobs import rollback

if __name__ == "__main__":
    sys.exit(main(rollback.run, description=rollback.__doc__))
