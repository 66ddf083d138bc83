"""Entry point: ``python -m training ...``."""
import core  # noqa: F401  (first: safe native-library import order)

import sys

from training.cli import main

sys.exit(main())
