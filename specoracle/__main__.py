"""``python -m specoracle``: the same command line as the ``specoracle`` console script."""
import sys

from specoracle.cli import main

sys.exit(main())
