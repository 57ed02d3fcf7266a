"""``python -m d4g_edge``: the ``d4g-edge`` command line (:mod:`d4g_edge.cli`)."""

import sys

from d4g_edge.cli import main

if __name__ == "__main__":
    sys.exit(main())
