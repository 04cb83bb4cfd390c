"""Job entry point; see `sidlib.jobs.inspect` for what it does.

    python jobs/inspect_tables.py --conf conf/demo.yaml [key=value ...]
"""

import sys

from sidlib.cli import main
from sidlib.jobs import inspect

if __name__ == "__main__":
    sys.exit(main(inspect.run, description=inspect.__doc__))
